"""A queued job's place in line, and when it should start.

RQ keeps the line. A queue is a list, the next job first (``rq:queue:<name>``). Past
``MAX_RUNNING_JOBS_PER_USER``, a user's rate limit holds jobs back
(``rq:rl:<key>:rate_limited``) and lets them go oldest first, each to the end of the
list. So a job's place is 1 + the jobs that start before it: those ahead of it in the
list, or, for a held job, the whole list and the user's held jobs older than it.

The estimate divides the place by the rate at which workers started jobs in the last
minute (:func:`count_start`, on the worker's ``started`` event).

A place is not part of a job's state: it moves while the job does not change. So
answers add it as ``queue`` when they are read (:func:`annotate`), and once a second
one web process (:func:`tick`) sends each user whose line moved an ``event: queue``,
``{"jobs": {"<id>": {"position": N, "eta_seconds": S}}}``.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq.job import Job
from rq.queue import Queue
from rq.rate_limit import RateLimitRegistry

from myapp.keys import channel_for, line_key, line_lock_key, line_starts_key, running_limit_key
from myapp.pipeline import event_log

#: How far into a queue places are counted; a job further back has none (``queue: null``).
LINE_MOST = 10_000
#: The window of job starts the rate is taken over, in milliseconds.
RATE_WINDOW_MS = 60_000
#: The shortest span a rate is taken over: a burst of starts is not a steady rate.
RATE_SPAN_LEAST = 10.0
#: How long the line last sent to a user is remembered, in seconds (an unchanged line
#: is sent again after it, once).
SENT_SECONDS = 3600
#: Up to this many of a user's queued jobs are looked for one by one (``LPOS``); more
#: read the queue once.
FEW = 8

_OWNER = re.compile(r"myapp:user:(\d+)$")

# KEYS: the queue's starts. ARGV: the job id, the window (ms).
_COUNT_START = """
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], ms, ARGV[1] .. '@' .. ms)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# The starts in the window and the milliseconds since the first of them, on Redis's
# clock (hosts' clocks disagree). KEYS: the queue's starts. ARGV: the window (ms).
_RATE = """
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = ms - tonumber(ARGV[1])
local first = redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #first == 0 then return {0, 0} end
return {redis.call('ZCOUNT', KEYS[1], since, '+inf'), ms - tonumber(first[2])}
"""


def count_start(pipe: Pipeline, queue_name: str, job_id: str) -> None:
    """A worker started a job of the queue (queued on the ``started`` event's pipeline)."""
    pipe.eval(_COUNT_START, 1, line_starts_key(queue_name), job_id, RATE_WINDOW_MS)


def _rate(redis: Redis | Pipeline, queue_name: str) -> Any:
    return redis.eval(_RATE, 1, line_starts_key(queue_name), RATE_WINDOW_MS)


def _per_second(answer: list[int]) -> float | None:
    count, span_ms = answer
    return count / max(span_ms / 1000, RATE_SPAN_LEAST) if count else None


def place(position: int, rate: float | None) -> dict[str, Any]:
    """``{"position", "eta_seconds"}``. The estimate is rounded up, to 5 s under two
    minutes and to the minute past them: a line sent again says something new."""
    if rate is None:
        return {"position": position, "eta_seconds": None}
    seconds = position / rate
    step = 5 if seconds < 120 else 60
    return {"position": position, "eta_seconds": int(math.ceil(seconds / step) * step)}


def _queue_key(queue_name: str) -> str:
    return Queue.redis_queue_namespace_prefix + queue_name


def _held_key(redis: Redis, user_id: int) -> str:
    return RateLimitRegistry(running_limit_key(user_id), connection=redis).rate_limited_key


def annotate(redis: Redis, queue_name: str, user_id: int, jobs: list[dict]) -> list[dict]:
    """The jobs, each with ``queue``: its place if it is queued and placed, else null."""
    waiting = [job["id"] for job in jobs if job["status"] == "queued"]
    try:
        places = _places(redis, queue_name, user_id, waiting) if waiting else {}
    except RedisError:
        places = {}  # Redis is away: the jobs are still listed, without their places
    return [{**job, "queue": places.get(job["id"])} for job in jobs]


def _places(redis: Redis, queue_name: str, user_id: int, waiting: list[str]) -> dict[str, Any]:
    """The places of the user's jobs that are placed, in one round trip."""
    queue_key, held_key = _queue_key(queue_name), _held_key(redis, user_id)
    few = len(waiting) <= FEW
    with redis.pipeline(transaction=False) as pipe:
        pipe.llen(queue_key)
        _rate(pipe, queue_name)
        if not few:
            pipe.lrange(queue_key, 0, LINE_MOST - 1)
        for job_id in waiting:
            if few:
                pipe.lpos(queue_key, job_id, maxlen=LINE_MOST)
            pipe.zrank(held_key, job_id)
        length, rate, *found = pipe.execute()
    if few:
        indexes, ranks = found[::2], found[1::2]
    else:
        listed = {job_id.decode(): index for index, job_id in enumerate(found[0])}
        indexes, ranks = [listed.get(job_id) for job_id in waiting], found[1:]
    per_second = _per_second(rate)
    places = {}
    for job_id, index, rank in zip(waiting, indexes, ranks, strict=True):
        position = _position(index, rank, length)
        if position is not None:
            places[job_id] = place(position, per_second)
    return places


def _position(index: int | None, held_rank: int | None, length: int) -> int | None:
    """1 for the next job to start: from its index in the queue, or, held back by
    its user's running limit, behind the whole queue and the user's older held jobs."""
    if index is not None:
        return index + 1
    if held_rank is not None:
        return length + held_rank + 1
    return None


class Line:
    """The loop that sends each user's moved line, run by every web process once a
    second (:class:`myapp.web.hub.Hub`); one of them a second does the work."""

    def __init__(self, redis: Redis, queue_name: str, retention_seconds: float):
        self.redis = redis
        self.queue_name = queue_name
        self.retention_seconds = retention_seconds
        #: Job id -> (owner, queue): a job's never change, so each is read once.
        self._owners: dict[str, tuple[int, str] | None] = {}

    def tick(self) -> int:
        """Send the lines that moved, if no other process holds this second; returns
        how many were sent."""
        if not self.redis.set(line_lock_key(self.queue_name), os.getpid(), nx=True, px=1000):
            return 0
        lines = self.lines()
        users = list(lines)
        with self.redis.pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.get(line_key(channel_for(user_id)))
            before = pipe.execute()
        sent = 0
        with self.redis.pipeline(transaction=False) as pipe:
            for user_id, last in zip(users, before, strict=True):
                encoded = json.dumps(lines[user_id], sort_keys=True)
                if last is not None and last.decode() == encoded:
                    continue
                channel = channel_for(user_id)
                message = {"type": "queue", "data": {"jobs": lines[user_id]}}
                event_log.append(pipe, channel, message, self.retention_seconds)
                pipe.set(line_key(channel), encoded, ex=SENT_SECONDS)
                sent += 1
            pipe.execute()
        return sent

    def lines(self) -> dict[int, dict[str, dict[str, Any]]]:
        """Every user's places in this queue: user id -> job id -> place."""
        queue_key = _queue_key(self.queue_name)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.lrange(queue_key, 0, LINE_MOST - 1)
            pipe.llen(queue_key)
            pipe.smembers(RateLimitRegistry.rl_keys_key)
            _rate(pipe, self.queue_name)
            listed, length, limits, rate = pipe.execute()
        owners = [int(m[1]) for key in limits if (m := _OWNER.match(key.decode()))]
        with self.redis.pipeline(transaction=False) as pipe:
            for user_id in owners:
                pipe.zrange(_held_key(self.redis, user_id), 0, LINE_MOST - 1)
            held = pipe.execute()
        listed = [job_id.decode() for job_id in listed]
        held = [[job_id.decode() for job_id in ids] for ids in held]
        self._learn_owners(listed + [job_id for ids in held for job_id in ids])
        per_second = _per_second(rate)
        lines: dict[int, dict[str, dict[str, Any]]] = {}
        for index, job_id in enumerate(listed):
            owner = self._owners.get(job_id)
            if owner is not None:
                lines.setdefault(owner[0], {})[job_id] = place(index + 1, per_second)
        for user_id, ids in zip(owners, held, strict=True):
            for rank, job_id in enumerate(ids):
                owner = self._owners.get(job_id)
                if owner is not None and owner[1] == self.queue_name:
                    position = _position(None, rank, length)
                    lines.setdefault(user_id, {})[job_id] = place(position, per_second)
        return lines

    def _learn_owners(self, job_ids: list[str]) -> None:
        """Read the owner (from the job's rate limit key) and queue of jobs not seen yet."""
        new = [job_id for job_id in dict.fromkeys(job_ids) if job_id not in self._owners]
        if not new:
            return
        if len(self._owners) + len(new) > 4 * LINE_MOST:
            self._owners.clear()  # the jobs seen long ago have left the line
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in new:
                pipe.hmget(Job.key_for(job_id), "rate_limit_key", "origin")
            found = pipe.execute()
        for job_id, (limit_key, origin) in zip(new, found, strict=True):
            owner = _OWNER.match(limit_key.decode()) if limit_key and origin else None
            self._owners[job_id] = (int(owner[1]), origin.decode()) if owner else None
