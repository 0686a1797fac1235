"""The publisher: timestamped job-progress events at a fixed total rate.

Run as ``python -m bench.publisher '<json config>'`` by :mod:`bench.fanout`. It
prints ``ready`` once imported and connected, waits for a line on stdin, then
publishes ``rate`` events a second for ``duration`` seconds, round-robin over
the channels (it stops at the end of ``duration`` even when it fell behind, so a
slow publisher sends fewer events, not for longer), and prints one JSON line
with what it did.

Each event's data is a job as myapp sends it, plus ``"ts"``: the publisher's
``time.time()`` taken just before the publish call, which the clients subtract
from their own ``time.time()`` on receipt (same machine, same clock).

How each system publishes:

- ``stock``: flask-sse's ``sse.publish(data, type="job", channel=...)`` inside the
  stock app's context, which builds a new Redis client (and TCP connection) per
  call -- the baseline's real behaviour; ``stock-raw`` PUBLISHes the same JSON on
  one connection instead, to isolate the cost of delivery;
- ``myapp``: ``myapp.pipeline.event_log.append(redis, channel_for(user_id), {"data": ..., "type":
  "job"}, 300)`` on one client, as :mod:`myapp.pipeline.lifecycle` does (Lua: XADD to the
  user's log, HSET of the active job, PUBLISH);
- ``bare``: PUBLISH of flask-sse's JSON on one connection.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from redis import Redis


def job_event(job_id: str, seq: int, total: int) -> dict:
    """A job in myapp's JSON shape (about 330 bytes), with ``ts`` left to fill."""
    return {
        "id": job_id,
        "kind": "bench",
        "status": "started",
        "progress": {
            "done": seq,
            "total": total,
            "percent": round(seq * 100 / total, 1),
            "message": f"step {seq} of {total}",
            "eta_seconds": 1.0,
        },
        "created_at": "2026-11-23T10:26:48.474439Z",
        "started_at": "2026-11-23T10:26:48.474439Z",
        "ended_at": None,
        "updated_at": "2026-11-23T10:26:48.474439Z",
        "error": None,
        "result": None,
        "retry": None,
        "ts": 0.0,
    }


def publisher(system: str, redis_url: str):
    """A function ``publish(channel, data)`` for the system."""
    if system == "stock":
        import os

        os.environ["REDIS_URL"] = redis_url
        from flask_sse import sse

        from bench.stock_app import app

        app.app_context().push()
        return lambda channel, data: sse.publish(data, type="job", channel=channel)
    redis = Redis.from_url(redis_url)
    redis.ping()
    if system == "myapp":
        from myapp.pipeline import event_log

        def publish(channel, data):
            event_log.append(redis, channel, {"data": data, "type": "job"}, 300)

        return publish
    if system in ("bare", "stock-raw"):
        from flask_sse import Message

        def publish(channel, data):
            redis.publish(channel, json.dumps(Message(data, type="job").to_dict()))

        return publish
    raise SystemExit(f"unknown system {system!r}")


def main(config: dict) -> dict:
    channels: list[str] = config["channels"]
    rate: float = config["rate"]
    total = int(rate * config["duration"])
    publish = publisher(config["system"], config["redis_url"])
    jobs = [job_event(f"bench-job-{i}", 0, total) for i in range(len(channels))]
    print("ready", flush=True)
    sys.stdin.readline()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    end = start + config["duration"]
    max_lag = 0.0
    seq = 0
    # Bounded by time, not by count: a publisher that cannot keep up (stock
    # flask-sse's, on a busy machine) publishes fewer events, not for longer.
    while seq < total:
        now = time.monotonic()
        if now >= end:
            break
        lag = now - (start + seq / rate)
        if lag < 0:
            time.sleep(-lag)
        else:
            max_lag = max(max_lag, lag)
        index = seq % len(channels)
        data = jobs[index]
        data["progress"]["done"] = seq
        data["ts"] = time.time()
        publish(channels[index], data)
        seq += 1
    seconds = time.monotonic() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "published": seq,
        "planned": total,
        "seconds": seconds,
        "rate": seq / seconds,
        "max_lag": max_lag,
        "cpu": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
