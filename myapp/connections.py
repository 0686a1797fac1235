"""The shared Redis client and the RQ queue, one of each per app, and RQ's copy of a job.

The client comes from ``REDIS_URL``, or from Redis Sentinel (``REDIS_SENTINELS``), in
which case it follows the primary through a failover (docs/scaling.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app
from redis import BlockingConnectionPool, Redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.rate_limit import ACQUIRE_AND_ENQUEUE_SCRIPT, RateLimitRegistry
from rq.serializers import JSONSerializer
from rq.utils import utcformat

from myapp import clock
from myapp.config import parse_sentinels

_KEY = "myapp.redis"
_QUEUES = "myapp.queues"
#: Seconds a command keeps retrying while Sentinel promotes a replica (found down
#: after about a second, promoted a few seconds later), before it fails.
FAILOVER_SECONDS = 15.0
#: Seconds to wait for one Sentinel's answer, or for a connection to be made.
SENTINEL_TIMEOUT = 0.5
CONNECT_TIMEOUT = 2.0
#: What a command meets while the primary is gone or has just been demoted.
FAILOVER_ERRORS = (ConnectionError, TimeoutError, ReadOnlyError)


def init_app(app: Flask) -> None:
    app.extensions[_KEY] = connect(app.config)
    # The times this process writes are on Redis's clock (myapp.clock).
    app.before_request(lambda: clock.maybe_sync(get_redis()))


def connect(config: Mapping[str, Any]) -> Redis:
    """The one way a client is built, for the app and for code outside it.

    One pool per process, of at most ``REDIS_MAX_CONNECTIONS``: a burst of requests
    (a thousand browsers reconnecting at once) waits its turn for a connection
    instead of failing, and Redis sees a few clients per process, not one per request.
    With ``REDIS_SENTINELS`` the pool asks the Sentinels for the primary at each new
    connection, and commands ride out a failover (:class:`UntilDeadline`).
    """
    pooling = {
        "max_connections": config["REDIS_MAX_CONNECTIONS"],
        "timeout": 10,
        "health_check_interval": 30,
    }
    if not config.get("REDIS_SENTINELS"):
        pool = BlockingConnectionPool.from_url(config["REDIS_URL"], **pooling)
        return Redis(connection_pool=pool)
    sentinel = Sentinel(
        parse_sentinels(config["REDIS_SENTINELS"]),
        socket_timeout=SENTINEL_TIMEOUT,
        socket_connect_timeout=SENTINEL_TIMEOUT,
    )
    return sentinel.master_for(
        config["REDIS_SENTINEL_MASTER"],
        connection_pool_class=BlockingSentinelPool,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry=UntilDeadline(FAILOVER_SECONDS),
        retry_on_error=list(FAILOVER_ERRORS),
        **pooling,
    )


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool with the blocking pool's bound: at most
    ``max_connections``, and a caller past it waits its turn."""


class UntilDeadline(Retry):
    """redis-py's ``Retry``, bounded by time instead of by count: a connection's own
    retries run inside a command's, so counts would multiply (15 s inside 15 s)."""

    def __init__(self, seconds: float):
        # The count is only for redis-py's bookkeeping; the deadline stops it.
        super().__init__(ExponentialBackoff(cap=1.0, base=0.05), 1000, FAILOVER_ERRORS)
        self.seconds = seconds

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        deadline = time.monotonic() + self.seconds
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                pause = self._backoff.compute(failures)
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)


def get_redis() -> Redis:
    """The app's client; its connection pool is shared by every request and publish."""
    return current_app.extensions[_KEY]


def get_queue() -> LimitedQueue:
    """RQ's queue with the JSON serializer: pickle in Redis would run code on load.

    One object per queue name and app: building one resolves the serializer, which
    costs a web request as much as a Redis round trip.
    """
    name = current_app.config["RQ_QUEUE"]
    queues = current_app.extensions.setdefault(_QUEUES, {})
    queue = queues.get(name)
    if queue is None:
        queue = queues[name] = LimitedQueue(name, connection=get_redis(), serializer=JSONSerializer)
    return queue


class LimitedQueue(Queue):
    """RQ's queue, which also puts rate-limited jobs on a caller's pipeline, many at once.

    RQ's ``enqueue_call`` takes three round trips for a rate-limited job (the queue's
    name; the job and its place among the held ones; the script that lets held jobs
    go) and refuses a pipeline. :meth:`enqueue_held` queues RQ's same commands on a
    transaction that the caller executes with its own commands: all of them run, or
    none (Redis refuses the whole transaction when it refuses one command as it is
    queued: a full memory, a command the user may not run).
    """

    def enqueue_held(
        self,
        calls: list[dict[str, Any]],
        pipeline: Pipeline,
        places: tuple[int, int] | None = None,
    ) -> list[Job]:
        """Queue on ``pipeline`` (a transaction) what enqueues one job per call, each
        a dict of :meth:`create_job`'s arguments with a ``rate_limit`` and no
        ``depends_on``; the jobs are returned.

        Each job waits among its limit's held jobs, in the order given (RQ scores them
        by the second; here the jobs of one call share that second in their order,
        or, for a run of calls that enqueue one list, ``places``: where this call's
        jobs start in it, and its length), then one pass of RQ's script lets go as
        many as the limit has room for, oldest first, as ``enqueue_call`` would.
        """
        first, length = places or (0, len(calls))
        if not self.is_async:
            raise ValueError("rate_limit is not supported on synchronous queues (is_async=False)")
        jobs = [self.create_job(**call, status=JobStatus.RATE_LIMITED) for call in calls]
        pipeline.sadd(self.redis_queues_keys, self.key)
        registries: dict[str, tuple[RateLimitRegistry, int]] = {}
        second = int(clock.time())  # as RQ's current_timestamp()
        for place, job in enumerate(jobs):
            self._check_rate_limit_namespace(job)
            if not job.rate_limit_key or job._dependency_ids:
                raise ValueError("enqueue_held takes rate-limited jobs without dependencies")
            job.redis_server_version = self.get_redis_server_version()
            if job.timeout is None:
                job.timeout = self._default_timeout
            if job.rate_limit_key not in registries:
                registry = RateLimitRegistry(job.rate_limit_key, connection=self.connection)
                registry.register(job.rate_limit_concurrency, pipeline)
                registries[job.rate_limit_key] = registry, job.rate_limit_concurrency
            registry = registries[job.rate_limit_key][0]
            job.save(pipeline=pipeline)
            job.cleanup(ttl=job.ttl, pipeline=pipeline)
            score = second + (first + place) / length
            registry.add_to_rate_limited(job.id, pipeline, timestamp=score)
        enqueued_at = utcformat(clock.now())
        for registry, concurrency in registries.values():
            # EVAL rather than RQ's EVALSHA: in a transaction, a script Redis no longer
            # had would fail alone, after the jobs were written (and redis-py asks
            # whether it has it first, a round trip).
            pipeline.eval(
                ACQUIRE_AND_ENQUEUE_SCRIPT, 2, registry.allowed_key, registry.rate_limited_key,
                concurrency, second, enqueued_at,
                Queue.redis_queue_namespace_prefix, Job.redis_job_namespace_prefix,
            )  # fmt: skip
        return jobs


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
