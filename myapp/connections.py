"""The shared Redis client and the RQ queue, one of each per app, and RQ's copy of a job."""

from __future__ import annotations

from flask import Flask, current_app
from redis import BlockingConnectionPool, Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from myapp import clock

_KEY = "myapp.redis"


def init_app(app: Flask) -> None:
    """One pool per process, of at most ``REDIS_MAX_CONNECTIONS``: a burst of requests
    (a thousand browsers reconnecting at once) waits its turn for a connection
    instead of failing, and Redis sees a few clients per process, not one per request."""
    pool = BlockingConnectionPool.from_url(
        app.config["REDIS_URL"],
        max_connections=app.config["REDIS_MAX_CONNECTIONS"],
        timeout=10,
        health_check_interval=30,
    )
    app.extensions[_KEY] = Redis(connection_pool=pool)
    # The times this process writes are on Redis's clock (myapp.clock).
    app.before_request(lambda: clock.maybe_sync(get_redis()))


def get_redis() -> Redis:
    """The app's client; its connection pool is shared by every request and publish."""
    return current_app.extensions[_KEY]


def get_queue() -> Queue:
    """RQ's queue with the JSON serializer: pickle in Redis would run code on load."""
    return Queue(current_app.config["RQ_QUEUE"], connection=get_redis(), serializer=JSONSerializer)


def fetch_job(job_id: str) -> Job | None:
    """RQ's copy of the job, or None when RQ no longer has it."""
    queue = get_queue()
    try:
        return Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
    except NoSuchJobError:
        return None


def drop_job(job_id: str) -> None:
    """Delete the job from RQ, if RQ still has it."""
    job = fetch_job(job_id)
    if job is not None:
        job.delete()
