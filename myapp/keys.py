"""Every Redis key and channel name myapp uses, in one place.

All of them start with ``myapp:``, so an operator can tell them from RQ's
(``rq:...``) and a deployment can share a Redis server with other apps. A user's
keys start with the user's channel, so ``myapp:user:7:*`` is all of user 7.
"""

from __future__ import annotations

from redis import Redis
from redis.client import Pipeline

#: The counters of the whole deployment: ``name|label|label`` -> number.
COUNTERS = "myapp:metrics"
#: Prefix of one hash per web process: its open streams, until it stops refreshing it.
WEB_FIGURES = "myapp:metrics:web:"
#: Held by the process whose reaper pass is under way.
REAPER_LOCK = "myapp:reaper"
#: Held by the process whose retention pass is under way.
RETENTION_LOCK = "myapp:retention"
#: A random value, replaced whenever an API token or a user is deleted: web processes
#: remember a token's user only as of one value (:mod:`myapp.web.auth`).
TOKENS = "myapp:tokens"
#: The newest millisecond before the event subscription was last lost (a Redis
#: failover): no event log is trusted for replay from before it.
GAP = "myapp:gap"


def channel_for(user_id: int | str) -> str:
    """A user's channel (``*`` for all of them, as the hub subscribes)."""
    return f"myapp:user:{user_id}"


def published_on(redis: Redis | Pipeline, channel: str) -> str:
    """The name a channel is published under. Redis pub/sub ignores database numbers,
    so the number is part of the name: deployments that share one Redis server, on
    databases of their own, never see each other's events."""
    database = int(redis.connection_pool.connection_kwargs.get("db") or 0)  # None on a socket
    return f"{database}/{channel}"


def log_key(channel: str) -> str:
    """The user's event log, a Redis Stream (see :mod:`myapp.pipeline.event_log`)."""
    return f"{channel}:log"


def active_key(channel: str) -> str:
    """The latest state of each of the user's jobs that has not ended (for snapshots)."""
    return f"{channel}:active"


def sent_key(channel: str, job_id: str) -> str:
    """The ``version`` of the job's latest event, kept a day after it: an older
    state arriving late (two processes raced to publish one batch) is not sent."""
    return f"{channel}:sent:{job_id}"


def version_key(job_id: str) -> str:
    """The job's epoch counter (see :mod:`myapp.ordering`)."""
    return f"myapp:version:{job_id}"


def admitted_key(channel: str) -> str:
    """The user's jobs counted against ``MAX_ACTIVE_JOBS_PER_USER`` (:mod:`myapp.jobs.limits`)."""
    return f"{channel}:admitted"


def hour_key(channel: str) -> str:
    """Prefix of the user's counters of jobs started per clock hour."""
    return f"{channel}:hour"


def streams_key(channel: str) -> str:
    """The user's open streams, each with the time its lease ends."""
    return f"{channel}:streams"


def running_limit_key(user_id: int) -> str:
    """RQ's rate limit that holds back a user's jobs past ``MAX_RUNNING_JOBS_PER_USER``."""
    return f"myapp:user:{user_id}"


def cancel_key(job_id: str) -> str:
    """Where a cancel request waits for the job to see it (see :mod:`myapp.jobs.control`)."""
    return f"myapp:cancel:{job_id}"


def parent_key(parent_id: str) -> str:
    """A batch's or sequence's aggregate of its pieces (:mod:`myapp.pipeline.aggregate`)."""
    return f"myapp:parent:{parent_id}"


def taken_key(queue_name: str) -> str:
    """When the reaper first saw each job a worker had taken off the queue."""
    return f"myapp:taken:{queue_name}"


def login_keys(address: str, name: str) -> list[str]:
    """The sign-in throttle's counters: this address and name, this address, this name."""
    return [
        f"myapp:login:pair:{address}:{name}",
        f"myapp:login:addr:{address}",
        f"myapp:login:name:{name}",
    ]


def share_generation_key(job_id: str) -> str:
    """The job's share generation, copied from its record when its links are revoked,
    so that open watch streams end within a heartbeat (:mod:`myapp.web.share`)."""
    return f"myapp:share:{job_id}"


def output_key(job_id: str) -> str:
    """The text the job wrote with ``progress.output`` (:mod:`myapp.pipeline.output`)."""
    return f"myapp:output:{job_id}"


def output_meta_key(job_id: str) -> str:
    """Where the job's output ends (in code points) and whether it was cut."""
    return f"myapp:output:{job_id}:meta"


def line_starts_key(queue_name: str) -> str:
    """When workers started the queue's jobs in the last minute (:mod:`myapp.pipeline.line`)."""
    return f"myapp:line:{queue_name}:starts"


def line_lock_key(queue_name: str) -> str:
    """Held for a second by the web process that moves the queue's line this second."""
    return f"myapp:line:{queue_name}:lock"


def line_key(channel: str) -> str:
    """The places in line last sent to the user, so an unchanged line is not sent again."""
    return f"{channel}:line"
