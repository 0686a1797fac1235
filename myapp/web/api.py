"""The JSON API: start jobs and read them back, for the page and for scripts."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, request
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import tuple_

from myapp.connections import get_redis
from myapp.db import db
from myapp.errors import InvalidJob, NotFound, Unauthenticated, Unavailable
from myapp.job_json import STATUSES
from myapp.jobs import KINDS, control, limits
from myapp.jobs.submit import submit, validate
from myapp.models import TrackedJob
from myapp.pipeline import line, output
from myapp.web import share
from myapp.web.contacts_csv import form_payload

bp = Blueprint("api", __name__, url_prefix="/api")

#: How many jobs one page of ``GET /api/jobs`` holds at most (and by default).
LIST_LIMIT = 200


#: The answer when Redis does not answer: nothing was started.
QUEUE_DOWN = "the job queue is unavailable; nothing was started"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.before_request
def _require_user():
    if not current_user.is_authenticated:
        raise Unauthenticated


@bp.get("/jobs")
def list_jobs():
    """The user's jobs, newest first, a page at a time: ``?before=<id>`` lists those
    older than that job, ``?limit=`` at most so many, ``?status=`` (comma-separated)
    and ``?kind=`` filter. ``next_before`` is the cursor of the next page (null on
    the last). The pieces of a batch or sequence are listed by ``?parent=<id>``, in
    their order, rather than among them."""
    query = db.select(TrackedJob).filter_by(user_id=current_user.id)
    parent_id = request.args.get("parent")
    if parent_id is not None:
        _own_job(parent_id)
        query = query.filter_by(parent_id=parent_id).order_by(TrackedJob.position)
        return {
            "jobs": _placed([row.to_answer() for row in db.session.scalars(query)]),
            "next_before": None,
        }
    limit = _limit(request.args.get("limit"))
    query = query.where(TrackedJob.parent_id.is_(None))
    if "status" in request.args:
        query = query.where(TrackedJob.status.in_(_statuses(request.args["status"])))
    if "kind" in request.args:
        query = query.filter_by(kind=_kind(request.args["kind"]))
    if "before" in request.args:
        cursor = db.session.get(TrackedJob, request.args["before"])
        if cursor is None or cursor.user_id != current_user.id or cursor.parent_id is not None:
            raise InvalidJob("before: no such job of yours to list from")
        # Keyset paging: the order is (created_at, id), both descending.
        newer = tuple_(TrackedJob.created_at, TrackedJob.id) < (cursor.created_at, cursor.id)
        query = query.where(newer)
    rows = db.session.scalars(
        query.options(TrackedJob.with_children())
        .order_by(TrackedJob.created_at.desc(), TrackedJob.id.desc())
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    jobs = _placed([row.to_answer() for row in rows])
    return {"jobs": jobs, "next_before": rows[-1].id if more else None}


def _placed(jobs: list[dict]) -> list[dict]:
    """The jobs with their places in line (``queue``), read now: they move by the second."""
    return line.annotate(get_redis(), current_app.config["RQ_QUEUE"], current_user.id, jobs)


def _limit(value: str | None) -> int:
    if value is None:
        return LIST_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= LIST_LIMIT:
        raise InvalidJob(f"limit: a whole number from 1 to {LIST_LIMIT}")
    return int(value)


def _statuses(value: str) -> list[str]:
    wanted = value.split(",")
    unknown = [status for status in wanted if status not in STATUSES]
    if unknown:
        raise InvalidJob(f"status: {unknown[0][:40]!r} is not one of {', '.join(STATUSES)}")
    return wanted


def _kind(value: str) -> str:
    if value not in KINDS:
        raise InvalidJob(f"kind: no such kind {value[:40]!r}")
    return value


@bp.post("/jobs")
def create_job():
    uploading = request.mimetype == "multipart/form-data"  # a CSV, for import_contacts
    try:  # before the body is read: a refused user's 40 MB are never parsed
        limits.precheck(current_user.id, uploading)
    except RedisError as exc:
        raise Unavailable(QUEUE_DOWN) from exc
    if uploading:
        payload = form_payload(request.form, request.files)
    else:
        try:
            payload = request.get_json(silent=True)
        except RecursionError:
            raise InvalidJob("the JSON body is nested too deeply") from None
    if payload is None:
        raise InvalidJob("expected a JSON body (Content-Type: application/json)")
    kind, params = validate(payload)
    try:
        return submit(current_user, kind, params), 202
    except RedisError as exc:
        raise Unavailable(QUEUE_DOWN) from exc


def _own_job(job_id: str) -> TrackedJob:
    """The signed-in user's job; 404 for anyone else's, revealing nothing."""
    row = db.session.get(TrackedJob, job_id)
    if row is None or row.user_id != current_user.id:
        raise NotFound("no such job")
    return row


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return _placed([_own_job(job_id).to_answer()])[0]


@bp.get("/jobs/<job_id>/output")
def job_output(job_id: str):
    """What the job wrote with ``progress.output``: ``{"text", "offset", "truncated"}``;
    ``?after=<offset>`` gives only what follows (offsets count code points)."""
    row = _own_job(job_id)
    after = request.args.get("after", "0")
    if not after.isdigit():
        raise InvalidJob("after: an offset, a whole number from 0")
    return output.read(row, int(after))


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    """202: a running job stops within about a second; the stream says ``canceled``."""
    return control.cancel(_own_job(job_id)), 202


@bp.post("/jobs/<job_id>/share")
def share_job(job_id: str):
    """201: a link anyone may open to watch the job live, read-only, until it expires
    (``{"expires_in": <seconds>}``, default an hour, at most a day)."""
    row = _own_job(job_id)
    body = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict):
        raise InvalidJob('expected a JSON object, {"expires_in": <seconds>}')
    return share.issue(row, body.get("expires_in")), 201


@bp.delete("/jobs/<job_id>/share")
def unshare_job(job_id: str):
    """204: every link to the job stops working; open watch streams end within a heartbeat."""
    row = _own_job(job_id)
    try:
        share.revoke(row, get_redis())
    except RedisError as exc:  # the record is revoked: only open streams may run on
        raise Unavailable("the links are revoked, but open views may run on a while") from exc
    return "", 204


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):
    row = _own_job(job_id)
    try:
        return control.retry(row), 202
    except RedisError as exc:
        raise Unavailable(QUEUE_DOWN) from exc
