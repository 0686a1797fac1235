"""A slow network in front of the real Redis, for tests of reads that must wait."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlparse


@contextmanager
def slow_link(redis_url: str) -> Iterator[str]:
    """A Redis URL whose replies arrive in pieces, a few milliseconds apart, as over
    a busy network: a TCP relay to the real server."""
    target = urlparse(redis_url)
    listener = socket.create_server(("127.0.0.1", 0))
    links: list[threading.Thread] = []

    def relay(source: socket.socket, sink: socket.socket, piece: int, pause: float) -> None:
        try:
            while data := source.recv(piece):
                sink.sendall(data)
                time.sleep(pause)
        except OSError:
            pass  # the other direction ended the link
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)  # wakes the other direction's read

    def link(client: socket.socket) -> None:
        with client, socket.create_connection((target.hostname, target.port)) as server:
            ways = [
                threading.Thread(target=relay, args=(client, server, 1 << 16, 0)),
                threading.Thread(target=relay, args=(server, client, 1 << 14, 0.002)),
            ]
            for way in ways:
                way.start()
            for way in ways:
                way.join()

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            links.append(threading.Thread(target=link, args=(client,)))
            links[-1].start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield target._replace(netloc=f"127.0.0.1:{listener.getsockname()[1]}").geturl()
    finally:
        listener.close()
        for each in links:
            each.join(timeout=10)
