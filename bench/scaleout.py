"""Scale-out: myapp's fan-out on 1, 2 and 4 gunicorn worker processes (issue #18).

Each web process's hub subscribes only to the channels of the users with a
stream open on it, so adding processes should neither raise the CPU a process
spends per delivered event nor what Redis sends: with one stream per user, each
event reaches one process whichever P. For each P the same streams (one per
user, ``users`` of them) and the same publisher (``rate`` events/s round-robin
over the users, as :mod:`bench.fanout` publishes myapp's) run against a fresh
Redis and ``gunicorn --workers P``; the runs use :func:`bench.fanout.run_once`.

Measured besides the fan-out's figures: each worker process's CPU (from /proc),
its open streams (its ``myapp:metrics:web:*`` hash, which the kernel's spread of
connections over the shared socket decides), the channels each pub/sub
connection holds (``CLIENT LIST``'s ``sub``), and Redis's ``total_net_output_bytes``
over each run, less what this module's own ``INFO`` calls add.

Then the dense fan-out: ``dense_streams`` streams over ``dense_users`` users (5,000
over 10, as :mod:`bench.fanout`'s largest N: 500,000 deliveries a second) on
``dense_processes``, to see whether more processes bring its p99 down on this host:
here every process holds streams of every user, so every event goes to each.

Users are made in bulk (``python -m bench.scaleout users DB N``): one process, one
password hash for all, as ``flask user create`` would make them one by one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench import fanout, servers
from bench.fanout import System

#: Users' names here, apart from the suite's ``bench-user-*``.
PREFIX = "scale-user-"


@dataclass
class ScaleOptions:
    processes: list[int]
    users: int = 2000  # one stream each
    rate: float = 1000.0
    duration: float = 8.0
    repeats: int = 3
    dense_streams: int = 5000  # 0: no dense fan-out
    dense_users: int = 10
    dense_processes: tuple[int, ...] = (1, 2, 4)
    dense_repeats: int = 2
    drain: float = 3.0
    settle: float = 4.0
    deadline: float = float("inf")  # time.monotonic() after which no run starts
    log: callable = print


def create_users(db_path: Path, count: int) -> list[dict]:
    """``count`` users with an API token each, made by one subprocess."""
    env = servers.service_env("redis://127.0.0.1:1/0", f"sqlite:///{db_path}")
    done = subprocess.run(
        [servers.PYTHON, "-m", "bench.scaleout", "users", str(count)],
        cwd=servers.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"creating users failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout)


def _make_users(count: int) -> list[dict]:
    """Run in the subprocess: the app from the environment, ``count`` users."""
    from myapp import create_app
    from myapp.db import db
    from myapp.models import User

    app = create_app()
    with app.app_context():
        first = User(name=f"{PREFIX}0")
        first.set_password("x")
        password_hash = first.password_hash
        pending = []
        for i in range(count):
            user = first if i == 0 else User(name=f"{PREFIX}{i}", password_hash=password_hash)
            pending.append((user, user.new_token()))
            db.session.add(user)
        db.session.commit()
        return [{"name": u.name, "id": u.id, "token": t} for u, t in pending]


def start(p: int, workdir: Path, db_path: Path, users: list[dict]) -> System:
    """A Redis and ``gunicorn --workers p`` running myapp, as :mod:`bench.fanout` does."""
    from myapp.keys import channel_for

    redis = servers.start_redis(workdir / f"redis-scale-{p}", f"scale-{p}")
    try:
        env = servers.service_env(redis.url, f"sqlite:///{db_path}")
        env["MAX_STREAMS_PER_USER"] = str(fanout.STREAMS_PER_USER_LIMIT)
        web = servers.start_gunicorn(f"myapp-p{p}", "app:app", env, workdir, workers=p)
        servers.wait_until(lambda: len(web.worker_pids()) >= p, 30, f"{p} gunicorn workers")
        return System(
            "myapp",
            redis,
            web,
            [{"path": "/stream", "token": u["token"]} for u in users],
            [channel_for(u["id"]) for u in users],
        )
    except BaseException:
        redis.stop()
        raise


def streams_per_process(system: System, timeout: float = 15.0) -> dict[str, int]:
    """Open streams by worker pid, from the hashes the processes flush every 5 s."""
    from myapp.keys import WEB_FIGURES

    pids = {str(pid) for pid in system.web.worker_pids()}
    found: dict[str, int] = {}

    def read() -> bool:
        found.clear()
        for key in system.redis.client.scan_iter(f"{WEB_FIGURES}*"):
            pid = key.decode().rsplit(":", 1)[1]
            value = system.redis.client.hget(key, "open_streams")
            if pid in pids and value is not None:
                found[pid] = int(value)
        return set(found) == pids and sum(found.values()) >= system.n

    try:
        servers.wait_until(read, timeout, "open streams per process", interval=0.5)
    except Exception:  # report what was there
        pass
    return dict(found)


def subscriptions(system: System) -> list[int]:
    """Channels each pub/sub connection holds (the hub's own channel included)."""
    return sorted(
        int(c.get("sub", 0)) for c in system.redis.client.client_list() if int(c.get("sub", 0))
    )


def output_bytes(system: System) -> int:
    return int(system.redis.client.info("stats")["total_net_output_bytes"])


def info_cost(system: System) -> int:
    """Bytes one ``INFO stats`` reply adds to ``total_net_output_bytes``."""
    a = output_bytes(system)
    b = output_bytes(system)
    return b - a


def run_p(
    p: int,
    opts: ScaleOptions,
    workdir: Path,
    db_path: Path,
    users: list[dict],
    streams: int | None = None,
) -> dict:
    """P processes, ``streams`` streams (one per user unless given) round-robin over ``users``."""
    streams = streams or len(users)
    fopts = fanout.Options(
        streams=[streams],
        systems=["myapp"],
        users=len(users),
        rate=opts.rate,
        duration=opts.duration,
        drain=opts.drain,
        settle=opts.settle,
        log=opts.log,
    )
    system = start(p, workdir, db_path, users)
    try:
        opened = fanout.open_streams(system, streams, fopts)
        subs = subscriptions(system)
        opts.log(
            f"  P={p}: {opened['open']} streams open in {opened['open_seconds']:.1f}s; "
            f"subscriptions {subs}"
        )
        result = {"p": p, "open": opened, "subscriptions": subs, "runs": []}
        for repeat in range(opts.repeats):
            if time.monotonic() > opts.deadline:
                opts.log(f"  time budget spent: P={p} #{repeat} skipped")
                result.setdefault("skipped", []).append(f"P={p} #{repeat}")
                continue
            worker_pids = system.web.worker_pids()
            cost = info_cost(system)
            out0 = output_bytes(system)
            cpu0 = {pid: servers.cpu_seconds([pid]) for pid in worker_pids}
            run = fanout.run_once(system, fopts, workdir)
            cpu1 = {pid: servers.cpu_seconds([pid]) for pid in worker_pids}
            out1 = output_bytes(system)
            run["repeat"] = repeat
            run["redis_output"] = out1 - out0 - 2 * cost
            run["info_cost"] = cost
            run["process_cpu"] = {str(pid): cpu1[pid] - cpu0[pid] for pid in worker_pids}
            run["subscriptions"] = subscriptions(system)
            result["runs"].append(run)
            opts.log(
                f"  P={p} #{repeat}: {run['delivered_per_s']:.0f} ev/s "
                f"({run['delivered_fraction']:.0%} delivered), p99 "
                f"{fanout.fmt_ms(run['latency']['p99'])}, web "
                f"{1e6 * run['cpu']['web'] / max(run['received'], 1):.0f} µs CPU/event, "
                f"Redis out {run['redis_output'] / max(run['published'], 1):.0f} B/event"
            )
        # Read after the runs, by which time every process has flushed its figures.
        result["streams_per_process"] = held = streams_per_process(system)
        opts.log(f"  P={p}: streams per process {sorted(held.values())}")
        result["server_errors"] = system.web.errors()
        return result
    finally:
        system.stop()


def run(opts: ScaleOptions, workdir: Path, db_path: Path, users: list[dict] | None = None) -> dict:
    """Every P in turn: ``{"users", "rate", "duration", "per_p": [...]}``."""
    started = time.monotonic()
    users = users or create_users(db_path, opts.users)
    opts.log(f"  {len(users)} users made in {time.monotonic() - started:.1f}s")
    results = {
        "users": len(users),
        "streams": len(users),
        "rate": opts.rate,
        "duration": opts.duration,
        "repeats": opts.repeats,
        "per_p": [],
    }
    each_p(results, opts.processes, opts, lambda p: run_p(p, opts, workdir, db_path, users))
    if opts.dense_streams:
        dense = users[: opts.dense_users]
        dense_opts = replace(opts, repeats=min(opts.repeats, opts.dense_repeats))
        results["dense"] = {
            "users": len(dense), "streams": opts.dense_streams, "rate": opts.rate,
            "duration": opts.duration, "repeats": dense_opts.repeats, "per_p": [],
        }  # fmt: skip
        opts.log(f"  dense: {opts.dense_streams:,} streams over {len(dense)} users")
        each_p(
            results["dense"], opts.dense_processes, opts,
            lambda p: run_p(p, dense_opts, workdir, db_path, dense, streams=opts.dense_streams),
        )  # fmt: skip
    return results


def each_p(results: dict, processes, opts: ScaleOptions, run_one) -> None:
    """``run_one(p)`` into ``results["per_p"]`` for each P while the time budget lasts."""
    for p in processes:
        if time.monotonic() > opts.deadline:
            opts.log(f"  time budget spent: P={p} skipped")
            results.setdefault("skipped", []).append(f"P={p}")
            continue
        results["per_p"].append(run_one(p))


if __name__ == "__main__":
    if sys.argv[1:2] == ["users"]:
        print(json.dumps(_make_users(int(sys.argv[2]))), flush=True)
