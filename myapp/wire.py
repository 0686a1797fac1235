"""The event wire format: how an event is written into Redis and read back out.

An event is a flask-sse message dict, ``{"type": "job", "data": <job JSON>}``,
encoded as compact JSON. The event log keeps it under its stream entry id, and the
publishing script (:mod:`myapp.pipeline.event_log`) publishes ``<id> <encoded>``
on the user's channel, so every reader (a web process's hub, ``flask jobs watch``)
gets the id a client resumes from along with the event. :func:`encode`,
:func:`published` and :class:`Event` are the only places that write or read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask_sse import Message
from redis.client import PubSub

#: The largest part of a Redis stream id (both are unsigned 64-bit numbers).
ID_PART_MAX = 2**64 - 1


def encode(value: Any) -> str:
    """An event, or a job's JSON, as stored and published: compact JSON."""
    return json.dumps(value, separators=(",", ":"))


def decode(encoded: str | bytes) -> Any:
    return json.loads(encoded)


def parse_id(event_id: str | bytes | None) -> tuple[int, int] | None:
    """A stream id as a comparable pair, or None when it is not one."""
    if isinstance(event_id, bytes):
        event_id = event_id.decode()
    if not event_id:
        return None
    ms, _, seq = event_id.partition("-")
    try:
        key = int(ms), int(seq or 0)
    except ValueError:
        return None
    # Redis refuses ids outside 64 bits: such a client gets a snapshot, not an error.
    return key if all(0 <= part <= ID_PART_MAX for part in key) else None


@dataclass(frozen=True)
class Event:
    """One logged event, formatted and encoded once for every stream that sends it."""

    id: str
    key: tuple[int, int]
    text: bytes
    #: The job's state, for an ``event: job``.
    job: dict[str, Any] | None
    #: The text a job wrote, for an ``event: output``: ``{"job", "offset", "text"}``.
    output: dict[str, Any] | None = None

    @classmethod
    def from_log(cls, event_id: str | bytes, encoded: str | bytes) -> Event:
        if isinstance(event_id, bytes):
            event_id = event_id.decode()
        message = decode(encoded)
        data = message.get("data") if isinstance(message.get("data"), dict) else None
        job = data if message.get("type") == "job" else None
        output = data if message.get("type") == "output" else None
        fields = {k: v for k, v in message.items() if k != "id"}
        text = str(Message(id=event_id, **fields)).encode()
        return cls(event_id, parse_id(event_id), text, job, output)

    @property
    def job_id(self) -> str | None:
        """The job the event is about (its state or its output)."""
        about = self.job or self.output
        return about.get("id", about.get("job")) if about else None


def published(payload: bytes) -> Event:
    """The event in a pub/sub message's payload, ``<id> <encoded>``."""
    event_id, _, encoded = payload.partition(b" ")
    return Event.from_log(event_id, encoded)


def next_message(pubsub: PubSub, wait: float | None) -> dict[str, Any] | None:
    """The next pub/sub message, or None if none begins to arrive within ``wait``
    seconds (None: wait for good). One that has begun to arrive is read whole:
    redis-py's ``get_message(timeout=...)`` raises on a large one still arriving."""
    if wait is not None and not pubsub.connection.can_read(timeout=wait):
        return None
    return pubsub.get_message(timeout=None)
