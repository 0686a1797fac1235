"""One Redis subscriber per web process, fanning events out to its open streams.

Stock flask-sse opens a pub/sub connection per browser tab. Here each process
holds one pattern subscription to every user channel. The events of a channel
read together are formatted once and handed to every local stream of that
channel: written straight to its socket when the stream is waiting (under
myapp's gunicorn worker), else put in its bounded queue for its greenlet. A
stream whose queue is full (its client stopped reading) is dropped, not
waited for: its socket is shut, and the client reconnects and replays.

Under load, messages pile up between two reads, so each stream gets more
events per write and the cost per event falls as the rate rises.

Written with ``threading`` and ``queue``, which gunicorn's gevent worker turns
into greenlets; without direct writes they also work in a plain threaded server.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

from myapp.keys import published_on
from myapp.web.metrics import WebFigures
from myapp.web.sockets import chunk
from myapp.wire import Event, next_message

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
#: Messages read from the subscription at most before they are handed out.
READ_MOST = 256
#: Quiet streams sent a keepalive between two yields to other requests.
KEEPALIVE_SLICE = 64


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

    def __init__(self, hub: Hub, channel: str, sock: socket.socket | None, size: int, direct: bool):
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


class Hub:
    def __init__(
        self,
        redis: Redis,
        pattern: str,
        queue_size: int,
        renew: Callable[[dict[str, list[str]]], None] | None = None,
        heartbeat: float = 15.0,
        figures: WebFigures | None = None,
    ):
        self.redis = redis
        self.pattern = pattern
        self.queue_size = queue_size
        #: Called every ``heartbeat`` seconds with the open streams' ids by
        #: channel, to keep their leases (see :func:`myapp.jobs.limits.renew_streams`).
        self.renew = renew
        #: Seconds between the keepalives of a quiet stream.
        self.heartbeat = heartbeat
        #: Where the lag of the events the hub writes itself is counted.
        self.figures = figures
        self.subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        self.delivered = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._pid: int | None = None
        self._closed = threading.Event()

    def subscribe(
        self,
        channel: str,
        sock: socket.socket | None,
        direct: bool = False,
        timeout: float = 5.0,
    ) -> Subscriber:
        """Register a stream; once this returns, no event for ``channel`` is missed.

        ``direct``: the hub may write the stream's events to ``sock`` itself, in
        HTTP/1.1 chunks (see :func:`myapp.web.sockets.takes_direct_writes`).
        """
        self._start()
        if not self._ready.wait(timeout):
            raise RedisError("the event subscription is not available")
        subscriber = Subscriber(self, channel, sock, self.queue_size, direct)
        with self._lock:
            self.subscribers[channel].add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            local = self.subscribers.get(subscriber.channel)
            if local is not None:
                local.discard(subscriber)
                if not local:
                    del self.subscribers[subscriber.channel]

    def close(self) -> None:
        """Stop listening and end every stream: a hub must not outlive its test."""
        self._closed.set()
        # Wakes the listening thread, which then sees it is closed; other hubs
        # have no stream on this channel and pass it by.
        self.redis.publish(published_on(self.redis, self.pattern.replace("*", "")), b"")

    def count_sent(self, published_ms: list[int], streams: int = 1) -> None:
        """Count events just written to this many streams (by the hub or a stream)."""
        if self.figures is not None:
            self.figures.sent(time.time(), published_ms, streams)

    @property
    def open_streams(self) -> int:
        return sum(len(local) for local in self.subscribers.values())

    def _start(self) -> None:
        # Started on first use in each process: a hub made before a fork has no thread.
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._ready.clear()
        threading.Thread(target=self._run, name="myapp-hub", daemon=True).start()
        threading.Thread(target=self._tick, name="myapp-heartbeat", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                self._listen()
            except (RedisError, OSError) as exc:
                if not self._closed.is_set():
                    log.warning("event subscription lost (%s); reconnecting", exc)
            self._ready.clear()
            self.end_streams()
            if self._closed.wait(0.5):
                return

    def _tick(self) -> None:
        """Every heartbeat: a keepalive to each quiet stream, then renew the leases."""
        while not self._closed.wait(self.heartbeat):
            with self._lock:
                local = {channel: list(local) for channel, local in self.subscribers.items()}
            everyone = [s for streams in local.values() for s in streams]
            for n, subscriber in enumerate(everyone, 1):
                if subscriber.queue.empty():
                    subscriber.keepalive()
                if n % KEEPALIVE_SLICE == 0:
                    time.sleep(0)  # under gevent, let requests in between
            if self.renew is None:
                continue
            try:
                self.renew({channel: [s.id for s in ss if s.id] for channel, ss in local.items()})
            except Exception:  # keep renewing: a lapsed lease only frees a place
                log.exception("could not renew the streams' leases")

    def _listen(self) -> None:
        pattern = published_on(self.redis, self.pattern)
        prefix = len(pattern) - len(self.pattern)  # the database number's part of the name
        pubsub = self.redis.pubsub()
        try:
            pubsub.psubscribe(pattern)
            while not self._closed.is_set():
                # One message, then those already arriving: under load they pile
                # up, and each stream gets them in one write, not one each.
                messages = [next_message(pubsub, wait=None)]
                while len(messages) < READ_MOST and (more := next_message(pubsub, wait=0)):
                    messages.append(more)
                if any(m and m["type"] == "psubscribe" for m in messages):
                    self._ready.set()
                published = [m for m in messages if m and m["type"] == "pmessage"]
                self._dispatch([(m["channel"][prefix:], m["data"]) for m in published])
        finally:
            pubsub.close()

    def _dispatch(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Hand each channel's new events to its local streams, as one batch."""
        batches: dict[str, list[Event]] = {}
        for channel, payload in messages:
            name = channel.decode()
            if name in self.subscribers:
                event_id, _, encoded = payload.partition(b" ")
                batches.setdefault(name, []).append(Event.from_log(event_id, encoded))
        for channel, events in batches.items():
            local = list(self.subscribers.get(channel, ()))
            batch = Batch(events)
            direct = sum(subscriber.offer(batch) for subscriber in local)
            self.delivered += len(local) * len(events)
            if direct:
                self.count_sent([event.key[0] for event in events], direct)

    def end_streams(self) -> None:
        """End every stream, so each client reconnects and replays from its last id:
        after a lost subscription (events may have been missed), or on shutdown."""
        with self._lock:
            everyone = [s for local in self.subscribers.values() for s in local]
        if everyone:
            log.warning("ended %d streams, which reconnect and replay", len(everyone))
        for subscriber in everyone:
            subscriber.drop(fell_behind=False)
