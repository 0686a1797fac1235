"""The client sockets of myapp's gunicorn worker, and writing to them from the hub.

gevent's ``sendall`` asks the kernel for the socket's buffer size (a
``getsockopt`` call) before every write, then sends. An SSE event is a few
hundred bytes that one ``send`` almost always takes whole, and a busy web
process makes about one write per event per open stream: at 100,000 a second
that check alone is a sixth of a core. :class:`SendFirst` tries one ``send``
first and hands anything left to ``sendall``.

It also lets the event hub write to a waiting stream's socket itself
(:func:`takes_direct_writes`), in the HTTP/1.1 chunk that gunicorn would frame
(:func:`chunk`): the stream's greenlet is not woken and gunicorn's write path is
skipped, which takes a third off the cost of a delivery.

Kept apart from :mod:`myapp.gunicorn_worker`, which imports gevent, so that
processes other than the web server do not load it.
"""

from __future__ import annotations


class SendFirst:
    """A client socket whose ``sendall`` tries a single ``send`` first."""

    __slots__ = ("sock",)

    def __init__(self, sock):
        self.sock = sock

    def sendall(self, data: bytes) -> None:
        sent = self.sock.send(data)
        if sent < len(data):
            self.sock.sendall(memoryview(data)[sent:])

    def send_now(self, data: bytes) -> int:
        """Send what the kernel takes without waiting: how many bytes (maybe 0)."""
        try:
            return self.sock.send(data, 0, 0.0)  # gevent's send: a timeout of 0 never waits
        except BlockingIOError:
            return 0

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


def takes_direct_writes(environ: dict) -> bool:
    """Whether others may write this response's body to ``gunicorn.socket`` as chunks.

    gunicorn frames a body without a length in HTTP/1.1 chunks (and sends none
    for HEAD); only the plain sockets of myapp's worker qualify.
    """
    return (
        isinstance(environ.get("gunicorn.socket"), SendFirst)
        and environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
        and environ.get("REQUEST_METHOD") == "GET"
    )


def chunk(data: bytes) -> bytes:
    """``data`` as the HTTP/1.1 chunk gunicorn writes for it."""
    return b"%X\r\n%s\r\n" % (len(data), data)
