"""gunicorn's gevent worker, with cheaper writes for the many small writes of streams.

Each plain HTTP client socket is wrapped in :class:`myapp.sockets.SendFirst`:
one ``send`` before ``sendall``, and the event hub may write to a waiting
stream's socket itself. Used by the Procfile through :mod:`myapp.gunicorn_config`
(``worker_class``).
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventWorker

from myapp.sockets import SendFirst


class StreamingWorker(GeventWorker):
    def handle_request(self, listener_name, req, sock, addr):
        # Plain HTTP only: TLS records are the SSL socket's business, and the
        # uwsgi protocol does not chunk bodies.
        if not self.cfg.is_ssl and getattr(self.cfg, "protocol", "http") == "http":
            sock = SendFirst(sock)
        return super().handle_request(listener_name, req, sock, addr)
