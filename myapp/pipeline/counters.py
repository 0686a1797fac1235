"""The counters that publishing bumps: jobs enqueued and ended, and how long they ran.

Kept in one Redis hash for the whole deployment (:data:`myapp.keys.COUNTERS`);
:mod:`myapp.web.metrics` reads them for Prometheus.
"""

from __future__ import annotations

import bisect
from typing import Any

from myapp import job_json
from myapp.keys import COUNTERS

DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0)


def job_enqueued(redis, kind: str, count: int = 1) -> None:
    """Count ``count`` jobs of ``kind`` enqueued (``redis`` may be a pipeline)."""
    redis.hincrby(COUNTERS, f"enqueued|{kind}", count)


def job_ended(redis, job: dict[str, Any]) -> None:
    """Count a job's terminal event, and how long it ran (for jobs that started)."""
    kind = job["kind"]
    redis.hincrby(COUNTERS, f"ended|{kind}|{job['status']}", 1)
    if job["started_at"] and job["ended_at"]:
        seconds = (
            job_json.parse_time(job["ended_at"]) - job_json.parse_time(job["started_at"])
        ).total_seconds()
        bucket = bisect.bisect_left(DURATION_BUCKETS, seconds)
        redis.hincrby(COUNTERS, f"duration|{kind}|{bucket}", 1)
        redis.hincrbyfloat(COUNTERS, f"duration_sum|{kind}", max(seconds, 0.0))
