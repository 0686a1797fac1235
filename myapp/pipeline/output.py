"""A job's output: the text its body writes with ``progress.output``, live and kept.

While the job runs, its text is appended in Redis and published on its user's stream
as ``event: output``, ``{"job": <id>, "offset": <start>, "text": "..."}``, through the
event log (so a reconnect with ``Last-Event-ID`` replays it exactly). Offsets count
Unicode code points from the start of the job's output, across its runs. The database
keeps a copy, written at most every ``PROGRESS_DB_INTERVAL`` and whole at the end, so
the output survives Redis. ``GET /api/jobs/<id>/output`` reads the longer of the two.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import update
from sqlalchemy.orm import Session

from myapp.connections import get_redis
from myapp.db import db, ride_out
from myapp.keys import channel_for, output_key, output_meta_key
from myapp.models import TrackedJob
from myapp.pipeline import event_log

#: Ends an output cut at ``OUTPUT_MAX_BYTES``; the job runs on.
MARKER = "\n[output truncated]\n"

# KEYS: the text, its hash (end: code points so far, truncated). ARGV: the chunk, its
# length in code points, truncated (1/0), TTL.
_APPEND = """
redis.call('APPEND', KEYS[1], ARGV[1])
local finish = redis.call('HINCRBY', KEYS[2], 'end', ARGV[2])
if ARGV[3] == '1' then redis.call('HSET', KEYS[2], 'truncated', 1) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return finish
"""


def clean(text: str) -> str:
    """Text that any client and any database can hold: NUL, which PostgreSQL refuses,
    becomes U+FFFD, and a lone surrogate, which UTF-8 cannot encode, becomes ``?``."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def read_text(job_id: str) -> str:
    """The job's whole output so far: Redis while it has it, else the record."""
    live = get_redis().get(output_key(job_id))
    if live is not None:
        return live.decode("utf-8")
    with Session(db.engine) as session:  # not the job body's: it may hold work of its own
        text = session.scalar(db.select(TrackedJob.output).filter_by(id=job_id))
    return text or ""


def emit(user_id: int, job_id: str, offset: int, text: str, truncated: bool) -> None:
    """Append a chunk to the job's output and publish it, in one round trip."""
    ttl = current_app.config["JOB_REDIS_TTL_SECONDS"]
    retention = current_app.config["STREAM_RETENTION_SECONDS"]
    message = {"type": "output", "data": {"job": job_id, "offset": offset, "text": text}}
    redis = get_redis()
    with redis.pipeline(transaction=True) as pipe:  # the text and its event, or neither
        keys = [output_key(job_id), output_meta_key(job_id)]
        pipe.eval(_APPEND, 2, *keys, text, len(text), int(truncated), ttl)
        event_log.append(pipe, channel_for(user_id), message, retention)
        pipe.execute()


def save(job_id: str, text: str, truncated: bool, wait: bool = True) -> None:
    """Keep the job's whole output so far in its record (one UPDATE), in a session of
    its own (a job body's uncommitted work is not committed with it); with ``wait``,
    riding out a database out of reach (:func:`myapp.db.ride_out`), as at the end."""

    def write():
        with Session(db.engine) as session:
            session.execute(
                update(TrackedJob)
                .where(TrackedJob.id == job_id)
                .values(output=text, output_truncated=truncated)
            )
            session.commit()

    if wait:
        ride_out(write, f"job {job_id}'s output")
    else:
        write()


def read(row: TrackedJob, after: int) -> dict[str, Any]:
    """The job's output past ``after`` code points. Redis and the record each hold a
    beginning of it (Redis the newer, unless it lost the text): the longer is read."""
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            pipe.get(output_key(row.id))
            pipe.hget(output_meta_key(row.id), "truncated")
            live, truncated = pipe.execute()
    except RedisError:  # the record holds it too, if up to PROGRESS_DB_INTERVAL old
        live = truncated = None
    text, cut = row.output or "", bool(row.output_truncated)
    live = live.decode("utf-8") if live is not None else ""
    if len(live) > len(text):
        text, cut = live, truncated is not None
    return {"text": text[after:], "offset": len(text), "truncated": cut}
