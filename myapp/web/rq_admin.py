"""rq-dashboard at ``/rq``, for admin users only, and in step with our records.

rq-dashboard has no access control of its own, reads jobs with pickle unless
told otherwise, prints job fields unescaped, and acts on Redis alone. Here, at
import time (its blueprint is a module-level singleton shared by every app the
tests create):

- only admins get in (others 403; anonymous visitors are sent to sign in), checked
  before any hook of rq-dashboard's own runs;
- every job, worker and requeue it reads uses RQ's JSON serializer, as our jobs do;
- every field it prints is escaped (``templates/rq_dashboard/base.html`` and
  ``static/rq-dashboard-escape.js``), and its CSP allows no inline script but its own
  (:mod:`myapp.web.headers`);
- what changes state answers POST only, with a CSRF token: it sends the
  ``_csrf_token`` cookie back as the ``X-CSRFToken`` header, which Flask-WTF checks
  like any other form;
- Delete of a running job asks it to stop, as the API's cancel does, instead of
  deleting it under its worker (which would finish it anyway);
- what an operator does there (requeue, delete, empty a registry) is copied into
  our job records and told to the users' streams (:func:`myapp.jobs.control.sync`).
"""

from __future__ import annotations

import functools

import rq_dashboard
import rq_dashboard.web
from flask import Flask, current_app, g, jsonify, redirect, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from rq import Queue, Worker
from rq.job import Job, JobStatus, requeue_job
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.serializers import JSONSerializer
from rq_dashboard.web import setup_rq_connection

from myapp.connections import fetch_job, get_queue, get_redis
from myapp.errors import Forbidden, NotFound, Unauthenticated, WrongMethod, wants_json
from myapp.jobs import control

_REGISTRIES = {
    "failed": FailedJobRegistry,
    "deferred": DeferredJobRegistry,
    "started": StartedJobRegistry,
    "finished": FinishedJobRegistry,
    "canceled": CanceledJobRegistry,
    "scheduled": ScheduledJobRegistry,
}


class _JSONJob(Job):
    """A job read with the JSON serializer when the caller names none."""

    def __init__(self, *args, serializer=None, **kwargs):
        super().__init__(*args, serializer=serializer or JSONSerializer, **kwargs)


class _JSONWorker(Worker):
    """Workers listed with the JSON serializer, so a busy one's job can be read."""

    @classmethod
    def all(cls, *args, **kwargs):
        kwargs.setdefault("serializer", JSONSerializer)
        kwargs.setdefault("job_class", _JSONJob)
        return super().all(*args, **kwargs)


rq_dashboard.web.config.serializer = JSONSerializer
rq_dashboard.web.Job = _JSONJob
rq_dashboard.web.Worker = _JSONWorker
rq_dashboard.web.requeue_job = functools.partial(requeue_job, serializer=JSONSerializer)


def init_app(app: Flask) -> None:
    # What it lists as its instance; the client it uses is ours (_our_connection).
    # Our names are its old ones: set its new ones, or it warns that ours are deprecated.
    app.config["RQ_DASHBOARD_REDIS_URL"] = app.config["REDIS_URL"] or (
        f"redis+sentinel://{app.config['REDIS_SENTINELS']}/{app.config['REDIS_SENTINEL_MASTER']}"
    )
    app.config["RQ_DASHBOARD_REDIS_SENTINELS"] = app.config["REDIS_SENTINELS"]
    setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/rq")


@rq_dashboard.blueprint.before_request
def _our_connection():
    """Last of the blueprint's hooks: rq-dashboard's own makes a client from the URL
    on every request; ours follows the primary through a failover and has the pool."""
    current_app.redis_conn = get_redis()


def _admins_only():
    if not current_user.is_authenticated:
        if wants_json():
            raise Unauthenticated
        return redirect(url_for("pages.index"))
    if not current_user.is_admin:
        raise Forbidden("rq-dashboard is for admin users")
    instance = (request.view_args or {}).get("instance_number")
    if instance is not None and instance >= len(current_app.config["RQ_DASHBOARD_REDIS_URL"]):
        raise NotFound("no such Redis instance")
    rule = request.url_rule
    if request.method == "GET" and rule is not None and "POST" in (rule.methods or ()):
        # requeue-all answers GET too, so a link from another site could run it.
        raise WrongMethod("this action changes jobs: send it as a POST")
    if request.method == "POST":
        if request.endpoint == "rq_dashboard.delete_job_view":
            stopped = _stop_if_running((request.view_args or {})["job_id"])
            if stopped is not None:
                return stopped
        g.touched_jobs = _jobs_touched_by(request.view_args or {})
    return None


# First of the blueprint's hooks: rq-dashboard's own one connects to Redis by the URL's
# instance number, and fails (500) on a number it does not know, even for a stranger.
rq_dashboard.blueprint.before_request_funcs.setdefault(None, []).insert(0, _admins_only)


def _stop_if_running(job_id: str):
    """Delete of a running job: ask it to stop rather than pull it from its worker."""
    job = fetch_job(job_id)
    if job is None or job.get_status() != JobStatus.STARTED:
        return None
    control.request_stop(job_id)
    return jsonify(status="OK", stopping=True)


@rq_dashboard.blueprint.after_request
def _after(response):
    if request.method == "POST" and response.status_code < 400:
        for job_id in g.get("touched_jobs", ()):
            control.sync(job_id)
    if current_user.is_authenticated and current_user.is_admin:
        response.set_cookie(
            "_csrf_token", generate_csrf(), path="/rq", samesite="Strict",
            secure=current_app.config["SESSION_COOKIE_SECURE"],
        )  # fmt: skip
    return response


def _jobs_touched_by(args: dict) -> list[str]:
    """The ids of the jobs a dashboard action is about to change (read before it does)."""
    if "job_id" in args:
        return [args["job_id"]]
    ours = get_queue()
    queue = Queue(args.get("queue_name", ours.name), connection=ours.connection)
    if request.endpoint == "rq_dashboard.requeue_all":
        return queue.failed_job_registry.get_job_ids(cleanup=False)
    registry = args.get("registry_name")
    if registry == "queued":
        return queue.get_job_ids()
    if registry in _REGISTRIES:
        return _REGISTRIES[registry](queue.name, connection=queue.connection).get_job_ids(
            cleanup=False
        )
    return []
