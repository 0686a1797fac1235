"""A slow network in front of the real Redis, for tests of reads that must wait."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.relay import Relay


@contextmanager
def slow_link(redis_url: str) -> Iterator[str]:
    """A Redis URL whose replies arrive in pieces, a few milliseconds apart, as over
    a busy network: a TCP relay (:mod:`tests.relay`) to the real server."""
    with Relay.to(redis_url, piece=1 << 14, pause=0.002) as relay:
        yield relay.url(redis_url)
