"""One open stream, as the hub sees it: its bounded queue, and its socket while it waits.

Events reach a stream written straight to its socket when the stream is waiting
(under myapp's gunicorn worker), else put in its bounded queue for its greenlet.
A stream whose queue is full (its client stopped reading) is dropped, not waited
for: its socket is shut, and the client reconnects and replays.
"""

from __future__ import annotations

import logging
import queue
import socket
from typing import Protocol

from myapp.web.sockets import chunk
from myapp.wire import Event

log = logging.getLogger(__name__)

#: Put in a stream's queue when the stream must end (its queue overflowed, or
#: the subscription was lost and events may have been missed).
CLOSE = None
#: Put in a quiet stream's queue every heartbeat, so that it writes a comment
#: (or written by the hub itself, as :data:`KEEPALIVE_CHUNK`, if the stream waits).
#: Streams wait without a timer of their own: a timed wait costs a timer per
#: event, which at 100,000 deliveries a second is a sixth of a core.
KEEPALIVE = False
#: What a stream writes for a keepalive: an SSE comment.
KEEPALIVE_TEXT = b": keepalive\n\n"
KEEPALIVE_CHUNK = chunk(KEEPALIVE_TEXT)


class Counts(Protocol):
    """What a subscriber needs of the hub that made it: where to count a drop."""

    dropped: int


class Batch:
    """A channel's events that arrived together, with their HTTP chunk built once."""

    __slots__ = ("events", "_frame")

    def __init__(self, events: list[Event]):
        self.events = events
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = chunk(b"".join(event.text for event in self.events))
        return self._frame


class Subscriber:
    """One open stream: its queue of events, and its socket while it waits.

    A stream served by myapp's gunicorn worker (``direct``) that waits with an
    empty queue is written to by the hub itself, without waking its greenlet;
    whatever the socket does not take at once is queued for the greenlet.
    """

    def __init__(
        self, hub: Counts, channel: str, sock: socket.socket | None, size: int, direct: bool
    ):
        self.hub = hub
        self.channel = channel
        self.sock = sock
        self.direct = direct and sock is not None
        #: Blocked in :meth:`get` with nothing queued: the hub may write for it.
        self.waiting = False
        #: The key of the newest event sent; the stream sets it before it waits.
        self.sent: tuple[int, int] = (0, 0)
        # SimpleQueue is the lightest queue (gevent has a C one); only the hub's
        # threads put, so checking the size before putting is enough to bound it.
        self.queue: queue.SimpleQueue[Event | None | bool | bytes] = queue.SimpleQueue()
        self.size = size
        self.dropped = False
        #: The stream's place in its user's limit (see :mod:`myapp.jobs.limits`).
        self.id = ""

    def offer(self, batch: Batch) -> bool:
        """Hand over new events; True if they went straight to the socket."""
        if self.dropped:
            return False
        if self.waiting:
            fresh = batch if batch.events[0].key > self.sent else self._unsent(batch)
            if fresh is None:
                return False  # the stream's catch-up sent them all
            if self._write(fresh.frame):
                self.sent = fresh.events[-1].key
                return True
        for event in batch.events:
            self.put(event)
        return False

    def keepalive(self) -> None:
        if not (self.waiting and self._write(KEEPALIVE_CHUNK)):
            self.put(KEEPALIVE)

    def _unsent(self, batch: Batch) -> Batch | None:
        """The events of ``batch`` not already sent (by the stream's catch-up)."""
        fresh = [event for event in batch.events if event.key > self.sent]
        return Batch(fresh) if fresh else None

    def _write(self, frame: bytes) -> bool:
        """Write a chunk for the waiting stream; False if the socket took none of it."""
        try:
            written = self.sock.send_now(frame)
        except OSError:
            return False  # the stream's greenlet meets the error and ends
        if written < len(frame):
            if not written:
                return False
            self.put(frame[written:])  # the rest goes before anything else
        return True

    def put(self, item: Event | None | bool | bytes) -> None:
        self.waiting = False
        if self.queue.qsize() >= self.size:
            self.drop()
        else:
            self.queue.put_nowait(item)

    def drop(self, fell_behind: bool = True) -> None:
        """End this stream now; a write blocked on a client that stopped reading fails."""
        if self.dropped:
            return
        self.dropped = True
        self.waiting = False
        if fell_behind:
            self.hub.dropped += 1
            log.warning("dropped a stream of %s that fell behind", self.channel)
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client
        self.queue.put_nowait(CLOSE)  # past the bound: it ends the stream

    def get(self) -> Event | None | bool | bytes:
        """The next item, waiting as long as it takes: an event, CLOSE, KEEPALIVE, or
        the rest of a chunk the hub began writing (bytes, to be sent as they are)."""
        if self.dropped:
            return CLOSE
        if self.direct and not self.queue.qsize():
            # Under gevent nothing runs between these two lines and the wait.
            self.waiting = True
            try:
                return self.queue.get()
            finally:
                self.waiting = False
        return self.queue.get()

    def get_ready(self, most: int) -> list[Event | None | bool]:
        """Up to ``most`` events that are already waiting, without waiting: a stream
        that fell behind sends them in one write rather than one write each."""
        ready: list[Event | None | bool] = []
        # Counting first: an empty queue's get_nowait raises, at a cost per write.
        for _ in range(min(self.queue.qsize(), most)):
            ready.append(self.queue.get_nowait())
        return ready
