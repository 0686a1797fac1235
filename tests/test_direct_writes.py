"""The hub writes a waiting stream's events to its socket itself, as gunicorn would.

These run the hub's :class:`~myapp.web.hub.Subscriber` on a real socket pair: a
thread plays the stream's greenlet, blocked in ``get``.
"""

import socket
import threading
import time
from urllib.parse import urlparse

import gevent.socket
from gunicorn import util
from redis import Redis

from myapp.keys import channel_for
from myapp.pipeline import event_log
from myapp.web.hub import Hub
from myapp.web.sockets import SendFirst, chunk, takes_direct_writes
from myapp.web.subscriber import KEEPALIVE, KEEPALIVE_CHUNK, Batch, Subscriber
from myapp.wire import Event
from tests.records import user_id


def event(n: int, payload: str = "") -> Event:
    return Event.from_log(f"{1000 + n}-0", f'{{"data": "{n} {payload}"}}')


class Waiting:
    """A subscriber on one end of a socket pair, its greenlet (a thread) in ``get``."""

    def __init__(self, direct=True, sndbuf: int | None = None):
        ours, self.theirs = socket.socketpair()
        self.ours = gevent.socket.socket(fileno=ours.detach())  # as the worker's sockets are
        if sndbuf:
            self.ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.subscriber = Subscriber(Hub(None, 8), "c", SendFirst(self.ours), 8, direct)
        self.got = []
        self.thread = threading.Thread(target=lambda: self.got.append(self.subscriber.get()))
        self.thread.start()
        deadline = time.monotonic() + 5
        while direct and not self.subscriber.waiting and time.monotonic() < deadline:
            time.sleep(0.001)

    def read(self, size: int) -> bytes:
        self.theirs.settimeout(5)
        data = b""
        while len(data) < size:
            data += self.theirs.recv(size - len(data))
        return data

    def unread(self) -> bytes:
        self.theirs.setblocking(False)
        try:
            return self.theirs.recv(1 << 20)
        except BlockingIOError:
            return b""

    def close(self):
        if self.thread.is_alive():
            self.subscriber.queue.put_nowait(None)
        self.thread.join(timeout=5)
        self.ours.close()
        self.theirs.close()


def test_chunks_are_framed_as_gunicorn_frames_them():
    written = []
    util.write_chunk(type("Sock", (), {"sendall": lambda _, data: written.append(data)})(), b"ab")
    assert chunk(b"ab") == written[0]
    assert chunk(b"x" * 300) == b"12C\r\n" + b"x" * 300 + b"\r\n"


def test_a_waiting_stream_gets_a_batch_in_one_chunk_without_waking():
    pair = Waiting()
    try:
        batch = Batch([event(1), event(2)])
        assert pair.subscriber.offer(batch) is True
        expected = chunk(event(1).text + event(2).text)
        assert pair.read(len(expected)) == expected
        assert pair.subscriber.sent == (1002, 0)
        assert pair.subscriber.queue.qsize() == 0 and pair.got == []
    finally:
        pair.close()


def test_events_the_catch_up_sent_are_not_written_again():
    pair = Waiting()
    try:
        pair.subscriber.sent = (1002, 0)
        assert pair.subscriber.offer(Batch([event(1), event(2)])) is False
        assert pair.subscriber.offer(Batch([event(2), event(3)])) is True
        expected = chunk(event(3).text)
        assert pair.read(len(expected)) == expected
        assert pair.unread() == b""
    finally:
        pair.close()


def test_what_the_socket_does_not_take_goes_first_to_the_stream_s_greenlet():
    pair = Waiting(sndbuf=4096)
    try:
        big = Batch([event(1, "x" * 400_000)])
        assert pair.subscriber.offer(big) is True
        pair.thread.join(timeout=5)
        rest = pair.got[0]
        assert isinstance(rest, bytes) and 0 < len(rest) < len(big.frame)
        # Later events queue behind the rest, for the greenlet, not the socket.
        assert pair.subscriber.offer(Batch([event(2)])) is False
        assert pair.subscriber.get_ready(8) == [event(2)]
        written = pair.unread()
        while len(written) < len(big.frame) - len(rest):
            written += pair.unread()
        assert written + rest == big.frame
    finally:
        pair.close()


def test_a_full_socket_leaves_the_events_in_the_queue():
    pair = Waiting(sndbuf=4096)
    try:
        while pair.subscriber.sock.send_now(b"x" * 65536):
            pass  # until the socket takes nothing
        assert pair.subscriber.offer(Batch([event(1), event(2)])) is False
        pair.thread.join(timeout=5)
        assert pair.got == [event(1)]
        assert pair.subscriber.get_ready(8) == [event(2)]
    finally:
        pair.close()


def test_a_quiet_waiting_stream_gets_its_keepalive_without_waking():
    pair = Waiting()
    try:
        pair.subscriber.keepalive()
        assert pair.read(len(KEEPALIVE_CHUNK)) == KEEPALIVE_CHUNK
        assert pair.got == [] and pair.subscriber.queue.qsize() == 0
    finally:
        pair.close()


def test_a_stream_without_direct_writes_gets_everything_through_its_queue():
    pair = Waiting(direct=False)
    try:
        assert pair.subscriber.offer(Batch([event(1)])) is False
        pair.subscriber.keepalive()
        pair.thread.join(timeout=5)
        assert pair.got == [event(1)]
        assert pair.subscriber.get_ready(8) == [KEEPALIVE]
        assert pair.unread() == b""
    finally:
        pair.close()


def test_only_http_1_1_gets_of_this_worker_s_sockets_are_written_directly():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        wrapped = SendFirst(ours)
        get = {"gunicorn.socket": wrapped, "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET"}
        assert takes_direct_writes(get)
        assert not takes_direct_writes({**get, "SERVER_PROTOCOL": "HTTP/1.0"})
        assert not takes_direct_writes({**get, "REQUEST_METHOD": "HEAD"})
        assert not takes_direct_writes({**get, "gunicorn.socket": ours})


def test_an_http_1_0_stream_gets_a_plain_body(app, server, redis_url, accounts):
    """HTTP/1.0 has no chunks: written directly, its events would carry chunk sizes."""
    alice = accounts.create()
    redis = Redis.from_url(redis_url)
    host, port = urlparse(server).hostname, urlparse(server).port
    with socket.create_connection((host, port), timeout=10) as sock:
        request = f"GET /stream HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {alice.token}"
        sock.sendall(f"{request}\r\n\r\n".encode())
        received = b""
        while b"event:snapshot" not in received:
            received += sock.recv(65536)
        event_log.append(redis, channel_for(user_id(app, alice)), {"data": "plain 1"}, 60)
        while b"plain 1" not in received:
            received += sock.recv(65536)
    body = received.partition(b"\r\n\r\n")[2]
    assert body.startswith(b": connected\n")
    assert b"\r\n" not in body
