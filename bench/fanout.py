"""Fan-out: N open streams over a few users, a publisher at a fixed total rate.

For each N, every system gets its own Redis server (and web server), all N of
its streams are opened once (memory is measured around that), and then the
repeats run one system at a time, in an order that rotates from one repeat to
the next, so that the machine's noise falls on every system alike:

- ``stock``: stock flask-sse (:mod:`bench.stock_app`), one pub/sub connection per
  stream, published with its ``sse.publish`` (new Redis client per publish);
- ``myapp``: the real app, ``/stream`` with a Bearer token, published with
  :func:`myapp.pipeline.event_log.append` as :mod:`myapp.pipeline.lifecycle` does;
- ``bare``: no HTTP, one Redis subscription per stream, plain PUBLISH.

A run: the publisher sends ``rate`` events/s for ``duration`` s; the clients count
what arrives during that window (delivered events/s) and then for up to
``drain`` s more (every received event's latency counts); CPU is read from
/proc for the web process(es) and the Redis server over the same span. Then the
system must go quiet before the next run: one still behind (its backlog would
run into the next system's measurement) is reset, i.e. its streams are closed
and reopened, as are streams the server dropped.

At the smallest N, myapp also gets a reconnect storm: ``burst`` more streams
opened all at once, as when a web process with that many streams restarts.
"""

from __future__ import annotations

import json
import time
from array import array
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import servers
from bench.clients import config_arg
from bench.servers import LineProc, RedisServer, WebServer

#: What each system runs: its web app (None: no HTTP) and how its events are published.
SYSTEMS = {
    "stock": {"web": "bench.stock_app:app", "publish": "stock"},
    "stock-raw": {"web": "bench.stock_app:app", "publish": "stock-raw"},
    "myapp": {"web": "app:app", "publish": "myapp"},
    "bare": {"web": None, "publish": "bare"},
}


#: myapp's MAX_STREAMS_PER_USER in the benchmarks, whose users hold hundreds of streams.
STREAMS_PER_USER_LIMIT = 1_000_000


@dataclass
class Options:
    streams: list[int]
    systems: list[str]
    users: int = 10
    rate: float = 1000.0
    duration: float = 10.0
    repeats: int = 3
    large_repeats: int = 2  # at N >= 5,000, where a saturated run also reopens every stream
    drain: float = 3.0
    settle: float = 4.0
    streams_per_client: int = 5000
    open_concurrency: int = 50  # streams being opened at once
    burst: int = 1000  # a reconnect storm tried once at the smallest N (0: none)
    bare_client: str = "raw"
    deadline: float = float("inf")  # time.monotonic() after which no run starts
    log: callable = print


@dataclass
class System:
    name: str
    redis: RedisServer
    web: WebServer | None
    users: list[dict]  # per user: what a client needs (path, token, channel)
    channels: list[str]  # per user: where the publisher publishes
    clients: list[LineProc] = field(default_factory=list)
    n: int = 0
    per_user: list[int] = field(default_factory=list)  # open streams per user

    def pids(self) -> dict[str, list[int]]:
        return {
            "web": self.web.pids() if self.web else [],
            "redis": [self.redis.proc.pid],
            "client": [c.pid for c in self.clients],
        }

    def cpu(self) -> dict[str, float]:
        return {part: servers.cpu_seconds(pids) for part, pids in self.pids().items()}

    def ask_all(self, line: str, timeout: float = 60.0) -> list[dict]:
        for client in self.clients:
            client.send(line)
        return [json.loads(client.read(timeout)) for client in self.clients]

    def stop(self) -> None:
        try:
            for client in self.clients:
                client.stop()
        finally:
            try:
                if self.web:
                    self.web.stop()
            finally:
                self.redis.stop()


def start_system(name: str, workdir: Path, myapp_db: Path, myapp_users: list[dict]) -> System:
    """Its Redis and web server; ``myapp_users`` were created once for the whole run."""
    spec = SYSTEMS[name]
    redis = servers.start_redis(workdir / f"redis-{name}", name)
    try:
        web = None
        if name == "myapp":
            from myapp.keys import channel_for

            env = servers.service_env(redis.url, f"sqlite:///{myapp_db}")
            # Hundreds of streams per user: MAX_STREAMS_PER_USER (20) would refuse them.
            env["MAX_STREAMS_PER_USER"] = str(STREAMS_PER_USER_LIMIT)
            channels = [channel_for(u["id"]) for u in myapp_users]
            users = [{"path": "/stream", "token": u["token"]} for u in myapp_users]
        else:
            env = servers.service_env(redis.url)
            channels = [f"bench:user:{i}" for i in range(len(myapp_users))]
            users = [{"path": f"/stream?channel={c}", "channel": c} for c in channels]
        if spec["web"]:
            web = servers.start_gunicorn(name, spec["web"], env, workdir)
        return System(name, redis, web, users, channels)
    except BaseException:
        redis.stop()
        raise


def memory(system: System) -> dict[str, int]:
    return {
        "web_rss": servers.rss_bytes(system.pids()["web"]),
        "redis_used": system.redis.used_memory(),
        "tcp_mem": servers.tcp_mem_bytes(),
        "redis_clients": system.redis.clients(),
        "tcp_inuse": servers.tcp_sockets().get("inuse", 0),
    }


def open_streams(system: System, n: int, opts: Options) -> dict:
    """Start the client process(es), open ``n`` streams, measure what they hold."""
    before = memory(system)
    per_client = max(1, opts.streams_per_client)
    offset = 0
    started = time.monotonic()
    while offset < n:
        count = min(per_client, n - offset)
        config = {
            "kind": "bare" if system.web is None else "sse",
            "client": opts.bare_client if system.web is None else "raw",
            "host": "127.0.0.1",
            "port": system.web.port
            if system.web
            else int(system.redis.url.rsplit(":", 1)[1].split("/")[0]),
            "n": count,
            "offset": offset,
            "users": system.users,
            "ready_mark": "event:snapshot" if system.name == "myapp" else "",
            "concurrency": opts.open_concurrency,
            "open_timeout": 120,
        }
        client = LineProc(
            f"client-{system.name}-{len(system.clients)}",
            [servers.PYTHON, "-m", "bench.clients", config_arg(config)],
        )
        system.clients.append(client)
        client.read(30)  # its "ready"
        offset += count
    answers = system.ask_all("open", timeout=600)
    opened = sum(a["open"] for a in answers)
    system.n = opened
    wait_subscribed(system)
    system.n = n
    seconds = time.monotonic() - started
    time.sleep(1.0)
    after = memory(system)
    system.per_user = per_user_counts(n, len(system.users))
    return {
        "requested": n,
        "open": opened,
        "failed": sum(a["failed"] for a in answers),
        "open_seconds": seconds,
        "before": before,
        "after": after,
        "web_rss_per_stream": (after["web_rss"] - before["web_rss"]) / max(opened, 1),
        "redis_per_stream": (after["redis_used"] - before["redis_used"]) / max(opened, 1),
        "tcp_per_stream": (after["tcp_mem"] - before["tcp_mem"]) / max(opened, 1),
        "redis_clients": after["redis_clients"],
        "redis_client_cmds": client_commands(system.redis),
    }


def client_commands(redis: RedisServer) -> dict[str, int]:
    """Redis's clients by the last command they ran (this monitor's own excluded)."""
    counts: dict[str, int] = {}
    for client in redis.client.client_list():
        if client.get("cmd") not in ("client", "client|list"):
            counts[client.get("cmd", "?")] = counts.get(client.get("cmd", "?"), 0) + 1
    return counts


def burst_open(system: System, count: int) -> dict:
    """A reconnect storm: ``count`` more streams opened all at once (then closed)."""
    config = {
        "kind": "sse",
        "client": "raw",
        "host": "127.0.0.1",
        "port": system.web.port,
        "n": count,
        "offset": 0,
        "users": system.users,
        "concurrency": count,
        "ready_mark": "event:snapshot" if system.name == "myapp" else "",
        "open_timeout": 60,
    }
    client = LineProc(
        f"burst-{system.name}", [servers.PYTHON, "-m", "bench.clients", json.dumps(config)]
    )
    errors_before = system.web.errors()
    try:
        client.read(30)
        answer = client.ask("open", timeout=120)
        clients = system.redis.clients()
        cmds = client_commands(system.redis)
    finally:
        client.stop()
    time.sleep(0.5)
    errors = {k: v - errors_before.get(k, 0) for k, v in system.web.errors().items()}
    return {
        "system": system.name,
        "n": system.n,
        "burst": count,
        "opened": answer["open"],
        "server_errors": {k: v for k, v in errors.items() if v},
        "failed": answer["failed"],
        "seconds": answer["seconds"],
        "redis_clients": clients,
        "redis_client_cmds": cmds,
    }


def per_user_counts(n: int, users: int) -> list[int]:
    return [n // users + (1 if u < n % users else 0) for u in range(users)]


def expected_deliveries(published: int, per_user: list[int]) -> int:
    users = len(per_user)
    return sum(
        (published // users + (1 if u < published % users else 0)) * per_user[u]
        for u in range(users)
    )


def total_count(system: System) -> tuple[int, int, int]:
    answers = system.ask_all("count")
    return (
        sum(a["count"] for a in answers),
        sum(a.get("bytes", 0) for a in answers),
        sum(a["closed"] for a in answers),
    )


def run_once(system: System, opts: Options, workdir: Path) -> dict:
    """One publishing run against one system; its figures."""
    config = {
        "system": SYSTEMS[system.name]["publish"],
        "redis_url": system.redis.url,
        "channels": system.channels,
        "rate": opts.rate,
        "duration": opts.duration,
    }
    publisher = LineProc(
        f"publisher-{system.name}",
        [servers.PYTHON, "-m", "bench.publisher", json.dumps(config)],
        env=servers.service_env(system.redis.url),
    )
    try:
        if publisher.read(60).strip() != "ready":
            raise RuntimeError("the publisher did not start")
        at_start = system.ask_all("count")
        open_at_start = sum(a["open"] for a in at_start)
        closed_at_start = sum(a["closed"] for a in at_start)
        system.ask_all("start")
        cpu0 = system.cpu()
        t0 = time.monotonic()
        publisher.send("go")
        published = json.loads(publisher.read(opts.duration * 5 + 60))
        window_seconds = time.monotonic() - t0
        window_count, _, _ = total_count(system)
        cpu_window = system.cpu()
        expected = expected_deliveries(published["published"], system.per_user)
        expected = round(expected * open_at_start / system.n)  # when some failed to open
        # Drain: until everything arrived, nothing arrived for a second, or the cap.
        drain_start = last_change = time.monotonic()
        count = window_count
        while count < expected and time.monotonic() - drain_start < opts.drain:
            time.sleep(0.2)
            now_count, _, _ = total_count(system)
            if now_count > count:
                count, last_change = now_count, time.monotonic()
            elif time.monotonic() - last_change > 1.0:
                break
        cpu1 = system.cpu()
        drain_seconds = time.monotonic() - drain_start
        files = [workdir / f"lat-{system.name}-{i}.f64" for i in range(len(system.clients))]
        for client, path in zip(system.clients, files, strict=True):
            client.send(f"stop {path}")
        answers = [json.loads(client.read(60)) for client in system.clients]
    finally:
        publisher.stop()
    received = sum(a["count"] for a in answers)
    closed = sum(a["closed"] for a in answers) - closed_at_start
    latencies = array("d")
    for path in files:
        with open(path, "rb") as f:
            latencies.frombytes(f.read())
        path.unlink()
    cpu = {part: cpu1[part] - cpu0[part] for part in cpu0}
    cpu_w = {part: cpu_window[part] - cpu0[part] for part in cpu0}
    settle_start = time.monotonic()
    # A backlog left after the drain would run into the next system's measurement.
    reset = received < 0.99 * expected or not settle(system, opts.settle)
    if reset:
        # Still sending its backlog: drop it (close every stream, let the server
        # notice) rather than let it run into the next system's measurement.
        system.ask_all("close")
        settle(system, 30.0)
    reopened = 0
    if reset or sum(a["open"] for a in answers) < system.n:  # reopen what was closed
        reopened = sum(a["opened"] for a in system.ask_all("open", timeout=600))
        wait_subscribed(system)
    settle_seconds = time.monotonic() - settle_start
    return {
        "system": system.name,
        "open_streams": open_at_start,
        "published": published["published"],
        "publish_rate": published["rate"],
        "publisher_max_lag": published["max_lag"],
        "publisher_cpu": published["cpu"],
        "expected": expected,
        "window_seconds": window_seconds,
        "window_count": window_count,
        "received": received,
        "drain_seconds": drain_seconds,
        "delivered_per_s": window_count / published["seconds"],
        "delivered_fraction": received / expected if expected else 0.0,
        "latency": percentiles(latencies),
        "cpu": cpu,
        "cpu_window": cpu_w,
        "cpu_per_event": (cpu["web"] + cpu["redis"]) / received if received else None,
        "client_cpu_share": cpu["client"] / (window_seconds + drain_seconds),
        "closed": closed,
        "reset": reset,
        "reopened": reopened,
        "settle_seconds": settle_seconds,
    }


def settle(system: System, limit: float) -> bool:
    """Wait until the system is quiet (nothing reaches the clients for a second and
    its processes use under 5% of a core); False when still busy after ``limit`` s."""
    started = time.monotonic()
    _, last_bytes, _ = total_count(system)
    last_cpu = sum(system.cpu()[part] for part in ("web", "redis"))
    quiet_since = time.monotonic()
    while time.monotonic() - started < limit:
        time.sleep(0.25)
        _, now_bytes, _ = total_count(system)
        now_cpu = sum(system.cpu()[part] for part in ("web", "redis"))
        if now_bytes != last_bytes or now_cpu - last_cpu > 0.0125:
            quiet_since = time.monotonic()
        last_bytes, last_cpu = now_bytes, now_cpu
        if time.monotonic() - quiet_since >= 1.0:
            return True
    return False


def wait_subscribed(system: System) -> None:
    """Stock flask-sse sends nothing before the first event, and a bare subscriber's
    confirmation is not waited for: ask Redis that every stream is subscribed."""
    if system.name == "myapp":
        return  # its streams are ready once their snapshot arrived
    servers.wait_until(
        lambda: system.redis.numsub(system.channels) >= system.n,
        120,
        f"{system.name} subscriptions",
    )


def percentiles(values: array) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": ordered[-1],
        "n": len(ordered),
    }


def run(opts: Options, workdir: Path, myapp_db: Path, myapp_users: list[dict]) -> dict:
    """Every N, every system, every repeat: ``{"open": [...], "runs": [...]}``."""
    results: dict[str, list] = {"open": [], "runs": []}
    for n in opts.streams:
        if time.monotonic() > opts.deadline:
            opts.log(f"  time budget spent: N={n} skipped")
            results.setdefault("skipped", []).append(f"N={n}")
            continue
        with ExitStack() as stack:
            systems = []
            for name in opts.systems:
                system = start_system(name, workdir, myapp_db, myapp_users)
                stack.callback(system.stop)
                systems.append(system)
            for system in systems:
                opened = open_streams(system, n, opts)
                opts.log(
                    f"  N={n} {system.name}: {opened['open']} open in "
                    f"{opened['open_seconds']:.1f}s, "
                    f"{opened['redis_clients']} Redis clients"
                )
                results["open"].append({"n": n, "system": system.name, **opened})
            repeats = opts.large_repeats if n >= 5000 else opts.repeats
            for repeat in range(repeats):
                shift = repeat % len(systems)
                for system in systems[shift:] + systems[:shift]:
                    if time.monotonic() > opts.deadline:
                        opts.log(f"  time budget spent: N={n} {system.name} #{repeat} skipped")
                        results.setdefault("skipped", []).append(f"N={n} {system.name} #{repeat}")
                        continue
                    result = run_once(system, opts, workdir)
                    result.update(n=n, repeat=repeat)
                    results["runs"].append(result)
                    lat = result["latency"]
                    opts.log(
                        f"  N={n} #{repeat} {system.name}: {result['delivered_per_s']:.0f} ev/s "
                        f"({result['delivered_fraction']:.0%} delivered), "
                        f"p50 {fmt_ms(lat['p50'])} p99 {fmt_ms(lat['p99'])}, "
                        f"{1e6 * (result['cpu_per_event'] or 0):.1f} µs CPU/event, "
                        f"closed {result['closed']}, reset {result['reset']}, "
                        f"{result['settle_seconds']:.1f}s to settle"
                    )
            errors = {s.name: s.web.errors() for s in systems if s.web is not None}
            results.setdefault("server_errors", {})[str(n)] = {
                f"{name} {k}": v for name, e in errors.items() for k, v in e.items()
            }
            if n == min(opts.streams) and opts.burst:
                for system in systems:
                    if system.name == "myapp" and time.monotonic() < opts.deadline:
                        burst = burst_open(system, opts.burst)
                        results.setdefault("bursts", []).append(burst)
                        opts.log(
                            f"  N={n} {system.name}: {burst['burst']} more streams at once: "
                            f"{burst['opened']} opened, {burst['failed']} failed, "
                            f"{burst['redis_clients']} Redis clients"
                        )
    return results


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"
