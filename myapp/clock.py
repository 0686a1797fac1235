"""The time every process agrees on: the local clock, corrected to Redis's.

Order does not depend on clocks (:mod:`myapp.ordering`), but times still matter:
users read ``started_at`` and ``updated_at``, and RQ compares a heartbeat one host
wrote with the time another host reads. On a worker whose clock runs 30 s behind,
every live job would look dead to the others. So each process measures, about once
a minute, how far its clock is from Redis's, and every time myapp or RQ reads is the
local clock plus that offset. Between two measures no round trip is made.
"""

from __future__ import annotations

import sys
import time as _time
from datetime import UTC, datetime

import rq.utils
from redis import Redis
from redis.exceptions import RedisError

#: Seconds between two measures of the offset.
RESYNC_SECONDS = 60.0

_offset = 0.0
_measured_at = float("-inf")
#: RQ's own ``now``, taken before anything replaces it.
_RQ_NOW = rq.utils.now


def sync(redis: Redis) -> float:
    """Measure the offset to Redis's clock now (half the round trip counted each way)."""
    global _offset, _measured_at
    before = _time.time()
    seconds, micros = redis.time()
    after = _time.time()
    _offset = seconds + micros / 1e6 - (before + after) / 2
    _measured_at = _time.monotonic()
    return _offset


def maybe_sync(redis: Redis) -> None:
    """Measure again when the last measure is old; a Redis that does not answer
    leaves the last offset in place."""
    if _time.monotonic() - _measured_at >= RESYNC_SECONDS:
        try:
            sync(redis)
        except RedisError:
            pass


def time() -> float:
    """Seconds since the epoch, on the shared clock."""
    return _time.time() + _offset


def now() -> datetime:
    """Aware UTC, on the shared clock (what RQ's ``now`` returns)."""
    return datetime.fromtimestamp(time(), UTC)


def utcnow() -> datetime:
    """Naive UTC, on the shared clock, as the database stores it."""
    return now().replace(tzinfo=None)


def install_in_rq() -> None:
    """Make RQ read the shared clock too: its heartbeats, registries and retries.

    RQ's modules import ``now`` from ``rq.utils`` by name, so each loaded one's copy
    is replaced (``current_timestamp`` calls ``rq.utils.now`` and follows). Call it
    once RQ's modules are loaded: the app factory does.
    """
    for name, module in list(sys.modules.items()):
        if (name == "rq" or name.startswith("rq.")) and getattr(module, "now", None) is _RQ_NOW:
            module.now = now
