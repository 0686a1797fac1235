"""Each user's event log: every event is published and also kept for a while.

Publishing appends the event to a capped Redis Stream (``<channel>:log``)
and publishes it on the channel, in one Lua script, so the entry id is the
event's SSE ``id:`` and a client that reconnects with ``Last-Event-ID`` can be
sent exactly what it missed. For job events the script also keeps the job's
latest state in a hash of the user's active jobs, so a snapshot taken with
:func:`snapshot_cut` is consistent with the log, and a job's terminal event
frees its place in the user's limit of active jobs. A job state older than the
job's last one sent is dropped (the rule of :mod:`myapp.ordering`, compared in the
script), so a late event never undoes a newer one, on any client.
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.client import Pipeline

from myapp.job_json import TERMINAL
from myapp.keys import COUNTERS, GAP, active_key, admitted_key, log_key, published_on, sent_key
from myapp.ordering import version_of
from myapp.wire import Event, decode, encode, parse_id

_PUBLISH = """
if ARGV[7] ~= '' then
  local sent = redis.call('GET', KEYS[5])
  if sent and tonumber(sent) > tonumber(ARGV[7]) then return false end
  redis.call('SET', KEYS[5], ARGV[7], 'EX', 86400)
end
local now = redis.call('TIME')
local retention_ms = tonumber(ARGV[3])
local min_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - retention_ms
local min_id = string.format('%d', math.max(min_ms, 0))
local id = redis.call('XADD', KEYS[1], 'MINID', '~', min_id, '*', 'm', ARGV[1])
redis.call('PEXPIRE', KEYS[1], retention_ms)
if ARGV[4] ~= '' then
  if ARGV[6] == '1' then
    redis.call('HDEL', KEYS[2], ARGV[4])
    redis.call('SREM', KEYS[3], ARGV[4])
  else
    redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
  end
  redis.call('EXPIRE', KEYS[2], 86400)
end
redis.call('PUBLISH', ARGV[2], id .. ' ' .. ARGV[1])
redis.call('HINCRBY', KEYS[4], 'events_published', 1)
return id
"""


def append(
    redis: Redis | Pipeline, channel: str, message: dict[str, Any], retention_seconds: float
) -> Any:
    """Log and publish a flask-sse message dict; returns its id (or queues it on a
    pipeline), or None for a job state older than one already sent."""
    encoded = encode(message)
    data = message.get("data")
    job_id = job_json = terminal = order = ""
    if message.get("type") == "job" and isinstance(data, dict):
        job_id, job_json = data["id"], encode(data)
        terminal = "1" if data.get("status") in TERMINAL else "0"
        order = version_of(data)
    return redis.eval(
        _PUBLISH, 5, log_key(channel), active_key(channel), admitted_key(channel), COUNTERS,
        sent_key(channel, job_id), encoded, published_on(redis, channel),
        int(retention_seconds * 1000), job_id, job_json, terminal, order,
    )  # fmt: skip


def replay(redis: Redis, channel: str, last_id: str) -> list[Event] | None:
    """The events after ``last_id``, or None when some of them are no longer kept,
    when ``last_id`` is newer than any event (not an id this log gave out), or when
    it is from before a gap (:func:`mark_gap`)."""
    after = parse_id(last_id)
    if after is None:
        return None
    with redis.pipeline(transaction=False) as pipe:
        pipe.xrange(log_key(channel), count=1)
        pipe.xrevrange(log_key(channel), count=1)
        pipe.get(GAP)
        first, last, gap = pipe.execute()
    if gap is not None and after[0] <= int(gap):
        return None  # the log may have lost entries after it: see mark_gap
    if not first or parse_id(first[0][0]) > after or parse_id(last[0][0]) < after:
        # Either everything expired or the log was trimmed past the client's
        # position (or Redis lost it), or the id is from the future: only a
        # snapshot can be trusted.
        return None
    entries = redis.xrange(log_key(channel), min=f"({after[0]}-{after[1]}")
    return [Event.from_log(event_id, fields[b"m"]) for event_id, fields in entries]


_MARK_GAP = """
local now = redis.call('TIME')
local gap = math.max(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000),
                     tonumber(ARGV[1]))
if gap > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%d', gap), 'EX', ARGV[2])
end
return gap
"""
#: Seconds a gap is remembered: longer than any log keeps its entries.
GAP_SECONDS = 86400


def mark_gap(redis: Redis, newest_ms: int) -> int:
    """Distrust every log up to now (or ``newest_ms``, the newest event seen, if later).

    Called when the event subscription comes back after a loss: a failover may have
    lost the old primary's last entries, logs and active jobs alike, so a client
    whose ``Last-Event-ID`` is from before it gets a snapshot (built from the
    database) rather than a replay with a hole in it."""
    return redis.eval(_MARK_GAP, 1, GAP, newest_ms, GAP_SECONDS)


def snapshot_cut(redis: Redis, channel: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The newest event id and the active jobs' states as of that event, atomically."""
    with redis.pipeline(transaction=True) as pipe:
        pipe.xrevrange(log_key(channel), count=1)
        pipe.hgetall(active_key(channel))
        newest, active = pipe.execute()
    cut = newest[0][0].decode() if newest else "0-0"
    return cut, {job_id.decode(): decode(data) for job_id, data in active.items()}
