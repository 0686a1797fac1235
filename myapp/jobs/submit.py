"""Starting a job: validate the request, write its records, enqueue it, tell the user.

Nothing is left half-made: a step that fails undoes the steps before it.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from pydantic import ValidationError
from rq import Retry
from rq.rate_limit import RateLimit
from sqlalchemy import delete, insert
from sqlalchemy.orm.attributes import set_committed_value

from myapp import job_json
from myapp.connections import drop_job, get_queue, get_redis
from myapp.db import db, kept_after_commit
from myapp.errors import InvalidJob
from myapp.jobs import KINDS, limits, uploads
from myapp.keys import running_limit_key
from myapp.models import TrackedJob, Upload, User
from myapp.ordering import FIRST
from myapp.pipeline import aggregate, counters, lifecycle

#: Parameter errors listed in one answer; a huge bad request gets a short reply.
MAX_ERRORS_LISTED = 10
#: The statement that writes a job's rows, made once: SQLAlchemy finds its compiled
#: form by a key that a new statement would compute again.
_INSERT = insert(TrackedJob.__table__)


def validate(payload: Any) -> tuple[str, dict[str, Any]]:
    """Check ``{"kind": ..., "params": {...}}`` and return the kind and clean params."""
    if not isinstance(payload, dict):
        raise InvalidJob("the body must be a JSON object with 'kind' and 'params'")
    unknown = set(payload) - {"kind", "params"}
    if unknown:
        raise InvalidJob(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    kind = payload.get("kind")
    if not isinstance(kind, str) or kind not in KINDS or KINDS[kind].internal:
        known = ", ".join(sorted(name for name, spec in KINDS.items() if not spec.internal))
        raise InvalidJob(f"unknown kind {kind!r}; known kinds: {known}")
    params = payload.get("params", {})
    if not isinstance(params, dict):
        raise InvalidJob("'params' must be a JSON object")
    try:
        model = KINDS[kind].params.model_validate(params, strict=True)
    except ValidationError as exc:
        errors = [_describe(error) for error in exc.errors()[:MAX_ERRORS_LISTED]]
        if exc.error_count() > MAX_ERRORS_LISTED:
            errors.append(f"and {exc.error_count() - MAX_ERRORS_LISTED} more")
        raise InvalidJob("; ".join(errors)) from None
    return kind, model.model_dump(mode="json")


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in ("params", *error["loc"]))
    return f"{where}: {error['msg']}"


def submit(user: User, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Record and enqueue a job whose ``params`` passed :func:`validate`.

    The caller checked the hourly quota (:func:`myapp.jobs.limits.precheck`). The user's
    storage is checked and place taken first (:class:`myapp.errors.StorageFull`,
    :class:`myapp.errors.TooManyJobs`), then the rows are written (a job in pieces
    has one per piece; an upload goes in a row of its own, named by the params),
    then the jobs enqueued; a failure at any point undoes the steps before it, so
    nothing is left half-made.

    The rows are written by one INSERT per shape (the parent, its pieces), not by
    the session's unit of work: the request reads them back from the objects made
    here, which never join the session.
    """
    spec = KINDS[kind]
    now = job_json.utcnow()
    job_id = str(uuid.uuid4())
    upload = None
    if spec.upload is not None:
        data = uploads.pack(params[spec.upload])
        limits.check_storage(user.id, len(data))
        upload = uploads.new(user.id, job_id, data)
        kept = {name: value for name, value in params.items() if name != spec.upload}
        params = {**kept, "upload": upload.id}
    queue = current_app.config["RQ_QUEUE"]
    parent = {
        "id": job_id,
        "user_id": user.id,
        "kind": kind,
        "params": params,
        "status": "queued",
        "version": FIRST,
        "created_at": now,
        "updated_at": now,
        "group_mode": spec.mode,
        "queue": queue,
    }
    pieces = spec.pieces(params) if spec.pieces else []
    if pieces:  # a parent's bar starts at 0 of its pieces, not "unknown"
        parent.update(progress_done=0, progress_total=len(pieces), progress_percent=0.0)
    pieces_values = [
        {
            "id": str(uuid.uuid4()),
            "user_id": user.id,
            "kind": piece.kind,
            "params": piece.params,
            "status": "queued",
            "version": FIRST,
            "created_at": now,
            "updated_at": now,
            "parent_id": job_id,
            "position": position,
            "name": piece.name,
            "weight": piece.weight,
            "queue": queue,
        }
        for position, piece in enumerate(pieces)
    ]
    row = TrackedJob(**parent)
    children = [TrackedJob(**values) for values in pieces_values]
    if spec.mode:  # the parent lists its pieces without reading them back
        set_committed_value(row, "children", children)
    try:
        limits.admit(user.id, row.id)
    except Exception:  # refused, or Redis down: the upload added above is not kept
        db.session.rollback()
        raise
    try:
        _write([parent], pieces_values, upload=upload)
        try:
            if spec.mode == "sequence":
                aggregate.start(get_redis(), row, children)
                _enqueue_stages(children)
                counters.job_enqueued(get_redis(), kind)
            else:
                if children:
                    aggregate.start(get_redis(), row, children)
                _enqueue_new(row, children)
        except Exception:
            # Whatever kept the jobs out of Redis, no row or job may outlive it.
            for job in [*children, row]:
                drop_job(job.id)
            _unwrite([row.id, *(child.id for child in children)], upload)
            raise
    except Exception:
        limits.release(user.id, row.id)
        raise
    job = row.to_dict()
    lifecycle.publish(user.id, job)
    return job


def _write(*rows: list[dict[str, Any]], upload: Upload | None) -> None:
    """Commit the rows (each list one INSERT), with the upload the session holds if any;
    without one, on a connection of their own, which costs less than the session."""
    if upload is None:
        with db.engine.begin() as conn:
            for values in filter(None, rows):
                conn.execute(_INSERT, values)
        return
    for values in filter(None, rows):
        db.session.execute(_INSERT, values)
    with kept_after_commit():  # the user and the upload stay loaded
        db.session.commit()


def _unwrite(ids: list[str], upload: Upload | None) -> None:
    """Delete the rows :func:`_write` committed, and the upload."""
    gone = delete(TrackedJob.__table__).where(TrackedJob.id.in_(ids))
    if upload is None:
        with db.engine.begin() as conn:
            conn.execute(gone)
        return
    db.session.execute(gone)
    db.session.delete(upload)
    db.session.commit()


def _enqueue_new(row: TrackedJob, children: list[TrackedJob]) -> None:
    """Enqueue a new job with its count in one round trip; a batch's pieces in two:
    the first ``MAX_RUNNING_JOBS_PER_USER`` (which may start at once), then the rest."""
    queue = get_queue()
    jobs = children or [row]
    first = current_app.config["MAX_RUNNING_JOBS_PER_USER"] if children else len(jobs)
    for start, run in ((0, jobs[:first]), (first, jobs[first:])):
        if not run:
            continue
        with get_redis().pipeline() as pipe:
            queue.enqueue_held([_call(job) for job in run], pipe, places=(start, len(jobs)))
            counters.job_enqueued(pipe, run[0].kind, len(run))  # the pieces share a kind
            if children and start == 0:
                counters.job_enqueued(pipe, row.kind)
            pipe.execute()


def _enqueue_stages(children: list[TrackedJob]) -> None:
    """Enqueue a sequence's stages, each waiting for the one before (``depends_on``)."""
    previous = None
    for child in children:
        enqueue(child, depends_on=previous)
        previous = child.id


def enqueue(
    row: TrackedJob,
    depends_on: str | None = None,
    version: int | None = None,
    attempts_used: int = 0,
) -> None:
    """Put the row's job on the queue (again, for a retry), under its own id, with
    the version of its ``queued`` state (the row's, unless given).

    At most ``MAX_RUNNING_JOBS_PER_USER`` of a user's jobs run at once (RQ's rate
    limit holds the others back), so one user cannot take every worker. A piece
    of a sequence waits for the stage before it (``depends_on``). A job rebuilt
    after Redis lost it while it ran has ``attempts_used`` of its kind's attempts
    spent already (:func:`myapp.jobs.control.rebuild`); the caller checked one is left.
    """
    queue = get_queue()
    call = _call(row, version, attempts_used)
    if depends_on is not None:  # RQ's own way, which watches the stage before
        queue.enqueue_call(**call, depends_on=depends_on)
        counters.job_enqueued(get_redis(), row.kind)
        return
    with get_redis().pipeline() as pipe:
        queue.enqueue_held([call], pipe)
        counters.job_enqueued(pipe, row.kind)
        pipe.execute()


def _call(row: TrackedJob, version: int | None = None, attempts_used: int = 0) -> dict[str, Any]:
    """RQ's arguments for the row's job (:meth:`rq.Queue.create_job`'s)."""
    spec = KINDS[row.kind]
    retry = spec.retry
    if retry is not None and attempts_used:
        # RQ picks the next interval by the retries left, so the wait is the same.
        retry = Retry(max=retry.max - attempts_used, interval=retry.intervals)
    concurrency = current_app.config["MAX_RUNNING_JOBS_PER_USER"]
    meta = {
        "user_id": row.user_id,
        "kind": row.kind,
        "created_at": job_json.iso(row.created_at),
        "version": version or row.version,
        "max_attempts": 1 + (spec.retry.max if spec.retry else 0),
    }
    if row.parent_id is not None:
        meta.update(parent_id=row.parent_id, name=row.name)
    return {
        "func": spec.func,
        "kwargs": row.params,
        "job_id": row.id,
        "timeout": spec.timeout,
        "retry": retry,
        "description": f"{row.kind} {row.id}",
        "meta": meta,
        "rate_limit": RateLimit(running_limit_key(row.user_id), concurrency),
    }
