"""Per-user limits: ``MAX_ACTIVE_JOBS_PER_USER`` queued or running jobs,
``MAX_JOBS_PER_HOUR`` jobs started, ``MAX_STORED_BYTES_PER_USER`` bytes of uploads,
and ``MAX_STREAMS_PER_USER`` open streams.

The count lives in Redis, as a set of job ids per user, so every web and worker
process sees the same one: a job takes its place when submitted and gives it
back with its terminal event (in the same script that publishes it, see
:mod:`myapp.events`), including the "worker died" event of a job whose worker
was killed, so the count cannot drift.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from myapp import state, uploads
from myapp.connections import get_redis
from myapp.db import db
from myapp.events import admitted_key, channel_for
from myapp.models import TrackedJob

_ADMIT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 604800)
return 1
"""


class TooManyJobs(Exception):
    """The user has as many active jobs as allowed."""


class StorageFull(Exception):
    """The user's uploads would take more than ``MAX_STORED_BYTES_PER_USER``."""


def _too_many_active(limit: int) -> TooManyJobs:
    return TooManyJobs(f"you already have {limit} active jobs; wait for one to end or cancel one")


def admit(user_id: int, job_id: str) -> None:
    limit = current_app.config["MAX_ACTIVE_JOBS_PER_USER"]
    key = admitted_key(channel_for(user_id))
    if not get_redis().eval(_ADMIT, 1, key, job_id, limit):
        raise _too_many_active(limit)


def release(user_id: int, job_id: str) -> None:
    """Give back the place :func:`admit` took, for a job that was not started after all."""
    get_redis().srem(admitted_key(channel_for(user_id)), job_id)


def precheck(user_id: int, uploading: bool) -> None:
    """Refuse a user who could not start a job anyway, before the request's body is
    read: parsing and validating an import of 40 MB takes a web process for seconds.

    :class:`TooManyJobs` for a user with every active place taken (:func:`admit`
    still decides, atomically, once the body is valid) or with ``MAX_JOBS_PER_HOUR``
    jobs started in the last hour (pieces not counted); :class:`StorageFull` when
    ``uploading`` and the user's storage is full. The hour is counted in the
    database's records, so it holds across processes; requests at the same instant
    may both pass, so it can be passed by a request or two, not by a flood.
    """
    config = current_app.config
    limit = config["MAX_ACTIVE_JOBS_PER_USER"]
    if get_redis().scard(admitted_key(channel_for(user_id))) >= limit:
        raise _too_many_active(limit)
    per_hour = config["MAX_JOBS_PER_HOUR"]
    since = state.utcnow() - timedelta(hours=1)
    started = db.session.scalar(
        db.select(db.func.count(TrackedJob.id)).where(
            TrackedJob.user_id == user_id,
            TrackedJob.parent_id.is_(None),
            TrackedJob.created_at >= since,
        )
    )
    if started >= per_hour:
        raise TooManyJobs(f"you started {per_hour} jobs in the last hour; wait and try again")
    check_storage(user_id, 1 if uploading else 0)


def check_storage(user_id: int, new_bytes: int) -> None:
    """:class:`StorageFull` when ``new_bytes`` (> 0) more of uploads would pass
    ``MAX_STORED_BYTES_PER_USER``."""
    if new_bytes <= 0:
        return
    config = current_app.config
    quota = config["MAX_STORED_BYTES_PER_USER"]
    stored = uploads.stored_bytes(user_id)
    if stored + new_bytes > quota:
        raise StorageFull(
            f"your uploads would take {(stored + new_bytes) / 2**20:.1f} MiB, more than the "
            f"{quota / 2**20:.1f} MiB allowed; ended jobs and their uploads are deleted "
            f"after {config['JOB_RETENTION_DAYS']:g} days"
        )


# -- open streams ---------------------------------------------------------------------

# A sorted set per user: stream id -> when its lease runs out. Each web process renews
# its streams' leases (see myapp.hub), so those of a process that died drop out by themselves.
_OPEN_STREAM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""


class TooManyStreams(Exception):
    """The user has as many open streams as allowed."""


def _streams_key(user_id: int) -> str:
    return f"{channel_for(user_id)}:streams"  # as renew_streams() names it


def stream_lease_seconds() -> float:
    """Leases are renewed every heartbeat interval; three missed renewals end one."""
    return 3 * current_app.config["STREAM_HEARTBEAT_SECONDS"] + 5


def open_stream(user_id: int, stream_id: str) -> None:
    """Take (or renew) a stream's place; :class:`TooManyStreams` when none is left."""
    limit = current_app.config["MAX_STREAMS_PER_USER"]
    args = [stream_id, limit, stream_lease_seconds()]
    if not get_redis().eval(_OPEN_STREAM, 1, _streams_key(user_id), *args):
        raise TooManyStreams(f"you already have {limit} open streams; close one first")


# KEYS: a user's streams; ARGV: the lease in seconds, then the streams to renew. XX:
# a stream closed meanwhile (or whose lease ran out) does not come back.
_RENEW_STREAMS = """
local t = redis.call('TIME')
local expires = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', expires, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])))
"""


def renew_streams(redis, lease_seconds: float, open_streams: dict[str, list[str]]) -> None:
    """Renew the leases of a web process's open streams (stream ids by channel) in
    one round trip, rather than one per stream per heartbeat."""
    script = redis.register_script(_RENEW_STREAMS)
    with redis.pipeline(transaction=False) as pipe:
        for channel, stream_ids in open_streams.items():
            script(keys=[f"{channel}:streams"], args=[lease_seconds, *stream_ids], client=pipe)
        pipe.execute()


def close_stream(redis, user_id: int, stream_id: str) -> None:
    """Free a stream's place; takes ``redis``, as it runs after the request's context."""
    redis.zrem(_streams_key(user_id), stream_id)
