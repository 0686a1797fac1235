"""A small SSE reader over real HTTP, for tests of the stream."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field

import requests

from myapp.job_json import TERMINAL


@dataclass
class Event:
    type: str
    data: str
    id: str | None = None

    def json(self):
        return json.loads(self.data)


@dataclass
class Stream:
    """Reads ``url`` in a thread; ``lines`` keeps every raw line, ``events`` the events."""

    url: str
    headers: dict[str, str]
    response: requests.Response | None = None
    lines: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self):
        self.response = requests.get(self.url, headers=self.headers, stream=True, timeout=10)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        fields: dict[str, str] = {}
        try:
            for raw in self.response.iter_lines(chunk_size=None, decode_unicode=True):
                self.lines.append(raw)
                if raw == "":
                    if "data" in fields:
                        event = Event(
                            fields.get("event", "message"), fields["data"], fields.get("id")
                        )
                        self.events.append(event)
                    fields = {}
                elif not raw.startswith(":") and ":" in raw:
                    name, _, value = raw.partition(":")
                    value = value.removeprefix(" ")
                    fields[name] = f"{fields[name]}\n{value}" if name in fields else value
        except (requests.RequestException, AttributeError, ValueError) as exc:
            # The test closed the response, or the server went away.
            self.error = exc

    def wait_for(self, predicate, timeout: float = 20.0) -> list[Event]:
        """Wait until ``predicate(events)`` holds; return the events so far."""
        deadline = time.monotonic() + timeout
        while not predicate(list(self.events)):
            if time.monotonic() > deadline:
                seen = [(e.type, e.id, e.data[:80]) for e in self.events[-10:]]
                raise AssertionError(
                    f"stream did not deliver in {timeout}s ({len(self.events)} events; "
                    f"the last ones: {seen!r})"
                )
            time.sleep(0.02)
        return list(self.events)

    def job_events(self, job_id: str) -> list[dict]:
        return [e.json() for e in self.events if e.type == "job" and e.json()["id"] == job_id]

    def close(self):
        # Shut the socket first: closing the response alone waits for the reader
        # thread's blocked read, that is, for the next event or heartbeat. The
        # response is closed once the reader is done with it: closed under it, as
        # the reader meets the end of the stream, it raises ValueError.
        connection = getattr(self.response.raw, "connection", None)
        if connection is not None and connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the server closed it already
        self._thread.join(timeout=5)
        self.response.close()


def snapshot_sent(events) -> bool:
    """A predicate for :meth:`Stream.wait_for`: the stream's snapshot has arrived."""
    return any(event.type == "snapshot" for event in events)


def ended(stream: Stream, job_id: str, after: int = 0):
    """A predicate for :meth:`Stream.wait_for`: the job's end has arrived, past its first
    ``after`` events (the count before a retry, say)."""
    return lambda _: any(e["status"] in TERMINAL for e in stream.job_events(job_id)[after:])


def last(stream: Stream, job_id: str) -> dict:
    """The job's last event so far."""
    return stream.job_events(job_id)[-1]
