"""One Redis subscriber per web process, fanning events out to its open streams.

Stock flask-sse opens a pub/sub connection per browser tab. Here each process
holds one pattern subscription to every user channel and hands each event,
formatted once, to the bounded queue of every local stream of that channel. A
stream whose queue is full (its client stopped reading) is dropped, not
waited for: its socket is shut, and the client reconnects and replays.

Written with ``threading`` and ``queue``, which gunicorn's gevent worker turns
into greenlets; they also work in a plain threaded server.
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

from myapp.events import Event

log = logging.getLogger(__name__)

#: Put in a stream's queue when the stream must end (its queue overflowed, or
#: the subscription was lost and events may have been missed).
CLOSE = None
#: Put in a quiet stream's queue every heartbeat, so that it writes a comment.
#: Streams wait without a timer of their own: a timed wait costs a timer per
#: event, which at 100,000 deliveries a second is a sixth of a core.
KEEPALIVE = False


class Subscriber:
    """One open stream's queue of events."""

    def __init__(self, hub: Hub, channel: str, sock: socket.socket | None, size: int):
        self.hub = hub
        self.channel = channel
        self.sock = sock
        # SimpleQueue is the lightest queue (gevent has a C one); only the hub's
        # threads put, so checking the size before putting is enough to bound it.
        self.queue: queue.SimpleQueue[Event | None | bool] = queue.SimpleQueue()
        self.size = size
        self.dropped = False
        #: The stream's place in its user's limit (see :mod:`myapp.limits`).
        self.id = ""

    def offer(self, event: Event | None | bool) -> None:
        if self.queue.qsize() >= self.size:
            self.drop()
        else:
            self.queue.put_nowait(event)

    def drop(self) -> None:
        """End this stream now; a write blocked on a client that stopped reading fails."""
        if self.dropped:
            return
        self.dropped = True
        self.hub.dropped += 1
        log.warning("dropped a stream of %s that fell behind", self.channel)
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client
        self.queue.put_nowait(CLOSE)  # past the bound: it ends the stream

    def get(self) -> Event | None | bool:
        """The next event, CLOSE or KEEPALIVE, waiting as long as it takes."""
        if self.dropped:
            return CLOSE
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
    ):
        self.redis = redis
        self.pattern = pattern
        self.queue_size = queue_size
        #: Called every ``heartbeat`` seconds with the open streams' ids by
        #: channel, to keep their leases (see :func:`myapp.limits.renew_streams`).
        self.renew = renew
        #: Seconds between the keepalives of a quiet stream.
        self.heartbeat = heartbeat
        self.subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        self.delivered = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._pid: int | None = None

    def subscribe(
        self, channel: str, sock: socket.socket | None, timeout: float = 5.0
    ) -> Subscriber:
        """Register a stream; once this returns, no event for ``channel`` is missed."""
        self._start()
        if not self._ready.wait(timeout):
            raise RedisError("the event subscription is not available")
        subscriber = Subscriber(self, channel, sock, self.queue_size)
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
                log.warning("event subscription lost (%s); reconnecting", exc)
            self._ready.clear()
            self._close_all()
            time.sleep(0.5)

    def _tick(self) -> None:
        """Every heartbeat: a keepalive to each quiet stream, then renew the leases."""
        while True:
            time.sleep(self.heartbeat)
            with self._lock:
                local = {channel: list(local) for channel, local in self.subscribers.items()}
            for subscriber in (s for streams in local.values() for s in streams):
                if subscriber.queue.empty():
                    subscriber.offer(KEEPALIVE)
            if self.renew is None:
                continue
            try:
                self.renew({channel: [s.id for s in ss if s.id] for channel, ss in local.items()})
            except Exception:  # keep renewing: a lapsed lease only frees a place
                log.exception("could not renew the streams' leases")

    def _listen(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            pubsub.psubscribe(self.pattern)
            for item in pubsub.listen():
                if item["type"] == "psubscribe":
                    self._ready.set()
                elif item["type"] == "pmessage":
                    self._dispatch(item["channel"].decode(), item["data"])
        finally:
            pubsub.close()

    def _dispatch(self, channel: str, payload: bytes) -> None:
        local = self.subscribers.get(channel)
        if not local:
            return
        event_id, _, encoded = payload.partition(b" ")
        event = Event.from_log(event_id, encoded)
        for subscriber in list(local):
            subscriber.offer(event)
        self.delivered += len(local)

    def _close_all(self) -> None:
        """Events may have been missed while disconnected: end every stream, so each
        client reconnects and replays from its last id."""
        with self._lock:
            everyone = [s for local in self.subscribers.values() for s in local]
        for subscriber in everyone:
            subscriber.drop()
