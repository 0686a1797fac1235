"""Health checks for load balancers: ``/healthz`` (alive) and ``/readyz`` (can work)."""

from __future__ import annotations

from flask import Blueprint
from redis.exceptions import RedisError
from rq import Worker
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from myapp.connections import get_queue
from myapp.db import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers; nothing else is checked, so a busy Redis restarts nothing."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Redis and the database answer, and at least one worker is alive."""
    checks: dict[str, object] = {}
    queue = get_queue()
    try:
        queue.connection.ping()
        checks["redis"] = True
        checks["workers"] = Worker.count(queue=queue)
    except RedisError:
        checks["redis"], checks["workers"] = False, 0
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = True
    except SQLAlchemyError:
        checks["database"] = False
    ready = checks["redis"] and checks["database"] and checks["workers"] > 0
    return {"status": "ok" if ready else "unavailable", **checks}, 200 if ready else 503
