"""Job control: cancel, retry, rebuilding a job Redis lost, and changes made in rq-dashboard.

A cancel request is a Redis key of its own, not part of the job's ``meta``
(``save_meta`` rewrites the whole dict and would erase it). A queued job is
canceled at once; a running one stops at its next :func:`myapp.progress.update`
(cooperatively), or is stopped by its worker after ``CANCEL_GRACE_SECONDS`` if
it reports nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from pydantic import ValidationError
from rq.exceptions import InvalidJobOperation
from rq.job import Job

from myapp import clock, job_json
from myapp.connections import drop_job, fetch_job, get_queue, get_redis
from myapp.db import db
from myapp.errors import Conflict
from myapp.jobs import KINDS, limits
from myapp.jobs.submit import enqueue
from myapp.keys import cancel_key
from myapp.models import TrackedJob, Upload
from myapp.ordering import new_version
from myapp.pipeline import aggregate, lifecycle


def cancel_requested_at(redis, job_id: str) -> float | None:
    value = redis.get(cancel_key(job_id))
    return float(value) if value is not None else None


def cancel(row: TrackedJob) -> dict[str, Any]:
    """Cancel a queued or running job; 409 (:class:`Conflict`) once it has ended.

    Canceling a batch or sequence cancels its pieces that have not ended and
    keeps those that finished; a piece is canceled with its parent, not alone.
    """
    if row.parent_id is not None:
        raise Conflict("this job is a piece of another; cancel that one instead")
    if row.status in job_json.TERMINAL:
        raise Conflict(f"the job has already ended ({row.status}); nothing to cancel")
    if row.group_mode:
        aggregate.cancel(get_redis(), row.id)
        for child in _children(row, lambda status: status not in job_json.TERMINAL):
            try:
                _cancel_one(child)
            except Conflict:
                pass  # it ended meanwhile, and keeps its end
        db.session.refresh(row)
        return row.to_dict()
    return _cancel_one(row)


def request_stop(job_id: str) -> None:
    """Ask a running job to stop: it does at its next progress report, or its worker
    stops it after ``CANCEL_GRACE_SECONDS``, and it ends ``canceled``."""
    get_redis().set(cancel_key(job_id), clock.time(), ex=86400)


def _cancel_one(row: TrackedJob) -> dict[str, Any]:
    request_stop(row.id)
    job = fetch_job(row.id)
    status = job.get_status().value if job is not None else None
    if status == "started":
        return row.to_dict()  # its worker stops it; the stream says when
    if status in job_json.TERMINAL:
        # It ended an instant ago, and its worker is recording that now.
        raise Conflict(f"the job has already ended ({status}); nothing to cancel")
    if job is not None:
        try:
            job.cancel()
        except InvalidJobOperation:
            pass  # canceled already, by a request a moment ago
    now = job_json.utcnow()
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
        aggregate.reopen(get_redis(), row, again)
        previous = None
        for child in again:
            _requeue(child, depends_on=previous if row.group_mode == "sequence" else None)
            previous = child.id
        db.session.refresh(row)
        return row.to_dict()
    except Exception:
        limits.release(row.user_id, row.id)
        raise


def _requeue(
    row: TrackedJob,
    depends_on: str | None = None,
    retry: dict[str, Any] | None = None,
    attempts_used: int = 0,
) -> dict[str, Any]:
    """Enqueue the row again (a retry, a rebuild), then record and tell ``queued``.

    Its version is taken first and goes with the job, so every state of the new run
    is newer than this ``queued`` (:mod:`myapp.ordering`), even when a worker starts
    it at once; and a refused enqueue leaves the record as it was.
    """
    get_redis().delete(cancel_key(row.id))
    drop_job(row.id)  # a new job under the same id takes its place
    queued = new_version(get_redis(), row.id, after=row.version)
    enqueue(row, depends_on=depends_on, version=queued, attempts_used=attempts_used)
    return lifecycle.row_changed(
        row, version=queued, retry=retry, status="queued", started_at=None, ended_at=None,
        error=None, result=None,
    )  # fmt: skip


#: The start of the error of a job Redis lost that cannot run again; the reason follows.
LOST = "lost: Redis no longer has this job"


def rebuild(row: TrackedJob, stale: datetime) -> None:
    """Put back a job whose RQ copy Redis lost, from its record alone.

    Redis may have restarted empty, or a failover dropped its last writes; the
    database is the source of truth. A job that never started is queued again.
    One that had started counts that run as an attempt, as a worker's death
    does: it runs again (from its checkpoint, :mod:`myapp.steps`) if its kind
    retries, else it fails. A piece of a sequence puts back its sequence: the
    current stage as above, the later ones waiting for it again; a batch's
    pieces come one by one, and only unfinished ones come at all. A job that
    cannot run again (its kind gone, its params or upload missing) fails and
    says why. Each goes back as a retry puts a job back (:func:`_requeue`). A job
    changed since ``stale`` may still be running (its worker's writes went to the
    Redis that lost them): it is left for a later call.
    """
    parent = db.session.get(TrackedJob, row.parent_id) if row.parent_id else None
    if parent is not None and parent.group_mode == "sequence":
        _rebuild_sequence(parent, stale)
    elif row.updated_at < stale:
        _rebuild_one(row)


def _rebuild_sequence(parent: TrackedJob, stale: datetime) -> None:
    previous = None
    for stage in parent.children:
        if stage.status == "finished":
            continue
        if stage.status in job_json.TERMINAL:
            return  # a stage failed: the later ones were skipped with it
        if fetch_job(stage.id) is None:
            if previous is None:  # the current stage
                if stage.updated_at >= stale or not _rebuild_one(stage):
                    return
            else:
                enqueue(stage, depends_on=previous)  # waiting, as it was: no new state
        previous = stage.id


def _rebuild_one(row: TrackedJob) -> bool:
    """Rebuild one RQ job; False when it failed instead."""
    why = _why_not_rebuilt(row)
    spec = KINDS.get(row.kind)
    ran = row.status != "queued"
    if why is None and ran and spec.retry is None:
        why = f"it was running, and {row.kind} jobs are not retried"
    if why is not None:
        current_app.logger.warning("job %s: Redis lost it; %s", row.id, why)
        lifecycle.row_changed(
            row, status="failed", ended_at=job_json.utcnow(), error=f"{LOST}; {why}"
        )
        return False
    current_app.logger.warning("job %s: Redis lost it; rebuilt from its record", row.id)
    retry = {"attempt": 2, "of": 1 + spec.retry.max, "at": None} if ran else None
    limits.readmit(row.user_id, row.id)
    _requeue(row, retry=retry, attempts_used=1 if ran else 0)
    return True


def _why_not_rebuilt(row: TrackedJob) -> str | None:
    spec = KINDS.get(row.kind)
    if spec is None or spec.func is None:
        return f"jobs of kind {row.kind!r} can no longer be run"
    if not isinstance(row.params, dict):
        return "its parameters are missing"
    if spec.upload is not None:
        upload = db.session.get(Upload, row.params.get("upload") or "")
        if upload is None or upload.user_id != row.user_id:
            return "its upload is gone"
    elif not _params_fit(spec, row.params):
        return f"its parameters no longer fit jobs of kind {row.kind!r}"
    return None


def _params_fit(spec, params: dict[str, Any]) -> bool:
    try:
        spec.params.model_validate(params)
    except ValidationError:
        return False
    return True


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
    job = fetch_job(job_id)
    if job is None:
        if row.status not in job_json.TERMINAL:
            lifecycle.row_changed(
                row, status="canceled", ended_at=job_json.utcnow(), error="deleted in rq-dashboard"
            )
        return
    status = job.get_status().value
    if status == row.status:
        return
    if status in job_json.TERMINAL:
        lifecycle.row_changed(row, status=status, ended_at=row.ended_at or job_json.utcnow())
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
        when = job_json.iso(get_queue().scheduled_job_registry.get_scheduled_time(job))
    return {"attempt": attempts - job.retries_left, "of": attempts, "at": when}
