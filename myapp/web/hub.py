"""One Redis subscriber per web process, fanning events out to its open streams.

Stock flask-sse opens a pub/sub connection per browser tab. Here each process
holds one pub/sub connection, subscribed to the channels of the users who have a
stream open on it, and to nothing else: Redis sends a process only the events it
has a stream for, so adding processes adds capacity for events. The events of a
channel read together are formatted once and handed to every local stream of that
channel (a :class:`myapp.web.subscriber.Subscriber`), as one batch.

Only the listening thread uses the connection. A stream that needs a channel not
yet subscribed asks for it and wakes the thread (a message on the hub's own
channel); the thread subscribes and, once Redis confirms, lets the stream go on.
A channel whose last stream closed is let go the same way.

Under load, messages pile up between two reads, so each stream gets more
events per write and the cost per event falls as the rate rises.

Written with ``threading`` and ``queue``, which gunicorn's gevent worker turns
into greenlets; without direct writes they also work in a plain threaded server.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

from myapp.keys import published_on
from myapp.pipeline import event_log
from myapp.web.metrics import WebFigures
from myapp.web.subscriber import Batch, Subscriber
from myapp.wire import Event, next_message, published

log = logging.getLogger(__name__)

#: Messages read from the subscription at most before they are handed out.
READ_MOST = 256
#: Quiet streams sent a keepalive between two yields to other requests.
KEEPALIVE_SLICE = 64


class Hub:
    def __init__(
        self,
        redis: Redis,
        queue_size: int,
        renew: Callable[[dict[str, list[str]]], None] | None = None,
        heartbeat: float = 15.0,
        figures: WebFigures | None = None,
        every_second: Callable[[], object] | None = None,
    ):
        self.redis = redis
        self.queue_size = queue_size
        #: Called every ``heartbeat`` seconds with the open streams' ids by
        #: channel, to keep their leases (see :func:`myapp.jobs.limits.renew_streams`).
        self.renew = renew
        #: Seconds between the keepalives of a quiet stream.
        self.heartbeat = heartbeat
        #: Where the lag of the events the hub writes itself is counted.
        self.figures = figures
        #: Called once a second while the hub runs: moving the users' places in line
        #: (:class:`myapp.pipeline.line.Line`).
        self.every_second = every_second
        self.subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        #: The channels the listening thread was asked to subscribe to, each with the
        #: event that Redis confirmed it (the thread's own record: :meth:`_follow`).
        self._listening: dict[str, threading.Event] = {}
        #: Channels whose streams came or went since the thread last looked.
        self._changed: list[str] = []
        #: The hub's own channel, which wakes the listening thread.
        self._own = f"myapp:hub:{uuid.uuid4().hex}"
        self.delivered = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._pid: int | None = None
        self._closed = threading.Event()
        #: The subscription was lost since it was last made: events may be missing.
        self._lost = False
        #: The millisecond of the newest event handed out (see :meth:`_resubscribed`).
        self.newest_ms = 0

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
            confirmed = self._listening.get(channel)
            if confirmed is None:
                confirmed = self._listening[channel] = threading.Event()
                self._changed.append(channel)
        if not confirmed.is_set():
            self._wake()
            if not confirmed.wait(timeout):
                self.unsubscribe(subscriber)
                raise RedisError("the event subscription is not available")
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            local = self.subscribers.get(subscriber.channel)
            if local is not None:
                local.discard(subscriber)
                if not local:
                    del self.subscribers[subscriber.channel]
                    self._changed.append(subscriber.channel)  # let go at the next read

    def close(self) -> None:
        """Stop listening and end every stream: a hub must not outlive its test."""
        self._closed.set()
        self._wake()  # the listening thread then sees it is closed

    def _wake(self) -> None:
        self.redis.publish(published_on(self.redis, self._own), b"")

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
        if self.every_second is not None:
            threading.Thread(target=self._each_second, name="myapp-line", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                self._listen()
            except (RedisError, OSError) as exc:
                if not self._closed.is_set():
                    log.warning("event subscription lost (%s); reconnecting", exc)
            self._lost = True
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

    def _each_second(self) -> None:
        while not self._closed.wait(1.0):
            try:
                self.every_second()
            except Exception:  # Redis away for a while: the next second tries again
                log.exception("the once-a-second task failed")

    def _listen(self) -> None:
        own = published_on(self.redis, self._own)
        prefix = len(own) - len(self._own)  # the database number's part of the names
        pubsub = self.redis.pubsub()
        with self._lock:  # a new connection: every channel is subscribed anew
            self._listening = {}
            self._changed = []
        sent: set[str] = set()  # the channels this connection asked Redis for
        try:
            pubsub.subscribe(own)
            while not self._closed.is_set():
                # One message, then those already arriving: under load they pile
                # up, and each stream gets them in one write, not one each.
                messages = [next_message(pubsub, wait=None)]
                while len(messages) < READ_MOST and (more := next_message(pubsub, wait=0)):
                    messages.append(more)
                arrived = []
                for m in messages:
                    if m is None:
                        continue
                    if m["type"] == "message":
                        arrived.append((m["channel"][prefix:], m["data"]))
                    elif m["type"] == "subscribe":
                        self._subscribed(
                            m["channel"][prefix:].decode(), own_channel=m["channel"] == own.encode()
                        )
                self._dispatch(arrived)
                self._follow(pubsub, sent)
        finally:
            pubsub.close()

    def _subscribed(self, channel: str, own_channel: bool) -> None:
        """Redis confirmed a subscription: the hub's own (the connection is made, or
        made again by redis-py on its own, after a reconnect to a new primary through
        Sentinel, say), or a stream's channel."""
        if own_channel:
            if self._lost or self._ready.is_set():
                self._resubscribed()
            self._ready.set()
            return
        with self._lock:
            confirmed = self._listening.get(channel)
        if confirmed is not None:
            confirmed.set()

    def _follow(self, pubsub, sent: set[str]) -> None:
        """Subscribe to the channels streams now need, and let go of those none needs.
        A channel is let go only once Redis confirmed it: the next confirmation of a
        channel is then always the one asked for last."""
        with self._lock:
            if not self._changed:
                return
            changed, self._changed = self._changed, []
            wanted, unwanted = [], []
            for channel in dict.fromkeys(changed):
                confirmed = self._listening.get(channel)
                if channel in self.subscribers:
                    if channel not in sent:
                        wanted.append(channel)
                elif channel not in sent:
                    self._listening.pop(channel, None)  # its stream left before it was asked
                elif confirmed is None or confirmed.is_set():
                    self._listening.pop(channel, None)
                    unwanted.append(channel)
                else:
                    self._changed.append(channel)  # after its confirmation
        database = published_on(self.redis, "")
        if wanted:
            pubsub.subscribe(*(database + channel for channel in wanted))
            sent.update(wanted)
        if unwanted:
            pubsub.unsubscribe(*(database + channel for channel in unwanted))
            sent.difference_update(unwanted)

    def _resubscribed(self) -> None:
        """Back after a loss: what was published meanwhile never arrived, and the log
        may have lost its last entries (a failover). Distrust the logs up to now, then
        end every stream: each reconnects and gets a snapshot."""
        event_log.mark_gap(self.redis, self.newest_ms)
        self._lost = False
        log.warning("event subscription made again; streams get a snapshot")
        self.end_streams()

    def _dispatch(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Hand each channel's new events to its local streams, as one batch."""
        batches: dict[str, list[Event]] = {}
        for channel, payload in messages:
            name = channel.decode()
            if name in self.subscribers:
                batches.setdefault(name, []).append(published(payload))
        for channel, events in batches.items():
            local = list(self.subscribers.get(channel, ()))
            self.newest_ms = max(self.newest_ms, events[-1].key[0])
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
