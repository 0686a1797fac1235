"""Where a job's state becomes an event: the user's stream and the database record.

Every change of a job's state (the web submitting, canceling or retrying it, the
worker starting and ending it, :mod:`myapp.progress` moving it) is published here,
and nothing else publishes job state. The record of a state is written here too,
except the rows :mod:`myapp.jobs.submit` first writes and the checkpoint
:mod:`myapp.steps` commits with a job's work. docs/architecture.md draws the route
and names the rules it keeps (ordering, coalescing).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import current_app
from redis.client import Pipeline
from rq.job import Job
from rq.results import Result

from myapp import job_json, logs
from myapp.connections import drop_job, get_queue, get_redis
from myapp.db import db, ride_out
from myapp.keys import channel_for
from myapp.models import TrackedJob
from myapp.ordering import new_version
from myapp.pipeline import aggregate, event_log, line
from myapp.pipeline.aggregate import fold
from myapp.pipeline.counters import job_ended
from myapp.pipeline.parent import parent_state
from myapp.pipeline.stages import later_stages


def job_changed(
    job: Job,
    status: str,
    error: str | None = None,
    result: Any = None,
    retry: dict[str, Any] | None = None,
) -> None:
    """The worker saw ``job`` change status: record it and tell its user.

    A change of status is newer than any state of the job before it, from any
    process: it takes a new epoch (:mod:`myapp.ordering`), kept in ``meta`` for
    the progress that follows (:mod:`myapp.progress` saves it with each report).
    """
    job.meta["version"] = new_version(get_redis(), job.id, after=job.meta.get("version", 0))
    data = job_json.from_rq(job, status=status, error=error, result=result, retry=retry)
    # A start moves the line: the rate the places' estimates come from (myapp.pipeline.line).
    started = partial(line.count_start, queue_name=job.origin, job_id=job.id)
    emit(job, data, durable=True, also=started if status == "started" else None)
    logs.job_changed(data, job.meta["user_id"])


def row_changed(
    row: TrackedJob,
    version: int | None = None,
    retry: dict[str, Any] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """The web changed a job (canceled before it ran, retried), or the reaper rebuilt
    it: record and tell. ``retry`` says which attempt comes next, as from a worker.

    The state takes a new version, or ``version`` when the caller took it already
    (a retry does, before it enqueues: see :func:`myapp.jobs.control.retry`).
    """
    for name, value in changes.items():
        setattr(row, name, value)
    row.version = version or new_version(get_redis(), row.id, after=row.version)
    row.updated_at = job_json.utcnow()
    if retry is not None:  # no column holds it: the state the record keeps does
        row.state = {**row.to_dict(), "retry": retry}
    db.session.commit()
    data = row.to_dict()
    publish(row.user_id, data)
    if row.parent_id is not None:
        _child_changed(row.user_id, data)
    return data


def emit(
    job: Job,
    data: dict[str, Any],
    durable: bool,
    meta: bytes | None = None,
    also: Callable[[Pipeline], Any] | None = None,
) -> Any:
    """Publish ``data`` on the owner's stream; record it first when ``durable``.

    The database is written before the event goes out, so a client that reloads
    after seeing an event never reads an older state. Saving the job's
    serialized ``meta``, publishing and ``also`` (more commands; their results
    are returned) share one pipelined round trip to Redis.
    """
    if durable:
        record(data)
    with get_redis().pipeline(transaction=False) as pipe:
        if meta is not None:
            pipe.hset(job.key, "meta", meta)
        _append(pipe, job.meta["user_id"], data)
        first = len(pipe)
        if also is not None:
            also(pipe)
        results = pipe.execute()
    if data["parent"] is not None:
        _child_changed(job.meta["user_id"], data)
    return results[first:] if also is not None else None


def record(data: dict[str, Any]) -> None:
    """Write the job's state in a transaction of its own: a job body's uncommitted work
    (see :mod:`myapp.steps`) must not be committed along with it. A database out of
    reach for a while delays the write (:func:`myapp.db.ride_out`), rather than lose it."""
    ride_out(lambda: _record(data), f"record of job {data['id']}")


def compile_record() -> None:
    """Compile the record's UPDATE in this process (it writes no row): work horses
    forked from it then use it as it is, rather than each compile it again."""
    nobody = job_json.job_json(
        id="", kind="", status="queued", version=0, done=None, total=None, message=None,
        created_at=None, started_at=None, ended_at=None, updated_at=None, error=None,
        result=None,
    )  # fmt: skip
    with db.engine.begin() as connection:
        connection.execute(TrackedJob.record(nobody))


def _record(data: dict[str, Any]) -> None:
    # No row changes when a newer state came first: a parent's, aggregated in another
    # process, or one the web wrote (a cancel) while this was on its way (myapp.ordering).
    with db.engine.begin() as connection:
        if connection.execute(TrackedJob.record(data)).rowcount:
            return
        found = connection.scalar(db.select(TrackedJob.id).filter_by(id=data["id"]))
    if found is None:
        current_app.logger.warning("job %s has no database record", data["id"])


def publish(user_id: int, data: dict[str, Any]) -> None:
    """Publish a job state that is already recorded (as when it was just submitted)."""
    _append(get_redis(), user_id, data)
    logs.job_changed(data, user_id)


def _append(redis, user_id: int, data: dict[str, Any]) -> None:
    retention = current_app.config["STREAM_RETENTION_SECONDS"]
    event_log.append(redis, channel_for(user_id), {"data": data, "type": "job"}, retention)
    if data["status"] in job_json.TERMINAL:
        job_ended(redis, data)
        _bound_in_redis(redis, data["id"])


# Once the record holds a job's end, RQ's copy is only for rq-dashboard: it expires
# within ARGV[1] seconds (sooner if RQ said so, as a finished job's result_ttl does),
# and so does its place in the failed registry (RQ keeps a failure a year). The
# canceled registry, which RQ never cleans, is cleared by myapp.worker.reaper.
# KEYS: job hash, its results, failed registry. ARGV: TTL, job id.
_BOUND = """
local ttl = tonumber(ARGV[1])
for i = 1, 2 do
  local left = redis.call('TTL', KEYS[i])
  if left == -1 or left > ttl then redis.call('EXPIRE', KEYS[i], ttl) end
end
local until_ = tonumber(redis.call('TIME')[1]) + ttl
local score = redis.call('ZSCORE', KEYS[3], ARGV[2])
if score and (score == 'inf' or tonumber(score) > until_) then
  redis.call('ZADD', KEYS[3], until_, ARGV[2])
end
"""


def _bound_in_redis(redis, job_id: str) -> None:
    queue = get_queue()
    keys = [
        Job.key_for(job_id),
        Result.get_key(job_id),
        queue.failed_job_registry.key,
    ]
    redis.eval(_BOUND, len(keys), *keys, current_app.config["JOB_REDIS_TTL_SECONDS"], job_id)


# -- jobs in pieces: a child's change moves its parent (see myapp.pipeline.aggregate) --------


def _child_changed(user_id: int, child: dict[str, Any]) -> None:
    config = current_app.config
    gap, db_interval = 1 / config["PROGRESS_MAX_RATE"], config["PROGRESS_DB_INTERVAL"]
    if child["status"] in ("failed", "canceled"):
        parent = db.session.get(TrackedJob, child["parent"])
        if parent is not None and parent.group_mode == "sequence":
            _skip_after(child)
    outcome = fold(get_redis(), child, gap, db_interval)
    _parent_changed(user_id, child["parent"], outcome)


def flush_parent(user_id: int, parent_id: str) -> None:
    """Send the parent's event that a throttle held back, if nobody sent it since."""
    config = current_app.config
    gap, db_interval = 1 / config["PROGRESS_MAX_RATE"], config["PROGRESS_DB_INTERVAL"]
    _parent_changed(user_id, parent_id, aggregate.flush(get_redis(), parent_id, gap, db_interval))


#: Held by a delayed flush while it runs, and by every ``os.fork()`` while it forks. A
#: work horse forked while a flush's thread held a lock (SQLAlchemy's pool's, say)
#: waited for it forever: that thread does not exist in the horse.
_not_forking = threading.Lock()
os.register_at_fork(
    before=_not_forking.acquire,
    after_in_parent=_not_forking.release,
    after_in_child=_not_forking.release,
)


def _parent_changed(user_id: int, parent_id: str, outcome: Any) -> None:
    if isinstance(outcome, float):
        app = current_app._get_current_object()
        timer = threading.Timer(outcome, _flush_later, (app, user_id, parent_id))
        timer.daemon = True
        timer.start()
    elif outcome is not None:
        parent = db.session.get(TrackedJob, parent_id)
        if parent is None:
            return
        before = parent.status
        data = parent_state(parent, outcome)
        if outcome.durable:
            record(data)
        _append(get_redis(), user_id, data)
        if data["status"] != before:
            logs.job_changed(data, user_id)


def _flush_later(app, user_id: int, parent_id: str) -> None:
    with _not_forking, app.app_context():
        flush_parent(user_id, parent_id)


def _skip_after(child: dict[str, Any]) -> None:
    """A stage of a sequence failed: those after it will never start."""

    db.session.rollback()  # the failed stage's unfinished work is not kept
    for stage in later_stages(child["id"]):
        drop_job(stage.id)
        error = f"skipped: {child['name']} {child['status']}"
        row_changed(stage, status="skipped", ended_at=job_json.utcnow(), error=error)
