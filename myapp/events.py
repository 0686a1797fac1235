"""Each user's event log: every event is published and also kept for a while.

Publishing appends the event to a capped Redis Stream (``<channel>:log``)
and publishes it on the channel, in one Lua script, so the entry id is the
event's SSE ``id:`` and a client that reconnects with ``Last-Event-ID`` can be
sent exactly what it missed. For job events the script also keeps the job's
latest state in a hash of the user's active jobs, so a snapshot taken with
:func:`snapshot_cut` is consistent with the log, and a job's terminal event
frees its place in the user's limit of active jobs. A job state older than the
job's last one sent (by ``updated_at``) is dropped, so a late event never undoes
a newer one, on any client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask_sse import Message
from redis import Redis
from redis.client import Pipeline, PubSub

from myapp.metrics import COUNTERS
from myapp.state import TERMINAL

_PUBLISH = """
if ARGV[7] ~= '' then
  local sent = redis.call('GET', KEYS[5])
  if sent and sent > ARGV[7] then return false end
  redis.call('SET', KEYS[5], ARGV[7], 'EX', 86400)
end
local now = redis.call('TIME')
local retention_ms = tonumber(ARGV[3])
local min_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - retention_ms
local min_id = string.format('%d', math.max(min_ms, 0))
local id = redis.call('XADD', KEYS[1], 'MINID', '~', min_id, '*', 'm', ARGV[1])
redis.call('PEXPIRE', KEYS[1], retention_ms)
if ARGV[4] ~= '' then
  if ARGV[6] == '1' then
    redis.call('HDEL', KEYS[2], ARGV[4])
    redis.call('SREM', KEYS[3], ARGV[4])
  else
    redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
  end
  redis.call('EXPIRE', KEYS[2], 86400)
end
redis.call('PUBLISH', ARGV[2], id .. ' ' .. ARGV[1])
redis.call('HINCRBY', KEYS[4], 'events_published', 1)
return id
"""


def channel_for(user_id: int | str) -> str:
    """A user's channel (``*`` for all of them, as the hub subscribes)."""
    return f"myapp:user:{user_id}"


def published_on(redis: Redis | Pipeline, channel: str) -> str:
    """The name a channel is published under. Redis pub/sub ignores database numbers,
    so the number is part of the name: deployments that share one Redis server, on
    databases of their own, never see each other's events."""
    database = int(redis.connection_pool.connection_kwargs.get("db") or 0)  # None on a socket
    return f"{database}/{channel}"


def log_key(channel: str) -> str:
    return f"{channel}:log"


def active_key(channel: str) -> str:
    return f"{channel}:active"


def sent_key(channel: str, job_id: str) -> str:
    """The ``updated_at`` of the job's latest event, kept a day after it: an older
    state arriving late (two processes raced to publish one batch) is not sent."""
    return f"{channel}:sent:{job_id}"


def admitted_key(channel: str) -> str:
    """The user's jobs counted against ``MAX_ACTIVE_JOBS_PER_USER`` (see :mod:`myapp.control`)."""
    return f"{channel}:admitted"


def append(
    redis: Redis | Pipeline, channel: str, message: dict[str, Any], retention_seconds: float
) -> Any:
    """Log and publish a flask-sse message dict; returns its id (or queues it on a
    pipeline), or None for a job state older than one already sent."""
    encoded = json.dumps(message, separators=(",", ":"))
    data = message.get("data")
    job_id = job_json = terminal = updated_at = ""
    if message.get("type") == "job" and isinstance(data, dict):
        job_id, job_json = data["id"], json.dumps(data, separators=(",", ":"))
        terminal = "1" if data.get("status") in TERMINAL else "0"
        updated_at = data.get("updated_at") or ""
    return redis.eval(
        _PUBLISH, 5, log_key(channel), active_key(channel), admitted_key(channel), COUNTERS,
        sent_key(channel, job_id), encoded, published_on(redis, channel),
        int(retention_seconds * 1000), job_id, job_json, terminal, updated_at,
    )  # fmt: skip


def next_message(pubsub: PubSub, wait: float | None) -> dict[str, Any] | None:
    """The next pub/sub message, or None if none begins to arrive within ``wait``
    seconds (None: wait for good). One that has begun to arrive is read whole:
    redis-py's ``get_message(timeout=...)`` raises on a large one still arriving."""
    if wait is not None and not pubsub.connection.can_read(timeout=wait):
        return None
    return pubsub.get_message(timeout=None)


#: The largest part of a Redis stream id (both are unsigned 64-bit numbers).
ID_PART_MAX = 2**64 - 1


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
    job: dict[str, Any] | None

    @classmethod
    def from_log(cls, event_id: str | bytes, encoded: str | bytes) -> Event:
        if isinstance(event_id, bytes):
            event_id = event_id.decode()
        message = json.loads(encoded)
        data = message.get("data")
        job = data if message.get("type") == "job" and isinstance(data, dict) else None
        fields = {k: v for k, v in message.items() if k != "id"}
        text = str(Message(id=event_id, **fields)).encode()
        return cls(event_id, parse_id(event_id), text, job)


def replay(redis: Redis, channel: str, last_id: str) -> list[Event] | None:
    """The events after ``last_id``, or None when some of them are no longer kept,
    or when ``last_id`` is newer than any event (not an id this log gave out)."""
    after = parse_id(last_id)
    if after is None:
        return None
    with redis.pipeline(transaction=False) as pipe:
        pipe.xrange(log_key(channel), count=1)
        pipe.xrevrange(log_key(channel), count=1)
        first, last = pipe.execute()
    if not first or parse_id(first[0][0]) > after or parse_id(last[0][0]) < after:
        # Either everything expired or the log was trimmed past the client's
        # position (or Redis lost it), or the id is from the future: only a
        # snapshot can be trusted.
        return None
    entries = redis.xrange(log_key(channel), min=f"({after[0]}-{after[1]}")
    return [Event.from_log(event_id, fields[b"m"]) for event_id, fields in entries]


def snapshot_cut(redis: Redis, channel: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The newest event id and the active jobs' states as of that event, atomically."""
    with redis.pipeline(transaction=True) as pipe:
        pipe.xrevrange(log_key(channel), count=1)
        pipe.hgetall(active_key(channel))
        newest, active = pipe.execute()
    cut = newest[0][0].decode() if newest else "0-0"
    return cut, {job_id.decode(): json.loads(data) for job_id, data in active.items()}
