"""Job control: cancel and retry, and jobs whose worker died.

A cancel request is a Redis key of its own, not part of the job's ``meta``
(``save_meta`` rewrites the whole dict and would erase it). A queued job is
canceled at once; a running one stops at its next :func:`myapp.progress.update`
(cooperatively), or is stopped by its worker after ``CANCEL_GRACE_SECONDS`` if
it reports nothing.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask import current_app
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.queue import Queue

from myapp import batches, lifecycle, limits, state
from myapp.connections import get_queue, get_redis
from myapp.db import db
from myapp.jobs import KINDS, enqueue
from myapp.models import TrackedJob
from myapp.progress import cancel_key

#: The error of a job whose worker was killed under it.
WORKER_DIED = "worker died"
#: The error of a job whose Redis record vanished (Redis restarted without it).
LOST = "lost: Redis no longer has this job"
#: Records checked against RQ at most, per reaping.
RECONCILE_BATCH = 100
_REAPER_LOCK = "myapp:reaper"


class Conflict(Exception):
    """The job is not in a state that allows this (answered with 409)."""


def cancel_requested_at(redis, job_id: str) -> float | None:
    value = redis.get(cancel_key(job_id))
    return float(value) if value is not None else None


def fetch(job_id: str) -> Job | None:
    queue = get_queue()
    try:
        return Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
    except NoSuchJobError:
        return None


def cancel(row: TrackedJob) -> dict[str, Any]:
    """Cancel a queued or running job; 409 (:class:`Conflict`) once it has ended.

    Canceling a batch or sequence cancels its pieces that have not ended and
    keeps those that finished; a piece is canceled with its parent, not alone.
    """
    if row.parent_id is not None:
        raise Conflict("this job is a piece of another; cancel that one instead")
    if row.status in state.TERMINAL:
        raise Conflict(f"the job has already ended ({row.status}); nothing to cancel")
    if row.group_mode:
        batches.cancel(get_redis(), row.id)
        for child in _children(row, lambda status: status not in state.TERMINAL):
            _cancel_one(child)
        db.session.refresh(row)
        return row.to_dict()
    return _cancel_one(row)


def _cancel_one(row: TrackedJob) -> dict[str, Any]:
    redis = get_redis()
    redis.set(cancel_key(row.id), time.time(), ex=86400)
    job = fetch(row.id)
    if job is not None and job.get_status() == "started":
        return row.to_dict()  # its worker stops it; the stream says when
    if job is not None:
        try:
            job.cancel()
        except InvalidJobOperation:
            pass  # canceled already, by a request a moment ago
    now = state.utcnow()
    return lifecycle.row_changed(row, status="canceled", ended_at=now)


def retry(row: TrackedJob) -> dict[str, Any]:
    """Run a failed or canceled job again; a resumable one goes on from its checkpoint.

    For a batch or sequence, only its pieces that did not finish run again.
    """
    if row.parent_id is not None:
        raise Conflict("this job is a piece of another; retry that one instead")
    if row.status not in ("failed", "canceled", "stopped"):
        raise Conflict(f"only a failed or canceled job can be retried, not a {row.status} one")
    if row.kind not in KINDS:
        raise Conflict(f"jobs of kind {row.kind!r} can no longer be run")
    limits.admit(row.user_id, row.id)
    try:
        if not row.group_mode:
            return _requeue(row)
        again = _children(row, lambda status: status != "finished")
        batches.reopen(get_redis(), row, again)
        previous = None
        for child in again:
            _requeue(child, depends_on=previous if row.group_mode == "sequence" else None)
            previous = child.id
        db.session.refresh(row)
        return row.to_dict()
    except Exception:
        limits.release(row.user_id, row.id)
        raise


def _requeue(row: TrackedJob, depends_on: str | None = None) -> dict[str, Any]:
    get_redis().delete(cancel_key(row.id))
    drop(row.id)  # a new job under the same id takes its place
    enqueue(row, depends_on=depends_on)
    return lifecycle.row_changed(
        row, status="queued", started_at=None, ended_at=None, error=None, result=None
    )


def drop(job_id: str) -> None:
    """Delete the job from RQ, if RQ still has it."""
    job = fetch(job_id)
    if job is not None:
        job.delete()


def _children(row: TrackedJob, wanted) -> list[TrackedJob]:
    return [child for child in row.children if wanted(child.status)]


def sync(job_id: str) -> None:
    """Copy what RQ now says of a job into our record and its user's stream.

    For changes made behind our back, as in rq-dashboard: a job deleted there
    ends ``canceled``; a requeued one is ``queued`` again.
    """
    row = db.session.get(TrackedJob, job_id)
    if row is None or row.group_mode:
        return  # a parent has no RQ job: its pieces are synced one by one
    job = fetch(job_id)
    if job is None:
        if row.status not in state.TERMINAL:
            lifecycle.row_changed(
                row, status="canceled", ended_at=state.utcnow(), error="deleted in rq-dashboard"
            )
        return
    status = job.get_status().value
    if status == row.status:
        return
    if status in state.TERMINAL:
        lifecycle.row_changed(row, status=status, ended_at=row.ended_at or state.utcnow())
    else:
        lifecycle.row_changed(row, status=status, ended_at=None, error=None, result=None)


def retry_info(job: Job) -> dict[str, Any] | None:
    """Which attempt comes next and when, while an automatic retry waits."""
    status = job.get_status(refresh=False)
    attempts = job.meta.get("max_attempts", 1)
    if status not in ("scheduled", "queued") or attempts <= 1 or job.retries_left is None:
        return None
    when = None
    if status == "scheduled":
        when = state.iso(get_queue().scheduled_job_registry.get_scheduled_time(job))
    return {"attempt": attempts - job.retries_left, "of": attempts, "at": when}


def reap(queue: Queue, interval: float, force: bool = False) -> None:
    """Resolve jobs whose worker died: retried when their kind allows, else failed.

    RQ notices such jobs only when their heartbeat expires and its maintenance
    runs (every 10 minutes); every worker calls this often instead, and a lock
    lets one of them do it once per ``interval`` (``force`` skips the lock, for
    RQ's maintenance, whose own cleanup would otherwise tell nobody). Then records
    that still say a job runs while RQ says otherwise are brought in step, which
    also catches a death RQ resolved on its own, and jobs Redis lost.
    """
    redis = queue.connection
    if not force and not redis.set(_REAPER_LOCK, 1, nx=True, px=max(1, int(interval * 1000))):
        return
    registry = queue.started_job_registry
    now = time.time()
    expired = registry.get_expired_job_ids(now)
    if expired:
        registry.cleanup(now)
    stale = state.utcnow() - timedelta(seconds=interval * 4)
    rows = db.session.scalars(
        db.select(TrackedJob.id)
        .where(TrackedJob.status.in_(("queued", "started")), TrackedJob.updated_at < stale)
        .where(TrackedJob.group_mode.is_(None))  # a parent follows its pieces
        .limit(RECONCILE_BATCH)
    )
    for job_id in {*expired, *rows}:
        _resolve(job_id)


def _resolve(job_id: str) -> None:
    """A job's worker may have died: make its record say what RQ says."""
    row = db.session.get(TrackedJob, job_id)
    if row is None or row.status in state.TERMINAL:
        return
    job = fetch(job_id)
    if job is None:
        current_app.logger.warning("job %s: Redis lost it", job_id)
        lifecycle.row_changed(row, status="failed", ended_at=state.utcnow(), error=LOST)
        return
    status = job.get_status().value
    if status in ("failed", "queued", "scheduled") and status != row.status:
        current_app.logger.warning("job %s: its worker died; now %s", job_id, status)
        lifecycle.job_changed(job, status, error=WORKER_DIED, retry=retry_info(job))
