"""Per-user limits: ``MAX_ACTIVE_JOBS_PER_USER`` queued or running jobs,
``MAX_JOBS_PER_HOUR`` jobs started, ``MAX_STORED_BYTES_PER_USER`` bytes of uploads,
and ``MAX_STREAMS_PER_USER`` open streams.

The active count lives in Redis, as a set of job ids per user, so every web and
worker process sees the same one: a job takes its place when submitted and gives it
back with its terminal event (in the same script that publishes it, see
:mod:`myapp.pipeline.event_log`), including the "worker died" event of a job whose worker
was killed, so the count cannot drift. The script that takes the place
(``_ADMIT``, below) also counts the job in the user's hour (a counter per clock
hour of Redis' own time), so neither limit can be passed by requests that arrive
together.
"""

from __future__ import annotations

from flask import current_app, request

from myapp.connections import get_redis
from myapp.errors import StorageFull, TooManyJobs, TooManyStreams
from myapp.jobs import uploads
from myapp.keys import admitted_key, channel_for, hour_key, streams_key

#: Seconds a window of ``MAX_JOBS_PER_HOUR`` lasts.
HOUR = 3600
#: A JSON body up to this size costs less to read and check than the round trip of
#: :func:`precheck`: :func:`admit` alone refuses it, after.
SMALL_BODY_BYTES = 64 * 1024

# KEYS: the user's admitted jobs, the prefix of its hourly counters (the script names
# the current hour's, by Redis' clock). ARGV: the job, the active limit, the hourly
# limit, '1' to only look. Returns 1 (admitted, or would be), 0 (every active place is
# taken) or -1 (the hour's jobs are spent). A job admitted already is admitted again.
_ADMIT = """
local hour = KEYS[2] .. ':' .. math.floor(tonumber(redis.call('TIME')[1]) / tonumber(ARGV[5]))
if ARGV[1] ~= '' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
if tonumber(redis.call('GET', hour) or 0) >= tonumber(ARGV[3]) then return -1 end
if ARGV[4] == '1' then return 1 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 604800)
redis.call('INCR', hour)
redis.call('EXPIRE', hour, ARGV[5])
return 1
"""


def _take_place(user_id: int, job_id: str, look_only: bool) -> None:
    config = current_app.config
    active, per_hour = config["MAX_ACTIVE_JOBS_PER_USER"], config["MAX_JOBS_PER_HOUR"]
    channel = channel_for(user_id)
    keys = [admitted_key(channel), hour_key(channel)]
    args = [job_id, active, per_hour, "1" if look_only else "0", HOUR]
    answer = get_redis().eval(_ADMIT, len(keys), *keys, *args)
    if answer == 0:
        raise TooManyJobs(
            f"you already have {active} active jobs; wait for one to end or cancel one"
        )
    if answer == -1:
        raise TooManyJobs(f"you started {per_hour} jobs this hour; wait and try again")


def admit(user_id: int, job_id: str) -> None:
    """Take the job's place among the user's active jobs and count it in the user's
    hour (a retry counts too); :class:`TooManyJobs` when either is full."""
    _take_place(user_id, job_id, look_only=False)


def release(user_id: int, job_id: str) -> None:
    """Give back the place :func:`admit` took, for a job that was not started after all
    (it stays counted in the hour: it was tried)."""
    get_redis().srem(admitted_key(channel_for(user_id)), job_id)


def readmit(user_id: int, job_id: str) -> None:
    """Count a job rebuilt after Redis lost it (:func:`myapp.jobs.control.rebuild`)
    among the user's active jobs again, past the limit if need be: it was admitted
    once, and its end gives the place back."""
    key = admitted_key(channel_for(user_id))
    with get_redis().pipeline() as pipe:
        pipe.sadd(key, job_id)
        pipe.expire(key, 604800)  # as _ADMIT keeps it
        pipe.execute()


def precheck(user_id: int, uploading: bool) -> None:
    """Refuse a user who could not start a job anyway, before the request's body is
    read: parsing and validating an import of 40 MB takes a web process for seconds.

    :class:`TooManyJobs` as :func:`admit` would answer (which still decides, once the
    body is valid); :class:`StorageFull` when ``uploading`` and the user's storage is
    full. A JSON body of at most ``SMALL_BODY_BYTES`` is not looked at here: reading it
    costs less than the look, and :func:`admit` refuses it the same way.
    """
    size = request.content_length
    if not uploading and size is not None and size <= SMALL_BODY_BYTES:
        return
    _take_place(user_id, "", look_only=True)
    if uploading:
        check_storage(user_id, 1)


def check_storage(user_id: int, new_bytes: int) -> None:
    """:class:`StorageFull` when ``new_bytes`` more of uploads would pass
    ``MAX_STORED_BYTES_PER_USER``. Counted in the database: two uploads that arrive
    together may both pass, by one upload each at the most."""
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
# its streams' leases (see myapp.web.hub), so those of a process that died drop out by themselves.
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


def stream_lease_seconds() -> float:
    """Leases are renewed every heartbeat interval; three missed renewals end one."""
    return 3 * current_app.config["STREAM_HEARTBEAT_SECONDS"] + 5


def open_stream(user_id: int, stream_id: str) -> None:
    """Take (or renew) a stream's place; :class:`TooManyStreams` when none is left."""
    limit = current_app.config["MAX_STREAMS_PER_USER"]
    args = [stream_id, limit, stream_lease_seconds()]
    if not get_redis().eval(_OPEN_STREAM, 1, streams_key(channel_for(user_id)), *args):
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
            script(keys=[streams_key(channel)], args=[lease_seconds, *stream_ids], client=pipe)
        pipe.execute()


def close_stream(redis, user_id: int, stream_id: str) -> None:
    """Free a stream's place; takes ``redis``, as it runs after the request's context."""
    redis.zrem(streams_key(channel_for(user_id)), stream_id)
