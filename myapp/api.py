"""The JSON API: start jobs and read them back, for the page and for scripts."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, current_app, jsonify, request
from flask_login import current_user
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from myapp import control, jobs, limits
from myapp.auth import wants_json
from myapp.db import db
from myapp.models import TrackedJob

bp = Blueprint("api", __name__, url_prefix="/api")

#: How many jobs ``GET /api/jobs`` returns at most, newest first.
LIST_LIMIT = 200


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _http_error)


def _http_error(error: HTTPException):
    """Answer API clients in JSON for every HTTP error (404, 405, 413, ...)."""
    if wants_json():
        return jsonify(error=error.description), error.code
    return error


@bp.before_request
def _require_user():
    if not current_user.is_authenticated:
        return jsonify(error="authentication required"), 401
    return None


@bp.get("/jobs")
def list_jobs():
    """The user's jobs, newest first; the pieces of a batch or sequence are listed
    by ``?parent=<id>``, in their order, rather than among them."""
    query = db.select(TrackedJob).filter_by(user_id=current_user.id)
    parent_id = request.args.get("parent")
    if parent_id is not None:
        _own_job(parent_id)
        query = query.filter_by(parent_id=parent_id).order_by(TrackedJob.position)
    else:
        query = (
            query.where(TrackedJob.parent_id.is_(None))
            .options(TrackedJob.with_children())
            .order_by(TrackedJob.created_at.desc(), TrackedJob.id)
            .limit(LIST_LIMIT)
        )
    return {"jobs": [row.to_dict() for row in db.session.scalars(query)]}


#: The answer to each refusal of :mod:`myapp.limits`.
_REFUSED = {limits.TooManyJobs: 429, limits.StorageFull: 413}


@bp.post("/jobs")
def create_job():
    uploading = request.mimetype == "multipart/form-data"  # a CSV, for import_contacts
    try:  # before the body is read: a refused user's 40 MB are never parsed
        limits.precheck(current_user.id, uploading)
    except (limits.TooManyJobs, limits.StorageFull, RedisError) as exc:
        return _refused(exc, "new")
    if uploading:
        try:
            payload = jobs.import_contacts.form_payload(request.form, request.files)
        except jobs.InvalidJob as exc:
            return jsonify(error=str(exc)), 400
    else:
        try:
            payload = request.get_json(silent=True)
        except RecursionError:
            return jsonify(error="the JSON body is nested too deeply"), 400
    if payload is None:
        return jsonify(error="expected a JSON body (Content-Type: application/json)"), 400
    try:
        kind, params = jobs.validate(payload)
    except jobs.InvalidJob as exc:
        return jsonify(error=str(exc)), 400
    try:
        job = jobs.submit(current_user, kind, params)
    except (limits.TooManyJobs, limits.StorageFull, RedisError) as exc:
        return _refused(exc, kind)
    return job, 202


def _refused(exc: Exception, kind: str):
    if isinstance(exc, RedisError):
        current_app.logger.exception("could not enqueue a %s job", kind)
        return jsonify(error="the job queue is unavailable; nothing was started"), 503
    return jsonify(error=str(exc)), _REFUSED[type(exc)]


def _own_job(job_id: str) -> TrackedJob:
    """The signed-in user's job; 404 for anyone else's, revealing nothing."""
    row = db.session.get(TrackedJob, job_id)
    if row is None or row.user_id != current_user.id:
        abort(404, description="no such job")
    return row


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return _own_job(job_id).to_dict()


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    """202: a running job stops within about a second; the stream says ``canceled``."""
    try:
        return control.cancel(_own_job(job_id)), 202
    except control.Conflict as exc:
        return jsonify(error=str(exc)), 409


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):
    row = _own_job(job_id)
    try:
        return control.retry(row), 202
    except control.Conflict as exc:
        return jsonify(error=str(exc)), 409
    except (limits.TooManyJobs, RedisError) as exc:
        return _refused(exc, row.kind)
