"""rq-dashboard at ``/rq``, for admin users only, and in step with our records.

rq-dashboard has no access control of its own, reads jobs with pickle unless
told otherwise, and acts on Redis alone. Here, at import time (its blueprint is a
module-level singleton shared by every app the tests create):

- only admins get in (others 403; anonymous visitors are sent to sign in);
- its POSTs carry a CSRF token: it sends the ``_csrf_token`` cookie back as the
  ``X-CSRFToken`` header, which Flask-WTF checks like any other form;
- what an operator does there (requeue, delete, empty a registry) is copied into
  our job records and told to the users' streams (:func:`myapp.control.sync`).
"""

from __future__ import annotations

import rq_dashboard
from flask import Flask, current_app, g, jsonify, redirect, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from rq import Queue
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

from myapp import control
from myapp.auth import wants_json
from myapp.connections import get_queue

rq_dashboard.web.config.serializer = JSONSerializer

_REGISTRIES = {
    "failed": FailedJobRegistry,
    "deferred": DeferredJobRegistry,
    "started": StartedJobRegistry,
    "finished": FinishedJobRegistry,
    "canceled": CanceledJobRegistry,
    "scheduled": ScheduledJobRegistry,
}


def init_app(app: Flask) -> None:
    app.config["RQ_DASHBOARD_REDIS_URL"] = app.config["REDIS_URL"]
    setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/rq")


@rq_dashboard.blueprint.before_request
def _admins_only():
    if not current_user.is_authenticated:
        if wants_json():
            return jsonify(error="authentication required"), 401
        return redirect(url_for("pages.index"))
    if not current_user.is_admin:
        return jsonify(error="rq-dashboard is for admin users"), 403
    if request.method == "POST":
        g.touched_jobs = _jobs_touched_by(request.view_args or {})
    return None


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
