"""Jobs in pieces: a parent's state, aggregated from its children's.

A batch (items run in parallel) or a sequence (stages run one after another) is
a parent record with no RQ job of its own; each piece is an ordinary RQ job with
its own record, so operators see every piece in rq-dashboard. As each child's
event passes through :mod:`myapp.pipeline.lifecycle`, :func:`fold` folds it into a
Redis hash (one Lua script, so every worker sees the same counts) and says when
the parent's event is due: at once when the parent's status changes, else at
most once per ``1 / PROGRESS_MAX_RATE`` seconds across all processes. The bar
is the children's progress weighted by their weight, each child counting its
best progress so far, so the parent's bar never moves back while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from myapp import job_json
from myapp.db import db
from myapp.keys import parent_key, version_key
from myapp.models import TrackedJob
from myapp.ordering import EPOCH, NEW_EPOCH_LUA

#: How long a parent's aggregate is kept after its last change.
KEEP_SECONDS = 7 * 86400

# decide(): is the parent's event due? Its class (queued, started, ended) changed:
# now; else once per gap. Returns the aggregate when due, with the epoch of its
# version (myapp.ordering: every parent state takes one, above the 'floor' its
# record gave), else the wait in ms.
_DECIDE = (
    NEW_EPOCH_LUA
    + """
local function decide(key, vkey, now, gap, db_ms)
  local v = redis.call('HMGET', key, 'class', 'sent', 'recorded', 'total',
    'n:queued', 'n:finished', 'n:failed', 'n:canceled', 'n:skipped')
  local total, queued = tonumber(v[4]), tonumber(v[5] or 0)
  local ended = tonumber(v[6] or 0) + tonumber(v[7] or 0) + tonumber(v[8] or 0)
    + tonumber(v[9] or 0)
  local class = 'started'
  if ended >= total then class = 'ended' elseif queued >= total then class = 'queued' end
  local forced = class ~= v[1]
  local since = now - tonumber(v[2] or 0)
  if not forced and since < gap then
    redis.call('HSET', key, 'pending', 1)
    return {0, gap - since}
  end
  local durable = forced or now - tonumber(v[3] or 0) >= db_ms
  redis.call('HSET', key, 'class', class, 'sent', now, 'pending', 0)
  if durable then redis.call('HSET', key, 'recorded', now) end
  local epoch = new_epoch(vkey, tonumber(redis.call('HGET', key, 'floor') or '0'))
  local a = redis.call('HMGET', key, 'n:queued', 'n:started', 'n:finished', 'n:failed',
    'n:canceled', 'n:skipped', 'sum', 'weight', 'canceled', 'mode')
  local reply = {1, epoch, now, durable and 1 or 0, class}
  for i = 1, 10 do reply[i + 5] = a[i] or '' end  -- a nil would end the reply
  return reply
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
)

# KEYS: the aggregate, the parent's version counter; ARGV: child id, counted status,
# progress in 1/1000 (-1: none), gap ms, database interval ms.
_AGGREGATE = (
    _DECIDE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local key, child, status = KEYS[1], ARGV[1], ARGV[2]
local old = redis.call('HGET', key, 's:' .. child)
if not old then return {-2} end
if old ~= status then
  redis.call('HINCRBY', key, 'n:' .. old, -1)
  redis.call('HINCRBY', key, 'n:' .. status, 1)
  redis.call('HSET', key, 's:' .. child, status)
end
local before = tonumber(redis.call('HGET', key, 'f:' .. child) or '0')
local f = tonumber(ARGV[3])
if status == 'finished' then f = 1000 end
if f > before then
  local w = tonumber(redis.call('HGET', key, 'w:' .. child) or '1')
  redis.call('HSET', key, 'f:' .. child, f)
  redis.call('HINCRBY', key, 'sum', (f - before) * w)
end
redis.call('EXPIRE', key, ARGV[6])
return decide(key, KEYS[2], now, tonumber(ARGV[4]), tonumber(ARGV[5]))
"""
)

# A held-back event, if still pending and due. KEYS: the aggregate, the parent's
# version counter; ARGV: gap, db ms.
_FLUSH = (
    _DECIDE
    + """
if redis.call('HGET', KEYS[1], 'pending') ~= '1' then return {-3} end
return decide(KEYS[1], KEYS[2], now, tonumber(ARGV[1]), tonumber(ARGV[2]))
"""
)


# KEYS: the aggregate; ARGV: the children that run again.
_REOPEN = """
local key = KEYS[1]
for _, child in ipairs(ARGV) do
  local old = redis.call('HGET', key, 's:' .. child)
  if old then
    redis.call('HINCRBY', key, 'n:' .. old, -1)
    redis.call('HINCRBY', key, 'n:queued', 1)
    redis.call('HSET', key, 's:' .. child, 'queued')
    local f = tonumber(redis.call('HGET', key, 'f:' .. child) or '0')
    local w = tonumber(redis.call('HGET', key, 'w:' .. child) or '1')
    if f > 0 then redis.call('HINCRBY', key, 'sum', 0 - f * w) end
    redis.call('HSET', key, 'f:' .. child, 0)
  end
end
redis.call('HDEL', key, 'canceled')
redis.call('HSET', key, 'class', 'reopened')
"""


@dataclass(frozen=True)
class Aggregate:
    """The parent's state as the script returned it."""

    parent_id: str
    version: int
    at: datetime
    durable: bool
    ended: bool
    started: bool
    counts: dict[str, int]
    percent: float
    canceled: bool
    mode: str

    @classmethod
    def parse(cls, parent_id: str, reply: list) -> Aggregate:
        epoch, now, durable, klass, *numbers, canceled, mode = (_text(v) for v in reply[1:])
        counts = dict(zip(job_json.COUNTED, (int(n or 0) for n in numbers[:6]), strict=True))
        counts["total"] = sum(counts.values())
        done, weight = int(numbers[6] or 0), int(numbers[7] or 1)
        return cls(
            parent_id=parent_id,
            version=int(epoch) * EPOCH,
            at=datetime.fromtimestamp(int(now) / 1000, UTC).replace(tzinfo=None),
            durable=durable == "1",
            ended=klass == "ended",
            started=klass != "queued",
            counts=counts,
            percent=round(done * 100 / (1000 * weight), 1),
            canceled=bool(canceled),
            mode=mode,
        )


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def start(redis: Redis, parent: TrackedJob, children: list[TrackedJob]) -> None:
    """Create the parent's aggregate: every child queued, nothing done."""
    weights = [child.weight or 1 for child in children]
    fields: dict[str, Any] = {
        "mode": parent.group_mode,
        "total": len(children),
        "weight": sum(weights),
        "sum": 0,
        "class": "queued",
        "n:queued": len(children),
        "floor": parent.version // EPOCH,
    }
    for child, weight in zip(children, weights, strict=True):
        fields[f"s:{child.id}"] = "queued"
        fields[f"w:{child.id}"] = weight
    with redis.pipeline() as pipe:
        pipe.delete(parent_key(parent.id))
        pipe.hset(parent_key(parent.id), mapping=fields)
        pipe.expire(parent_key(parent.id), KEEP_SECONDS)
        pipe.execute()


def rebuild(redis: Redis, parent: TrackedJob) -> None:
    """Make the aggregate again from the records, when Redis no longer has it."""
    children = list(parent.children)
    start(redis, parent, children)
    fields: dict[str, Any] = {"class": "rebuilt", "sum": 0}
    for child in children:
        counted = job_json.counted_as(child.status)
        fields[f"s:{child.id}"] = counted
        done = 1000 if child.status == "finished" else int((child.progress_percent or 0) * 10)
        fields[f"f:{child.id}"] = done
        fields["sum"] += done * (child.weight or 1)
    for status, count in job_json.counts(child.status for child in children).items():
        if status != "total":
            fields[f"n:{status}"] = count
    redis.hset(parent_key(parent.id), mapping=fields)


def fold(redis: Redis, child: dict[str, Any], gap: float, db_interval: float) -> Any:
    """Fold a child's new state into its parent's: an :class:`Aggregate` when the
    parent's event is due, the seconds to wait when it is held back, or None."""
    percent = child["progress"]["percent"]
    done = -1 if percent is None else int(percent * 10)
    parent_id = child["parent"]
    args = [child["id"], job_json.counted_as(child["status"]), done, int(gap * 1000)]
    args += [int(db_interval * 1000), KEEP_SECONDS]
    keys = [parent_key(parent_id), version_key(parent_id)]
    reply = redis.eval(_AGGREGATE, 2, *keys, *args)
    if reply[0] == -1:
        parent = db.session.get(TrackedJob, parent_id)
        if parent is None:
            return None
        rebuild(redis, parent)
        reply = redis.eval(_AGGREGATE, 2, *keys, *args)
    return _answer(parent_id, reply)


def flush(redis: Redis, parent_id: str, gap: float, db_interval: float) -> Any:
    """The held-back parent event, if nobody sent it meanwhile (as :func:`fold`)."""
    keys = [parent_key(parent_id), version_key(parent_id)]
    reply = redis.eval(_FLUSH, 2, *keys, int(gap * 1000), int(db_interval * 1000))
    return _answer(parent_id, reply)


def _answer(parent_id: str, reply: list) -> Any:
    if reply[0] == 1:
        return Aggregate.parse(parent_id, reply)
    if reply[0] == 0:
        return int(reply[1]) / 1000
    return None


def cancel(redis: Redis, parent_id: str) -> None:
    """The user canceled the parent: once its children end, it ends ``canceled``."""
    redis.hset(parent_key(parent_id), "canceled", 1)


def reopen(redis: Redis, parent: TrackedJob, children: list[TrackedJob]) -> None:
    """Before ``children`` run again: count them queued, with no progress. The
    parent's next event goes out at once, whatever the throttle says."""
    if not redis.exists(parent_key(parent.id)):
        rebuild(redis, parent)
    redis.eval(_REOPEN, 1, parent_key(parent.id), *(child.id for child in children))
