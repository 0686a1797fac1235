"""What myapp keeps, and for how long: ended records for ``JOB_RETENTION_DAYS``,
RQ's copy of an ended job for ``JOB_REDIS_TTL_SECONDS``.

An ended job's record (with its children and its upload) is deleted once it is
older than the retention; the contacts and profiles it made stay, as they are the
user's data, not the job's. Records of jobs still queued or running are never
deleted, whatever their age. Every worker calls :func:`purge` from
:func:`myapp.worker.reaper.reap`; a lock lets one of them do it per :data:`INTERVAL`.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from redis import Redis
from rq.queue import Queue

from myapp import clock, job_json
from myapp.db import db
from myapp.keys import RETENTION_LOCK
from myapp.models import TrackedJob, Upload

#: Seconds between two purges (by any worker).
INTERVAL = 600
#: Records deleted at most per purge, so one purge stays short.
BATCH = 500


def purge(queue: Queue, force: bool = False) -> list[str]:
    """Delete what is past its retention; returns the ids of the records deleted."""
    redis: Redis = queue.connection
    if not force and not redis.set(RETENTION_LOCK, 1, nx=True, ex=INTERVAL):
        return []
    # RQ never cleans its canceled registry; a cancel's entry is scored when it came.
    ttl = current_app.config["JOB_REDIS_TTL_SECONDS"]
    redis.zremrangebyscore(queue.canceled_job_registry.key, "-inf", clock.time() - ttl)
    cutoff = job_json.utcnow() - timedelta(days=current_app.config["JOB_RETENTION_DAYS"])
    ids = list(
        db.session.scalars(
            db.select(TrackedJob.id)
            .where(TrackedJob.status.in_(job_json.TERMINAL), TrackedJob.ended_at < cutoff)
            .where(TrackedJob.parent_id.is_(None))  # a piece goes with its parent
            .limit(BATCH)
        )
    )
    if not ids:
        # End the read: a worker's session lives on, and an open read would keep its
        # snapshot (SQLite) or its transaction (PostgreSQL) for as long.
        db.session.rollback()
        return []
    children = db.select(TrackedJob.id).where(TrackedJob.parent_id.in_(ids))
    gone = [*ids, *db.session.scalars(children)]
    db.session.execute(db.delete(Upload).where(Upload.job_id.in_(gone)))
    db.session.execute(db.delete(TrackedJob).where(TrackedJob.parent_id.in_(ids)))
    db.session.execute(db.delete(TrackedJob).where(TrackedJob.id.in_(ids)))
    db.session.commit()
    current_app.logger.info("deleted %d ended job records past their retention", len(ids))
    return ids
