"""gunicorn's gevent worker, with a cheaper write for the many small writes of streams.

gevent's ``sendall`` asks the kernel for the socket's buffer size (a
``getsockopt`` call) before every write, then sends. An SSE event is a few
hundred bytes that one ``send`` almost always takes whole, and a busy web
process makes about one write per event per open stream: at 100,000 a second
that check alone is a sixth of a core. This worker tries one ``send`` first
and hands anything left to ``sendall``. Used by the Procfile through
:mod:`myapp.gunicorn_config` (``worker_class``).
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventWorker


class SendFirst:
    """A client socket whose ``sendall`` tries a single ``send`` first."""

    __slots__ = ("sock",)

    def __init__(self, sock):
        self.sock = sock

    def sendall(self, data: bytes) -> None:
        sent = self.sock.send(data)
        if sent < len(data):
            self.sock.sendall(memoryview(data)[sent:])

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


class StreamingWorker(GeventWorker):
    def handle_request(self, listener_name, req, sock, addr):
        return super().handle_request(listener_name, req, SendFirst(sock), addr)
