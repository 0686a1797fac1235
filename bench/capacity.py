"""Capacity: idle streams ramped up to 10,000 on one web process and to 100,000 on
the host's several, ``/healthz`` probed.

One gunicorn gevent worker (as in the fan-out) runs myapp on its own Redis and a
SQLite file of its own (users with no jobs: the streams' snapshots are empty). The
streams are opened in steps by :mod:`bench.clients` processes (at most 5,000
each), spread over the source addresses 127.0.0.2 to 127.0.0.9, every process's
file limit raised to its hard limit. Nothing is published: the streams only
get the snapshot and the heartbeats (every ``STREAM_HEARTBEAT_SECONDS``, when the
web process also renews all its streams' leases in Redis, in one round trip).

Then, at 0 and at the largest step only: myapp with ``STREAM_HEARTBEAT_SECONDS``
600 (what the heartbeats and their lease renewals cost), and the floor
(:mod:`bench.idle_app`, a bare Flask SSE view on the same server). Last, the host:
``gunicorn --workers P`` (one listening socket; a process whose
``--worker-connections`` are taken stops accepting, so no process passes the file
limit, which cannot be raised past its hard limit here) ramped to 100,000 streams,
the clients opening theirs P at a time, and the floor likewise. At 0 streams and
after each step (with the machine's busy cores, all processes counted),
:mod:`bench.loadgen` sends ``GET /healthz`` at a fixed rate over a few keep-alive
connections and records each answer's latency; memory is read at the same points:

- web RSS (arbiter and worker) and Redis ``used_memory``;
- the kernel's: TCP buffer memory (``/proc/net/sockstat``) plus slab memory
  (``/proc/meminfo`` ``Slab``: socket, inode and file structures), both machine
  wide and for both ends of every loopback socket, so halved to stand for the
  server's end (the clients would be elsewhere).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import servers
from bench.fanout import STREAMS_PER_USER_LIMIT, percentiles
from bench.servers import LineProc

SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]
#: STREAM_HEARTBEAT_SECONDS of the "quiet" myapp, against the default 15 s.
QUIET_HEARTBEAT = 600


@dataclass
class CapacityOptions:
    steps: list[int] = field(default_factory=lambda: [2500, 5000, 10000])
    probe_seconds: float = 5.0
    probe_rate: float = 200.0
    probe_connections: int = 2
    probes: int = 3  # per step
    per_client: int = 5000
    floor: bool = True  # also quiet myapp and bench.idle_app, at the largest step
    host_streams: int = 100_000  # over several web processes (0: not run)
    host_processes: int = 7
    host_connections: int = 18_000  # each process's --worker-connections
    open_concurrency: int = 100
    deadline: float = float("inf")
    log: callable = print


def slab_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Slab:"):
            return int(line.split()[1]) * 1024
    return 0


def memory(web: servers.WebServer, redis: servers.RedisServer) -> dict:
    return {
        "web_rss": servers.rss_bytes(web.pids()),
        "redis_used": redis.used_memory(),
        "tcp_mem": servers.tcp_mem_bytes(),
        "slab": slab_bytes(),
    }


def open_files(web: servers.WebServer) -> list[int]:
    """Each web worker process's open files: its streams, and a few dozen of its own."""
    counts = []
    for pid in web.worker_pids():
        try:
            counts.append(len(os.listdir(f"/proc/{pid}/fd")))
        except OSError:
            pass  # it ended meanwhile
    return counts


def busy_seconds() -> float:
    """CPU seconds the whole machine spent busy: ``/proc/stat``'s user to steal, less
    idle and iowait (guest time is counted in user already)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def probe(web: servers.WebServer, opts: CapacityOptions) -> dict:
    from bench.enqueue import load

    config = {
        "mode": "http",
        "host": "127.0.0.1",
        "port": web.port,
        "requests": ["GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"],
        "connections": opts.probe_connections,
        "rate": opts.probe_rate,
        "duration": opts.probe_seconds,
    }
    cpu0, busy0 = servers.cpu_seconds(web.pids()), busy_seconds()
    out = load(config, timeout=opts.probe_seconds + 60)
    cpu1, busy1 = servers.cpu_seconds(web.pids()), busy_seconds()
    return {
        "host_cores": (busy1 - busy0) / out["seconds"],
        **percentiles(out["latencies"]),
        "min": min(out["latencies"], default=None),
        "errors": out["errors"],
        "statuses": out["statuses"],
        "web_cores": (cpu1 - cpu0) / out["seconds"],
    }


def run(opts: CapacityOptions, workdir: Path, db_path: Path, users: list[dict]) -> dict:
    """myapp's ramp; then, at the largest step only, myapp with heartbeats 40 times
    rarer (what the heartbeats cost) and the floor (``bench.idle_app``); then myapp and
    the floor on the host's several processes."""
    results: dict = {"steps": [], "quiet": [], "floor": [], "sources": SOURCES, "probe": {
        "seconds": opts.probe_seconds, "rate": opts.probe_rate,
        "connections": opts.probe_connections, "probes": opts.probes,
    }}  # fmt: skip
    skipped: list[str] = []
    # A database of its own, with users of its own: the other scenarios leave thousands
    # of jobs in the run's, and each stream's snapshot would carry a user's latest 200.
    db_path = workdir / "capacity.db"
    env = servers.service_env("redis://127.0.0.1:1/0", f"sqlite:///{db_path}")
    users = servers.create_users(env, db_path, [f"capacity-user-{i}" for i in range(len(users))])

    def on_own_redis(name: str, app: str, steps: list[int], workers: int = 1, **settings):
        """``ramp`` on a Redis of its own (the floor uses none: only so that the memory
        columns read alike); myapp on the capacity database, its stream limit raised."""
        redis = servers.start_redis(workdir / f"redis-{name}", name)
        try:
            if app == "app:app":
                env = servers.service_env(redis.url, f"sqlite:///{db_path}")
                env["MAX_STREAMS_PER_USER"] = str(STREAMS_PER_USER_LIMIT)
            else:
                env = servers.service_env(redis.url)
            env.update(settings)
            return ramp(name, app, env, steps, redis, opts, workdir, users, skipped, workers)
        finally:
            redis.stop()

    results["steps"], results["server_errors"] = on_own_redis("myapp", "app:app", [0, *opts.steps])
    if opts.floor and opts.steps and time.monotonic() < opts.deadline:
        top = [0, max(opts.steps)]
        quiet = {"STREAM_HEARTBEAT_SECONDS": str(QUIET_HEARTBEAT)}
        results["quiet"], _ = on_own_redis("myapp-quiet", "app:app", top, **quiet)
    if opts.floor and opts.steps and time.monotonic() < opts.deadline:
        results["floor"], _ = on_own_redis("floor", "bench.idle_app:app", [0, max(opts.steps)])
    host = [0, opts.host_streams]
    if opts.host_streams and time.monotonic() < opts.deadline:
        results["host"], results["host_errors"] = on_own_redis(
            "myapp-host", "app:app", host, workers=opts.host_processes
        )
        results["host_processes"] = opts.host_processes
        results["host_connections"] = opts.host_connections
    if opts.host_streams and opts.floor and time.monotonic() < opts.deadline:
        results["floor_host"], _ = on_own_redis(
            "floor-host", "bench.idle_app:app", host, workers=opts.host_processes
        )
    if skipped:
        results["skipped"] = ", ".join(skipped)
    return results


def ramp(
    name, app, env, steps, redis, opts, workdir, users, skipped, workers: int = 1
) -> tuple[list[dict], dict]:
    """Open idle streams up to each of ``steps`` in turn; memory and probes at each.
    With several web ``workers``, as many clients open their streams at once."""
    found = []
    connections = opts.host_connections if workers > 1 else servers.WORKER_CONNECTIONS
    with ExitStack() as stack:
        web = servers.start_gunicorn(f"capacity-{name}", app, env, workdir, workers, connections)
        stack.callback(web.stop)
        servers.wait_until(lambda: len(web.worker_pids()) >= workers, 30, f"{name} workers")
        clients: list[LineProc] = []
        stack.callback(lambda: [c.stop() for c in clients])
        probe(web, opts)  # warm up: imports, first connections
        time.sleep(1.0)
        base = memory(web, redis)
        opened = 0
        for n in steps:
            if time.monotonic() > opts.deadline:
                opts.log(f"  capacity {name}: time budget spent; {n:,} streams skipped")
                skipped.append(f"{name} at {n:,} streams")
                continue
            started = time.monotonic()
            failed = 0
            while opened + failed < n:
                batch = []
                offset = opened + failed
                while len(batch) < workers and offset < n:
                    count = min(opts.per_client, n - offset)
                    config = {
                        "kind": "sse",
                        "host": "127.0.0.1",
                        "port": web.port,
                        "n": count,
                        "offset": offset,
                        "users": [{"path": "/stream", "token": u["token"]} for u in users],
                        "ready_mark": "event:snapshot",
                        # As many opening at once over the host as on one process.
                        "concurrency": max(10, opts.open_concurrency // workers),
                        "open_timeout": 120,
                        "sources": SOURCES,
                    }
                    client = LineProc(
                        f"capacity-client-{len(clients)}",
                        [servers.PYTHON, "-m", "bench.clients", json.dumps(config)],
                    )
                    clients.append(client)
                    batch.append(client)
                    offset += count
                for client in batch:
                    client.read(30)
                    client.send("open")
                for client in batch:
                    answer = json.loads(client.read(600))
                    opened += answer["open"]
                    failed += answer["failed"]
            open_seconds = time.monotonic() - started
            time.sleep(1.0)
            now = memory(web, redis)
            files = open_files(web)
            probes = [probe(web, opts) for _ in range(opts.probes)]
            still = sum(c.ask("count")["open"] for c in clients)
            found.append(
                {
                    "n": n,
                    "open": still,
                    "failed": failed,
                    "open_seconds": open_seconds,
                    "memory": now,
                    "delta": {k: now[k] - base[k] for k in now},
                    "probes": probes,
                    "open_files": files,
                }
            )
            p99 = [p["p99"] for p in probes]
            opts.log(
                f"  capacity {name}: {still:,} streams open ({failed} failed, "
                f"{open_seconds:.0f}s), /healthz p99 {' / '.join(f'{v * 1000:.1f}' for v in p99)}"
                f" ms, web RSS {now['web_rss'] / 2**20:.0f} MiB, open files per web process "
                f"{min(files, default=0):,}–{max(files, default=0):,}"
            )
        return found, web.errors()
