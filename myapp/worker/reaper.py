"""Jobs whose worker died: whatever point of a job's life a ``kill -9`` hits.

What RQ holds after the kill, and what resolves it:

- **taken, not yet started**: the job sits in the queue's intermediate list with no
  live execution. It goes back to the front of the queue, since it never ran. (RQ's
  own cleanup waits a minute or more and then fails it.)
- **started**: its execution's heartbeat expires; RQ's cleanup retries it when its
  kind allows, else fails it, and the record says ``worker died``.
- **ended in RQ, not yet recorded** (killed between RQ's write and ours): the record
  takes RQ's end, with the result.
- **lost by Redis** (restarted empty, or a failover dropped its last writes): the
  job is rebuilt from its record (:func:`myapp.jobs.control.rebuild`), or fails
  saying why it cannot be.
- **a place under a user's running limit kept by a job that ended** (a failover
  dropped the release the job's end made): the user's held jobs would wait for RQ's
  maintenance; the place is freed and the oldest of them goes to the queue.

Every worker calls :func:`reap` often; a lock lets one of them work per interval.
A reaper looks only at the records of its own queue (``TrackedJob.queue``; a record
without one is the default queue's): the workers of another queue, perhaps on
another Redis, resolve theirs, and a job missing from this Redis may well be in
that one. So deployments that share a database give their queues names of their own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app
from redis import Redis
from rq.executions import ExecutionRegistry
from rq.queue import Queue
from rq.rate_limit import RateLimitRegistry
from sqlalchemy import or_

from myapp import clock, job_json
from myapp.config import DEFAULTS
from myapp.connections import fetch_job
from myapp.db import db
from myapp.jobs import control
from myapp.keys import REAPER_LOCK, taken_key
from myapp.models import TrackedJob
from myapp.pipeline import lifecycle
from myapp.worker import retention

#: The error of a job whose worker was killed under it.
WORKER_DIED = "worker died"
#: Records checked against RQ at most, per reaping.
RECONCILE_BATCH = 100
#: An interval's worth of quiet, times this, and a worker is taken for dead.
QUIET_INTERVALS = 4

# Back to the front of the queue, if still taken by no one: queued, in the
# intermediate list, with no execution whose heartbeat is live in the started
# registry. RQ's note of when it first saw the job there goes too, or its cleanup
# would fail the job's next start.
# KEYS: intermediate list, queue, job hash, job's executions, started registry,
# RQ's first-seen key. ARGV: job id, now (RQ's clock, which its heartbeats use).
_PUT_BACK = """
if redis.call('HGET', KEYS[3], 'status') ~= 'queued' then return 0 end
for _, execution in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  local beat = redis.call('ZSCORE', KEYS[5], ARGV[1] .. ':' .. execution)
  if beat and (beat == 'inf' or tonumber(beat) > tonumber(ARGV[2])) then return 0 end
end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[6])
return 1
"""


def reap(queue: Queue, interval: float, force: bool = False) -> None:
    """Resolve jobs whose worker died (see the module's docstring).

    RQ notices such jobs only when its maintenance runs; every worker calls this
    often instead, and a lock lets one of them do it once per ``interval``
    (``force`` skips the lock, for RQ's maintenance, whose own cleanup would
    otherwise tell nobody). Then records that still say a job waits or runs while
    RQ says otherwise are brought in step.
    """
    redis = queue.connection
    if not force and not redis.set(REAPER_LOCK, 1, nx=True, px=max(1, int(interval * 1000))):
        return
    quiet = interval * QUIET_INTERVALS
    put_back_taken(queue, quiet)
    free_kept_places(redis)
    registry = queue.started_job_registry
    now = clock.time()
    expired = registry.get_expired_job_ids(now)
    if expired:
        registry.cleanup(now)
    stale = job_json.utcnow() - timedelta(seconds=quiet)
    own = TrackedJob.queue == queue.name
    if queue.name == DEFAULTS["RQ_QUEUE"]:
        own = or_(own, TrackedJob.queue.is_(None))
    rows = db.session.scalars(
        db.select(TrackedJob.id)
        .where(TrackedJob.status.in_(("queued", "started", "scheduled")))
        .where(TrackedJob.updated_at < stale, own)
        .where(TrackedJob.group_mode.is_(None))  # a parent follows its pieces
        .order_by(TrackedJob.created_at)  # rebuilt, they queue up in their first order
        .limit(RECONCILE_BATCH)
    )
    for job_id in dict.fromkeys([*rows, *expired]):
        _resolve(job_id, quiet, stale)
    if force:  # RQ's maintenance, between jobs: not while a job's horse is watched
        retention.purge(queue)


def put_back_taken(queue: Queue, quiet: float) -> list[str]:
    """Requeue jobs taken from the queue by a worker that died before starting them.

    A job is taken by a dead worker when it has been in the intermediate list,
    without a live execution, for ``quiet`` seconds: a live worker registers its
    execution right after taking a job, and then keeps its heartbeat. When each
    job was first seen there is kept in a hash, so the wait holds across
    reapings and across workers. Returns the jobs put back.
    """
    redis = queue.connection
    seen_key = taken_key(queue.name)
    taken = queue.intermediate_queue.get_job_ids()
    seen = {key.decode(): float(value) for key, value in redis.hgetall(seen_key).items()}
    if not taken and not seen:
        return []  # the usual case: no job taken now, none seen before
    now = _redis_now(redis)
    first_seen = {job_id: seen.get(job_id, now) for job_id in taken}
    with redis.pipeline() as pipe:
        pipe.delete(seen_key)
        if first_seen:
            pipe.hset(seen_key, mapping=first_seen)
        pipe.execute()
    put_back = []
    for job_id in taken:
        if now - first_seen[job_id] < quiet:
            continue
        keys = [
            queue.intermediate_queue.key,
            queue.key,
            queue.job_class.key_for(job_id),
            ExecutionRegistry(job_id, connection=redis).key,
            queue.started_job_registry.key,
            queue.intermediate_queue.get_first_seen_key(job_id),
        ]
        if redis.eval(_PUT_BACK, len(keys), *keys, job_id, clock.time()):
            current_app.logger.warning("job %s: its worker died before starting it", job_id)
            put_back.append(job_id)
    return put_back


def free_kept_places(redis: Redis) -> None:
    """Free the places under running limits that jobs no longer queued or running
    hold, for the users who have jobs held back (RQ's own cleanup, which its
    maintenance runs only every ``WORKER_DEATH_SECONDS``)."""
    registries = RateLimitRegistry.all(redis)
    if not registries:
        return
    with redis.pipeline(transaction=False) as pipe:
        for registry in registries:
            pipe.zcard(registry.rate_limited_key)
        held = pipe.execute()
    for registry, count in zip(registries, held, strict=True):
        if count:
            registry.cleanup()


def _resolve(job_id: str, quiet: float, stale: datetime) -> None:
    """A job's worker may have died, or Redis lost the job: make its record say what
    RQ says, or put the job back in RQ from its record."""
    row = db.session.get(TrackedJob, job_id)
    if row is None or row.status in job_json.TERMINAL:
        return
    job = fetch_job(job_id)
    if job is None:
        control.rebuild(row, stale)
        return
    status = job.get_status().value
    if status == row.status or (row.status, status) == ("scheduled", "queued"):
        return  # RQ's scheduler enqueues a retry that waited without saying so
    if status in ("failed", "queued", "scheduled"):
        current_app.logger.warning("job %s: its worker died; now %s", job_id, status)
        lifecycle.job_changed(job, status, error=WORKER_DIED, retry=control.retry_info(job))
    elif status in job_json.TERMINAL and _ended_before(job.ended_at, quiet):
        # Its worker died after RQ stored the end and before it was recorded. (Until
        # then, the worker may be recording it this very moment.)
        current_app.logger.warning("job %s: %s; its worker died before saying so", job_id, status)
        result = job.return_value() if status == "finished" else None
        lifecycle.job_changed(job, status, result=result)


def _ended_before(ended_at: datetime | None, seconds: float) -> bool:
    if ended_at is None:
        return True
    if ended_at.tzinfo is None:
        ended_at = ended_at.replace(tzinfo=UTC)
    return clock.now() - ended_at > timedelta(seconds=seconds)


def _redis_now(redis: Redis) -> float:
    """Redis's clock, the one every worker shares."""
    seconds, micros = redis.time()
    return seconds + micros / 1e6
