"""What the database and Redis hold for a test: a user's id, their job records and
their RQ jobs, and records by job id."""

from __future__ import annotations

import json

from redis import Redis

from myapp.db import db
from myapp.job_json import READ_TIME
from myapp.models import TrackedJob, User


def state_of(answer: dict) -> dict:
    """A job as the API or a snapshot answered it, without what answers add to its
    state (``myapp.job_json.READ_TIME``): what its events carry."""
    return {name: value for name, value in answer.items() if name not in READ_TIME}


def id_of(account) -> int:
    """The id of ``account``'s user, read in the current app context."""
    return db.session.scalar(db.select(User.id).filter_by(name=account.name))


def user_id(app, account) -> int:
    """The id of ``account``'s user, read in an app context of its own."""
    with app.app_context():
        return id_of(account)


def rows_of(app, account) -> int:
    """How many job records ``account``'s user has."""
    with app.app_context():
        return db.session.scalar(
            db.select(db.func.count(TrackedJob.id)).where(TrackedJob.user_id == id_of(account))
        )


def rq_jobs_of(app, account) -> set[bytes]:
    """The RQ jobs in Redis that belong to ``account``. Other tests' jobs may come
    and go meanwhile (workers and the scheduler run throughout), so look only at
    this user's."""
    redis = Redis.from_url(app.config["REDIS_URL"])
    owner = user_id(app, account)
    keys = set()
    for key in redis.scan_iter("rq:job:*"):
        if key.count(b":") != 2:
            continue  # rq:job:<id>:dependents and the like
        meta = redis.hget(key, "meta")
        if meta and json.loads(meta).get("user_id") == owner:
            keys.add(key)
    return keys


def records(app, job_ids) -> dict[str, TrackedJob]:
    """The records of ``job_ids`` (those that exist), by id."""
    with app.app_context():
        rows = db.session.scalars(db.select(TrackedJob).where(TrackedJob.id.in_(job_ids)))
        return {row.id: row for row in rows}
