"""The output benchmark's baseline: the jobs' tokens on bare Redis pub/sub.

Run as ``python -m bench.tokens '<json config>'`` by :mod:`bench.output`. It
prints ``ready`` once connected, waits for a line on stdin, then plays ``jobs``
jobs at once, each writing ``rate`` tokens a second (``t=<time.time()>``, as
:func:`bench.jobbodies.streamer` writes them) for ``seconds``, and PUBLISHes each
job's tokens batched as myapp batches them: at once for the first, then every
1 / ``max_rate`` s, as ``{"job", "offset", "text"}`` on its user's
channel (job ``j`` is user ``j % users``'s). No Lua, no event log, no HTTP: what
myapp's delivery of the same tokens is compared with. It prints one JSON line
with what it did.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from redis import Redis


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def play(redis: Redis, config: dict) -> dict:
    cpu = _cpu()
    jobs, channels, rate = config["jobs"], config["channels"], config["rate"]
    count = round(rate * config["seconds"])  # tokens per job, one a tick
    every = max(round(rate / config["max_rate"]), 1)  # ticks from one send of a job to the next
    # Job j starts j * every / jobs ticks late: their sends spread over each interval,
    # as those of jobs started one after another do, rather than all fall on one tick.
    starts = [j * every // jobs for j in range(jobs)]
    unsent: list[list[str]] = [[] for _ in range(jobs)]
    offsets = [0] * jobs
    per_channel = [0] * len(channels)
    tokens = 0
    start = time.monotonic()
    for tick in range(count + every):
        wait = start + tick / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        for j in range(jobs):
            k = tick - starts[j]
            if not 0 <= k < count:
                continue
            unsent[j].append(f"t={time.time():.6f} ")  # stamped as it is written
            tokens += 1
            if k % every == 0 or k == count - 1:  # the first at once, then every interval
                text = "".join(unsent[j])
                data = {"job": f"bench-{j}", "offset": offsets[j], "text": text}
                redis.publish(channels[j % len(channels)], json.dumps(data))
                per_channel[j % len(channels)] += 1
                unsent[j], offsets[j] = [], offsets[j] + len(text)
    return {
        "published": sum(per_channel),
        "per_channel": per_channel,
        "tokens": tokens,
        "seconds": time.monotonic() - start,
        "cpu": _cpu() - cpu,
    }


def main(config: dict) -> None:
    redis = Redis.from_url(config["redis_url"])
    redis.ping()
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(play(redis, config)), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
