"""Where RQ holds a job (for the message of a test that found a job stuck), and which
worker runs it."""

from __future__ import annotations

from redis import Redis
from rq import Worker


def worker_running(redis_url: str, job_id: str) -> Worker:
    """The RQ worker whose work horse runs ``job_id`` now."""
    redis = Redis.from_url(redis_url)
    (found,) = [w for w in Worker.all(connection=redis) if w.get_current_job_id() == job_id]
    return found


def where(redis: Redis, queue: str, job_id: str) -> dict:
    """The job's RQ status and every list, registry and rate-limit set that holds it."""
    key = f"rq:job:{job_id}"
    fields = ["status", "worker_name", "enqueued_at", "started_at", "ended_at", "retries_left"]
    found = {
        name: value.decode() if value else None
        for name, value in zip(fields, redis.hmget(key, fields), strict=True)
    }
    held = []
    for name, list_key in (("queue", f"rq:queue:{queue}"), ("intermediate",
                           f"rq:queue:{queue}:intermediate")):  # fmt: skip
        if redis.lpos(list_key, job_id) is not None:
            held.append(name)
    for name in ("wip", "scheduled", "deferred", "failed", "finished", "canceled"):
        members = redis.zrange(f"rq:{name}:{queue}", 0, -1)
        if any(m.decode().split(":")[0] == job_id for m in members):
            held.append(name)
    rate_key = redis.hget(key, "rate_limit_key")
    if rate_key:
        for name in ("allowed", "rate_limited"):
            if redis.zscore(f"rq:rl:{rate_key.decode()}:{name}", job_id) is not None:
                held.append(f"rate limit {name}")
    found["held in"] = held
    seen = redis.get(f"rq:queue:{queue}:intermediate:first_seen:{job_id}")
    found["first seen in intermediate"] = seen.decode() if seen else None
    return found
