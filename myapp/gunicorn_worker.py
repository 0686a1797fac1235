"""gunicorn's gevent worker, with cheaper writes for the many small writes of streams.

Each plain HTTP client socket is wrapped in :class:`myapp.web.sockets.SendFirst`:
one ``send`` before ``sendall``, and the event hub may write to a waiting
stream's socket itself. On SIGTERM its streams end at once, rather than holding
the shutdown for the whole ``graceful_timeout``: their clients reconnect to
another process and replay what they missed. Used by the Procfile through
:mod:`myapp.gunicorn_config` (``worker_class``).
"""

from __future__ import annotations

import gevent
from gunicorn.workers.ggevent import GeventWorker

from myapp.web.sockets import SendFirst


class StreamingWorker(GeventWorker):
    def handle_request(self, listener_name, req, sock, addr):
        # Plain HTTP only: TLS records are the SSL socket's business, and the
        # uwsgi protocol does not chunk bodies.
        if not self.cfg.is_ssl and getattr(self.cfg, "protocol", "http") == "http":
            sock = SendFirst(sock)
        return super().handle_request(listener_name, req, sock, addr)

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        # Out of the signal handler: ending streams takes the hub's lock.
        gevent.spawn(self._end_streams)

    def _end_streams(self) -> None:
        hub = getattr(self.wsgi, "extensions", {}).get("myapp.web.hub")
        if hub is not None:
            hub.end_streams()
