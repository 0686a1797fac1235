"""A TCP relay in front of a real server (Redis, PostgreSQL) that a test can cut and
restore, as a network partition would, or slow down, as a busy network would."""

from __future__ import annotations

import socket
import struct
import threading
import time
from contextlib import suppress
from urllib.parse import urlparse

#: The ways to cut a link (:meth:`Relay.cut`).
SILENT, RESET = "silent", "reset"


class Relay:
    """Forwards every connection to ``host:port``; :attr:`port` is where to connect.

    ``pause`` seconds after each ``piece`` bytes from the server make its replies
    arrive in pieces, as over a busy network (:mod:`tests.slow_link`).
    """

    def __init__(self, host: str, port: int, piece: int = 1 << 16, pause: float = 0.0):
        self.target = (host, port)
        self.piece, self.pause = piece, pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        #: Set while the link is up; a cut clears it and the relay forwards nothing.
        self.up = threading.Event()
        self.up.set()
        self.refusing = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._start(self._serve)

    @classmethod
    def to(cls, url: str, **kwargs) -> Relay:
        """A relay to the server of ``url`` (``redis://``, ``postgresql://``)."""
        target = urlparse(url)
        return cls(target.hostname, target.port, **kwargs)

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the relay's."""
        parsed = urlparse(url)
        userinfo = parsed.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        return parsed._replace(netloc=f"{netloc}127.0.0.1:{self.port}").geturl()

    def cut(self, how: str = SILENT) -> None:
        """Cut the link. ``SILENT``: every byte is held, both ways, and new connections
        wait, as when packets are dropped (all of it flows again on :meth:`restore`).
        ``RESET``: open connections are reset, and so is each new one as soon as it
        is made (a refusal), as when the server's host restarts or a proxy between
        drops everything."""
        if how not in (SILENT, RESET):
            raise ValueError(f"cut how? {how!r}: {SILENT!r} or {RESET!r}")
        self.up.clear()
        if how == RESET:
            self.refusing = True
            with self._lock:
                for each in list(self._sockets):
                    _reset(each)
                self._sockets.clear()

    def restore(self) -> None:
        self.refusing = False
        self.up.set()

    def close(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (closing would not)
        self.listener.close()
        with self._lock:
            for each in list(self._sockets):
                _reset(each)
        self.up.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # the listener was closed
            if self.refusing:
                _reset(client)
                continue
            self._start(self._link, client)

    def _link(self, client: socket.socket) -> None:
        self._track(client)
        self.up.wait()  # a connection made during a silent cut waits for the link
        try:
            server = socket.create_connection(self.target)
        except OSError:
            _reset(client)
            return
        self._track(server)
        self._start(self._pump, client, server, 1 << 16, 0.0)
        self._pump(server, client, self.piece, self.pause)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _pump(self, source: socket.socket, sink: socket.socket, piece: int, pause: float) -> None:
        try:
            while data := source.recv(piece):
                self.up.wait()
                if self.refusing:
                    break  # cut with a reset while this was on its way
                sink.sendall(data)
                if pause:
                    time.sleep(pause)
        except OSError:
            pass  # the other direction ended the link, or a reset
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)  # wakes the other direction's read
        with self._lock:
            self._sockets.discard(source)
            self._sockets.discard(sink)
        for end in (source, sink):
            with suppress(OSError):
                end.close()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (RST), not a polite FIN. Shutting the reading side first
    wakes this relay's thread blocked reading it (closing alone would not)."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with suppress(OSError):
        sock.close()
