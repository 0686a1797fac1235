"""The Markdown of the enqueue, worker, page, capacity, output and scale-out scenarios, and
their goals.

Each ``*_section`` returns the lines under its heading; each ``*_goals`` the
lines it adds to the "Goals" section (empty when the scenario did not run).
"""

from __future__ import annotations

import math

from bench import enqueue
from bench.report import fmt, median, spread


def _ms(s, digits: int = 1) -> str:
    return fmt(s, 1000, digits, " ms")


def _paired(runs: list[dict], a: str, b: str, key, **match) -> tuple | None:
    """``key(a) / key(b)`` over the repeats that ran both; min / median / max."""
    values = []
    for run in runs:
        if run["system"] != a or any(run[k] != v for k, v in match.items()):
            continue
        other = next(
            (
                o
                for o in runs
                if o["system"] == b
                and o["repeat"] == run["repeat"]
                and all(o[k] == v for k, v in match.items())
            ),
            None,
        )
        if other is not None and key(other):
            values.append(key(run) / key(other))
    return spread(values)


# -- job overhead (the batches of bench/jobs.py) -----------------------------------


def jobs_goals(res: dict) -> list[str]:
    by = {(r["batch"], r["repeat"]): r for r in res["runs"]}
    ratios = spread(
        by[("progress", k)]["jobs_per_s"] / by[("sleep", k)]["jobs_per_s"]
        for (b, k) in by
        if b == "sleep" and ("progress", k) in by
    )
    if not ratios:
        return []
    met = ratios[1] >= 0.95
    return [
        f"- **Job overhead, progress at 10 Hz: {'MET' if met else 'MISSED'}.** The `progress` "
        f"batch (10 × 0.1 s with a `progress.update` each; {res['jobs']} jobs on "
        f"{res['workers']} `python worker.py`, SQLite) ran at "
        f"{ratios[1]:.1%} of the jobs/s of the same jobs without progress (goal ≥ 95%; paired "
        f"repeats: {fmt(ratios, 100, 1, '%')})."
    ]


# -- enqueue path ----------------------------------------------------------------

ENQUEUE_SYSTEMS = {
    "rq": "bare `Queue.enqueue` of the same job in a loop (threads above 1 at a time): "
    "no HTTP, no database",
    "flask-rq": "a minimal Flask view around `Queue.enqueue` (`bench/enqueue_app.py`) on the "
    "same gunicorn: no user, no row, no event",
    "myapp-sqlite": "`POST /api/jobs` with a Bearer token, on SQLite",
    "myapp-postgres": "`POST /api/jobs` with a Bearer token, on PostgreSQL (a database "
    "created for the run)",
}


def enqueue_section(res: dict) -> list[str]:
    runs = res["runs"]
    if not runs:
        return ["Not run."]
    repeats = max(r["repeat"] for r in runs) + 1
    lines = [
        "The same job (`process_run`, 1 step of 0 s) enqueued by, side by side (each with its "
        "own Redis; nothing works the queues):",
        "",
    ]
    lines += [f"- **{name}**: {ENQUEUE_SYSTEMS[name]}" for name in res["systems"]]
    if res.get("postgres"):
        lines += ["", f"PostgreSQL server {res['postgres']}."]
    lines += [
        "",
        f"The load generator (`bench/loadgen.py`) keeps *c* keep-alive connections busy, one "
        f"request at a time each, for {runs[0]['requests']} requests a run; `myapp`'s "
        "`MAX_ACTIVE_JOBS_PER_USER` and `MAX_JOBS_PER_HOUR` are raised so that no request is "
        "refused. Latency is "
        "send → last byte of the answer. "
        f"{repeats} repeat(s), rotating the order; cells are min / **median** / max over them; "
        "*min* and *max latency* are over every request of every repeat.",
        "",
    ]
    for c in sorted({r["concurrency"] for r in runs}):
        mine = [r for r in runs if r["concurrency"] == c]
        lines += [
            f"### {c} at a time",
            "",
            "| system | requests/s | min latency | p50 latency | p99 latency | max latency "
            "| web CPU per request | Redis CPU per request | accepted |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name in res["systems"]:
            rs = [r for r in mine if r["system"] == name]
            if not rs:
                continue
            web = (
                "–"
                if name == "rq"
                else fmt(spread(r["web_cpu_per_request"] for r in rs), 1000, 2, " ms")
            )
            lines.append(
                f"| {name} | {fmt(spread(r['per_s'] for r in rs))} "
                f"| {min(r['latency']['min'] for r in rs) * 1000:.2f} ms "
                f"| {_ms(spread(r['latency']['p50'] for r in rs), 2)} "
                f"| {_ms(spread(r['latency']['p99'] for r in rs), 2)} "
                f"| {max(r['latency']['max'] for r in rs) * 1000:.1f} ms | {web} "
                f"| {fmt(spread(r['redis_cpu_per_request'] for r in rs), 1000, 2, ' ms')} "
                f"| {sum(r['accepted'] for r in rs):,} of {sum(r['requests'] for r in rs):,} |"
            )
        lines.append("")
        ratios = []
        for name in ("myapp-sqlite", "myapp-postgres"):
            for base in ("rq", "flask-rq"):
                per_s = _paired(mine, name, base, lambda r: r["per_s"])
                p50 = _paired(mine, name, base, lambda r: r["latency"]["p50"])
                if per_s and p50:
                    ratios.append(
                        f"{name} / {base}: {fmt(per_s, 1, 2, '×')} the requests/s, "
                        f"{fmt(p50, 1, 1, '×')} the p50 latency"
                    )
        if ratios:
            lines += ["Paired by repeat: " + "; ".join(ratios) + ".", ""]
    errors = res.get("server_errors") or {}
    if errors:
        noted = "; ".join(
            f"{name}: " + ", ".join(f"{k} × {v}" for k, v in e.items())
            for name, e in errors.items()
        )
        lines += [f"Exceptions in the web servers' logs: {noted}.", ""]
    lines += enqueue.album_section(res)
    lines += writes_section(res.get("writes") or [])
    return lines


def writes_section(writes: list[dict]) -> list[str]:
    if not writes:
        return []
    lines = [
        "### Database writes per job",
        "",
        "One `python worker.py` on the PostgreSQL database runs one job at a time, each "
        "calling `progress.update(done, total)` as fast as it can, or spread over a few "
        "seconds, so that every size runs about as long (`bench.jobbodies.updater`); "
        "a trigger the bench adds to `tracked_jobs` counts every INSERT and UPDATE of the job's "
        "row (the INSERT is the bench's, as `myapp.jobs.submit` writes it).",
        "",
        "| `progress.update` calls | spread over | UPDATEs of the job's row | INSERTs "
        "| job ran (started → ended) | status |",
        "|---|---|---|---|---|---|",
    ]
    for pace, n in sorted({(w.get("paced", 0.0), w["updates"]) for w in writes}):
        mine = [w for w in writes if w["updates"] == n and w.get("paced", 0.0) == pace]
        statuses = ", ".join(sorted({str(w["status"]) for w in mine}))
        lines.append(
            f"| {n:,} | {f'{pace:g} s' if pace else 'as fast as it can'} "
            f"| {fmt(spread(w['updates_written'] for w in mine))} "
            f"| {fmt(spread(w['inserts'] for w in mine))} "
            f"| {fmt(spread(w['job_seconds'] for w in mine), 1, 2, ' s')} | {statuses} |"
        )
    lines += [
        "",
        "myapp writes the row when the job starts, at its first update, when it ends, and at "
        "most once per `PROGRESS_DB_INTERVAL` (1 s) in between: the count follows the job's "
        "duration, not its number of updates.",
    ]
    return lines


def enqueue_goals(res: dict) -> list[str]:
    lines = []
    writes = res.get("writes") or []
    if writes:
        sizes = sorted({w["updates"] for w in writes})
        pace = max(w.get("paced", 0.0) for w in writes)  # the same duration for every size
        low = [w for w in writes if w["updates"] == sizes[0] and w.get("paced", 0.0) == pace]
        high = [w for w in writes if w["updates"] == sizes[-1] and w.get("paced", 0.0) == pace]
        most = max(w["updates_written"] for w in high)
        # Start, first update and end, plus one per PROGRESS_DB_INTERVAL (1 s) it ran.
        bound = max(3 + math.ceil(w["job_seconds"] or 0) for w in high)
        met = most <= bound and most <= max(w["updates_written"] for w in low) + 1
        lines.append(
            f"- **Database writes per job constant, not proportional to updates: "
            f"{'MET' if met else 'MISSED'}.** A job of {sizes[-1]:,} `progress.update` calls "
            f"over {pace:g} s wrote its row {most} times (UPDATEs; {sizes[0]:,} calls: "
            f"{max(w['updates_written'] for w in low)}), "
            f"{most / sizes[-1]:.4f} writes per update; the bound is 3 (start, first update, "
            f"end) + one per second the job ran: {bound}."
        )
    runs = res["runs"]
    parts = []
    for c in sorted({r["concurrency"] for r in runs}):
        mine = [r for r in runs if r["concurrency"] == c]
        for name in ("myapp-sqlite", "myapp-postgres"):
            per_s = _paired(mine, name, "rq", lambda r: r["per_s"])
            p99 = spread(r["latency"]["p99"] for r in mine if r["system"] == name)
            if per_s and p99:
                parts.append(
                    f"{name} at {c} at a time: {per_s[1]:.2f}× bare `Queue.enqueue`'s "
                    f"requests/s, p99 {p99[1] * 1000:.1f} ms"
                )
    if parts:
        lines.append(
            "- Enqueue path (no goal in the issue; for the record): " + "; ".join(parts) + "."
        )
    return lines


#: The sections after fan-out and job overhead, in the order of the document.
TITLES = {
    "workers": "Worker classes and Redis round trips",
    "enqueue": "Enqueue path",
    "page": "Latency to the page",
    "capacity": "Capacity",
    "output": "Output streams",
    "scaleout": "Scale-out over web processes",
}


# -- worker classes and round trips --------------------------------------------------

WORKER_KINDS = {
    "simple": "myapp's TrackingWorker on RQ's `SimpleWorker` model: each job in the worker's "
    "own process, no fork (`python -m bench.simple_worker`)",
    "worker": "`python worker.py`: myapp's TrackingWorker, RQ's forking `Worker` (a work "
    "horse per job)",
    "pool": "`rq worker-pool -n W -w myapp.worker.PoolWorker` (as docs/scaling.md starts it)",
    "rq": "bare RQ: `rq worker -S json bare` (RQ's forking `Worker`, the JSON serializer), "
    "plain functions (`bench/bare_bodies.py`) on a queue of its own, no myapp tracking; "
    "timed until its finished registry holds the batch",
}
WORKER_BATCHES = {
    "noop": "a job that does nothing",
    "10ms": "a 10 ms `time.sleep`, a short job",
    "none": "1 s of work in 10 steps, no progress",
    "10hz": "the same, with a `progress.update` at each step (10 Hz)",
    "flood": "1 s of `progress.update` calls as fast as the job can make them (unthrottled)",
}


def workers_section(res: dict) -> list[str]:
    runs = res["runs"]
    if not runs:
        return ["Not run."]
    kinds = [k for k in WORKER_KINDS if any(r["kind"] == k for r in runs)]
    repeats = max(r["repeat"] for r in runs) + 1
    lines = [
        f"{res['workers']} workers of each kind, one kind after the other, each on a Redis of "
        f"its own and the run's SQLite file; {res['jobs']} jobs per batch, made as in the job "
        "overhead above; a batch runs from its first enqueue until every row is terminal. "
        f"Cells are min / **median** / max over {repeats} repeat(s) (the order of the batches "
        "rotates).",
        "",
    ]
    lines += [f"- **{k}**: {WORKER_KINDS[k]}" for k in kinds]
    lines += [""]
    lines += [f"- `{b}`: {text}" for b, text in WORKER_BATCHES.items()]
    lines += [
        "",
        "| worker | batch | jobs/s | worker CPU per job | Redis CPU per job "
        "| `progress.update` calls per job | Redis round trips per job |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        for batch in WORKER_BATCHES:
            rs = [r for r in runs if r["kind"] == kind and r["batch"] == batch]
            if not rs:
                continue
            counted = batch in ("10hz", "flood")
            calls = fmt(spread(r["calls_per_job"] for r in rs)) if counted else "–"
            trips = (
                fmt(spread(r["sent_per_job"].get("round trips") for r in rs), 1, 1)
                if counted
                else "–"
            )
            lines.append(
                f"| {kind} | {batch} | {fmt(spread(r['jobs_per_s'] for r in rs), 1, 1)} "
                f"| {fmt(spread(r['worker_cpu_per_job'] for r in rs), 1000, 1, ' ms')} "
                f"| {fmt(spread(r['redis_cpu_per_job'] for r in rs), 1000, 2, ' ms')} "
                f"| {calls} | {trips} |"
            )
    lines += _bare_ratios(runs)
    lines += ["", "With progress / without (jobs/s, paired by repeat):", ""]
    for kind in kinds:
        mine = [r for r in runs if r["kind"] == kind]
        if not any(r["batch"] == "none" for r in mine):
            continue
        ten = _paired_batches(mine, "10hz", "none")
        flood = _paired_batches(mine, "flood", "none")
        lines.append(
            f"- {kind}: at 10 Hz {fmt(ten, 100, 1, '%')}; unthrottled {fmt(flood, 100, 1, '%')}"
        )
    lines += [
        "",
        "What the `progress.update` calls send to Redis (medians over the runs; counted in "
        "the process that runs the job, by `bench/roundtrips.py`, which wraps redis-py's "
        "connection: one round trip per `send_packed_command`, a pipeline being one; the "
        "sends of the progress reporter's thread included):",
        "",
        "| worker | batch | calls per job | round trips per job | round trips per call "
        "| round trips per published update (cancel checks aside) | commands per job, by name |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        for batch in ("10hz", "flood"):
            rs = [r for r in runs if r["kind"] == kind and r["batch"] == batch and r["per_call"]]
            if not rs:
                continue
            names = sorted({k for r in rs for k in r["sent_per_job"] if k != "round trips"})
            per = {k: median(r["sent_per_job"].get(k, 0.0) for r in rs) for k in names}
            listed = ", ".join(
                f"{k} {v:.1f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])
            )
            published = median(
                (r["sent_per_job"]["round trips"] - r["sent_per_job"].get("EXISTS", 0))
                / r["sent_per_job"]["EVAL"]
                for r in rs
                if r["sent_per_job"].get("EVAL")
            )
            lines.append(
                f"| {kind} | {batch} | {median(r['calls_per_job'] for r in rs):,.0f} "
                f"| {median(r['sent_per_job']['round trips'] for r in rs):.1f} "
                f"| {median(r['per_call']['round trips'] for r in rs):.2g} "
                f"| {'–' if published is None else f'{published:.2f}'} | {listed} |"
            )
    lines += [
        "",
        "At 10 Hz every call is sent: `emit` pipelines the `meta` HSET and the event's EVAL "
        "(XADD, HSET, PUBLISH in Lua) into one round trip; the cancel check (EXISTS, at most "
        "every 0.5 s) and the database write (once a second) come on top. Unthrottled, most "
        "calls only update the job's `meta` in memory: at most `PROGRESS_MAX_RATE` (10) a "
        "second are sent.",
    ]
    return lines


def _against_bare(runs: list[dict], batch: str, key: str) -> tuple | None:
    """myapp's ``worker`` / bare ``rq`` on ``batch``, paired by repeat."""
    by = {(r["kind"], r["batch"], r["repeat"]): r[key] for r in runs}
    return spread(
        by[("worker", batch, k)] / by[("rq", batch, k)]
        for (kind, b, k) in by
        if kind == "rq" and b == batch and ("worker", batch, k) in by and by[("rq", batch, k)]
    )


def _bare_ratios(runs: list[dict]) -> list[str]:
    lines = []
    for batch in ("noop", "10ms"):
        jobs_s = _against_bare(runs, batch, "jobs_per_s")
        cpu = _against_bare(runs, batch, "worker_cpu_per_job")
        if jobs_s is None:
            continue
        if not lines:
            lines = [
                "",
                "myapp's `worker` / bare `rq` (paired by repeat; both forking `Worker`s, the "
                "same count; a bare batch lasts a fraction of a second, so its jobs/s is coarse "
                "(the batch is polled every 50 ms) and the worker CPU per job is the steadier "
                "figure):",
                "",
            ]
        lines.append(
            f"- `{batch}`: jobs/s {fmt(jobs_s, 100, 1, '%')}; worker CPU per job "
            f"{fmt(cpu, 1, 2, '×')}"
        )
    return lines


def _paired_batches(runs: list[dict], a: str, b: str) -> tuple | None:
    by = {(r["batch"], r["repeat"]): r for r in runs}
    return spread(
        by[(a, k)]["jobs_per_s"] / by[(b, k)]["jobs_per_s"]
        for (batch, k) in by
        if batch == b and (a, k) in by and by[(b, k)]["jobs_per_s"]
    )


def workers_goals(res: dict) -> list[str]:
    runs = res["runs"]
    parts, met = [], True
    for kind in WORKER_KINDS:
        mine = [r for r in runs if r["kind"] == kind]
        ten = _paired_batches(mine, "10hz", "none")
        if ten is None:
            continue
        met = met and ten[1] >= 0.95
        trips = median(r["per_call"].get("round trips") for r in mine if r["batch"] == "10hz")
        parts.append(
            f"{kind} {ten[1]:.1%}"
            + (f" ({trips:.2f} round trips per update)" if trips is not None else "")
        )
    lines = []
    if parts:
        lines.append(
            f"- **Job overhead at 10 Hz on every worker class: {'MET' if met else 'MISSED'}.** "
            "jobs/s with progress at 10 Hz against the same 1 s jobs without (medians of the "
            f"paired repeats; goal ≥ 95%): {'; '.join(parts)}. Aim, one pipelined round trip "
            "per update: see the Redis round-trip table."
        )
    bare = []
    for batch in ("noop", "10ms"):
        ratio = _against_bare(runs, batch, "jobs_per_s")
        if ratio is None:
            continue
        rs = {
            k: [r for r in runs if r["kind"] == k and r["batch"] == batch] for k in ("worker", "rq")
        }
        jobs_s = {k: median(r["jobs_per_s"] for r in v) for k, v in rs.items()}
        cpu = {k: median(r["worker_cpu_per_job"] for r in v) for k, v in rs.items()}
        bare.append(
            (
                ratio[1] >= 0.8,
                f"`{batch}` {jobs_s['worker']:.1f} vs {jobs_s['rq']:.1f} jobs/s ({ratio[1]:.0%}), "
                f"worker CPU per job {cpu['worker'] * 1000:.1f} vs {cpu['rq'] * 1000:.1f} ms",
            )
        )
    if bare:
        ok = all(m for m, _ in bare)
        lines.append(
            f"- **Short jobs against bare RQ (issue #18; goal: myapp's `worker` at ≥ 80% of bare "
            f"RQ's jobs/s): {'MET' if ok else 'MISSED'}.** myapp vs bare, medians: "
            + "; ".join(text for _, text in bare)
            + "."
        )
    return lines


# -- latency to the page -------------------------------------------------------------


def _pooled(res: dict, page: str) -> dict:
    from bench.fanout import percentiles

    values = [v for r in res["runs"] for v in r[page]["values"]]
    return percentiles(values)


def page_section(res: dict) -> list[str]:
    runs = res["runs"]
    if not runs:
        return ["Not run."]
    lines = [
        f"Chromium {res.get('chromium', '?')}. "
        f"{res['jobs']} jobs at a time (`bench.jobbodies.stamped`, on {res['jobs']} `python "
        f"worker.py`), each reporting {res['steps']} updates {res['interval']:g} s apart with "
        "its `time.time()` as the message; one headless Chromium (Debian's `chromium`, "
        "driven by Playwright as the tests drive it) holds both pages of the same user, "
        "watching the same jobs:",
        "",
        "- **myapp**: the real page (`/`, signed in through its form), live over SSE;",
        f"- **polling**: a tiny page served by the bench at the same origin, which fetches "
        f"`GET /api/jobs/<id>` every {res['poll_ms']} ms per job, as celery-progress does.",
        "",
        "A MutationObserver injected by the bench (not part of the app) stamps each change "
        "of a bar's `aria-valuenow` with `performance.timeOrigin + performance.now()` and reads "
        "the message beside it; latency is that stamp minus the update's `time.time()` (same "
        "machine, same clock), once per update shown. The polling page reads the database, "
        "where myapp records progress at most once per `PROGRESS_DB_INTERVAL` (1 s): it shows "
        "fewer of the updates.",
        "",
        f"Per run (min / **median** / max over {len(runs)} run(s)), then every update of every "
        "run pooled:",
        "",
        "| page | updates shown (of each run's) | p50 | p99 | max | pooled p50 | pooled p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for page in ("myapp", "polling"):
        pooled = _pooled(res, page)
        lines.append(
            f"| {page} | {fmt(spread(r[page]['shown'] for r in runs))} of {runs[0]['updates']} "
            f"| {_ms(spread(r[page]['p50'] for r in runs))} "
            f"| {_ms(spread(r[page]['p99'] for r in runs))} "
            f"| {_ms(spread(r[page]['max'] for r in runs))} "
            f"| {_ms(pooled['p50'])} | {_ms(pooled['p99'])} |"
        )
    return lines


def page_goals(res: dict) -> list[str]:
    if not res["runs"]:
        return []
    mine, poll = _pooled(res, "myapp"), _pooled(res, "polling")
    if mine["p99"] is None or poll["p99"] is None:
        return ["- Page latency: not judged (no update reached one of the pages)."]
    ratio = poll["p99"] / mine["p99"]
    under, better = mine["p99"] < 0.100, ratio >= 5
    return [
        f"- **Page latency: {'MET' if under and better else 'MISSED'}.** From "
        f"`progress.update` to the bar in Chromium, myapp's p99 is {mine['p99'] * 1000:.1f} ms "
        f"({'under' if under else 'over'} 100 ms; p50 {mine['p50'] * 1000:.1f} ms) and "
        f"{ratio:.1f}× better than the 500 ms polling page's p99 of "
        f"{poll['p99'] * 1000:.0f} ms (goal ≥ 5×: {'met' if better else 'missed'}); "
        f"{mine['n']} and {poll['n']} updates shown, pooled over the runs."
    ]


# -- capacity -----------------------------------------------------------------------

#: The goal's "32 KB per stream", read as KiB.
MEMORY_GOAL = 32 * 1024


def _per_stream(step: dict) -> dict:
    n = max(step["open"], 1)
    d = step["delta"]
    kernel = (d["tcp_mem"] + d["slab"]) / 2
    return {
        "web": d["web_rss"] / n,
        "redis": d["redis_used"] / n,
        "kernel": kernel / n,
        "total": (d["web_rss"] + d["redis_used"] + kernel) / n,
    }


def capacity_section(res: dict) -> list[str]:
    steps = res["steps"]
    if not steps:
        return ["Not run."]
    p = res["probe"]
    lines = [
        "Idle myapp streams opened in steps on one gunicorn gevent worker process (its own "
        "Redis and SQLite file, 10 users without jobs, so the snapshots are empty; "
        "`MAX_STREAMS_PER_USER` raised), by `bench/clients.py` processes spread over the "
        f"source addresses {res['sources'][0]}–{res['sources'][-1]}; nothing is published "
        "(snapshots and heartbeats only). At each step `GET /healthz` is sent at "
        f"{p['rate']:g} requests/s over {p['connections']} keep-alive connections for "
        f"{p['seconds']:g} s (`bench/loadgen.py`; `wrk` is not installed), "
        f"{p.get('probes', 2)} time(s); cells are "
        "min / **median** / max over the probes. Memory is what the step holds more than "
        "before any stream, per open stream: web RSS, Redis `used_memory`, and the kernel's "
        "(`/proc/net/sockstat` TCP memory plus `/proc/meminfo` Slab, machine-wide, for both "
        "ends of each loopback socket, halved for the server's end: other people's processes "
        "move it too).",
        "",
        "- **myapp**: `/stream` with a Bearer token (snapshot, then heartbeats every "
        "`STREAM_HEARTBEAT_SECONDS`, 15 s, when the process also renews all its streams' "
        "leases in Redis in one round trip);",
        "- **myapp-quiet**: the same with `STREAM_HEARTBEAT_SECONDS` 600: what the heartbeats "
        "and their lease renewals cost, at the largest step only;",
        "- **floor**: `bench/idle_app.py`, a bare Flask SSE view on the same gunicorn gevent "
        "worker (one event, then a comment every 15 s; no user, Redis or database): the least "
        "a stream holds on this stack, ramped to the largest step only;",
        f"- **myapp ×{res.get('host_processes', '–')}**: myapp on `gunicorn --workers "
        f"{res.get('host_processes', '–')}` (one listening socket; `--worker-connections "
        f"{res.get('host_connections', 0):,}` each, so that no process reaches the file "
        "limit of 20,000, the hard limit here), the clients opening theirs that many at a "
        "time: the host's capacity; **floor ×P**, the floor on as many processes: what a "
        "host this busy costs any server.",
        "",
        "| system | streams open | failed | time to open | /healthz p50 | p99 | max | web cores "
        "| web RSS / stream | Redis / stream | kernel / stream | total / stream "
        "| machine's busy cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("myapp", s) for s in steps]
    rows += [("myapp-quiet", s) for s in res.get("quiet", [])]
    rows += [("floor", s) for s in res.get("floor", [])]
    rows += [(f"myapp ×{res.get('host_processes')}", s) for s in res.get("host", [])]
    rows += [(f"floor ×{res.get('host_processes')}", s) for s in res.get("floor_host", [])]
    for name, step in rows:
        pr = step["probes"]
        per = _per_stream(step) if step["open"] else None
        busy = fmt(spread(x["host_cores"] for x in pr), 1, 2) if "host_cores" in pr[0] else "–"
        mem = (
            " | ".join(f"{per[k] / 1024:.1f} KiB" for k in ("web", "redis", "kernel", "total"))
            if per
            else "– | – | – | –"
        )
        lines.append(
            f"| {name} | {step['open']:,} | {step['failed']} | {step['open_seconds']:.0f} s "
            f"| {_ms(spread(x['p50'] for x in pr), 2)} | {_ms(spread(x['p99'] for x in pr), 2)} "
            f"| {_ms(spread(x['max'] for x in pr), 1)} "
            f"| {fmt(spread(x['web_cores'] for x in pr), 1, 2)} | {mem} "
            f"| {busy} |"
        )
    top = max(res.get("host", []), key=lambda step: step["n"], default=None)
    if top and top.get("open_files"):
        files = top["open_files"]
        lines += [
            "",
            f"At {top['open']:,} streams, the {len(files)} web processes held "
            f"{min(files):,} to {max(files):,} open files each.",
        ]
    errors = res.get("server_errors") or {}
    lines += _exceptions(errors, "web server's log")
    lines += _exceptions(res.get("host_errors") or {}, "host's web servers' log")
    return lines


def _ramp_top(steps: list[dict]) -> dict | None:
    """A ramp's largest step against its 0-stream step: medians over the probes."""
    base = next((s for s in steps if s["n"] == 0), None)
    top = max((s for s in steps if s["n"]), key=lambda s: s["n"], default=None)
    if base is None or top is None or not top["open"]:
        return None
    p99, base_p99 = (median(x["p99"] for x in step["probes"]) for step in (top, base))
    per = _per_stream(top)
    found = {
        "top": top, "base": base, "p99": p99, "base_p99": base_p99, "ratio": p99 / base_p99,
        "per": per, "cores": median(x["web_cores"] for x in top["probes"]),
    }  # fmt: skip
    found["met"] = top["open"] >= top["n"] and found["ratio"] <= 2 and per["total"] <= MEMORY_GOAL
    return found


def _goal_figures(r: dict) -> str:
    """p99 against its baseline and memory per stream, with whether each goal is met."""
    fast, small = r["ratio"] <= 2, r["per"]["total"] <= MEMORY_GOAL
    per = r["per"]
    return (
        f"`/healthz` p99 {r['p99'] * 1000:.1f} ms, {r['ratio']:.1f}× the no-stream baseline's "
        f"{r['base_p99'] * 1000:.1f} ms (goal ≤ 2×: {'met' if fast else 'missed'}), "
        f"{r['cores']:.2f} web cores; {per['total'] / 1024:.1f} KiB per stream in all "
        f"(web RSS {per['web'] / 1024:.1f}, Redis {per['redis'] / 1024:.1f}, kernel "
        f"{per['kernel'] / 1024:.1f}; goal ≤ 32 KiB: {'met' if small else 'missed'})"
    )


def _comparison(r: dict | None, what: str) -> str | None:
    if r is None:
        return None
    return (
        f"{what}: {r['per']['total'] / 1024:.1f} KiB per stream at {r['top']['open']:,} "
        f"streams, p99 {r['ratio']:.1f}× its own baseline, {r['cores']:.2f} web cores"
    )


def capacity_goals(res: dict) -> list[str]:
    lines = host_goal(res)
    one = _ramp_top(res["steps"])
    if one is None:
        return lines
    notes = [
        note
        for note in (
            _comparison(_ramp_top(res.get("quiet", [])), "myapp with heartbeats every 600 s "
                        "instead of 15 s"),
            _comparison(_ramp_top(res.get("floor", [])), "the floor, a bare Flask SSE view on "
                        "the same server"),
        )
        if note
    ]  # fmt: skip
    floor_note = (" For comparison, " + "; ".join(notes) + ".") if notes else ""
    top = one["top"]
    return lines + [
        f"- **{top['n']:,} idle streams on one 2-core host: {'MET' if one['met'] else 'MISSED'}"
        f".** {top['open']:,} of {top['n']:,} streams open on one web process; "
        f"{_goal_figures(one)}.{floor_note}"
    ]


def host_goal(res: dict) -> list[str]:
    host = _ramp_top(res.get("host", []))
    if host is None:
        return []
    top, base, processes = host["top"], host["base"], res["host_processes"]
    files = top.get("open_files") or [0]
    busy = median(x["host_cores"] for x in top["probes"])
    floor = _comparison(_ramp_top(res.get("floor_host", [])), "the floor on as many processes")
    return [
        f"- **{top['n']:,} idle streams on this 2-core host, over {processes} web processes "
        f"(issue #18): {'MET' if host['met'] else 'MISSED'}.** {top['open']:,} of "
        f"{top['n']:,} open ({min(files):,}–{max(files):,} open files per process); "
        f"{_goal_figures(host)}, on top of {base['memory']['web_rss'] / processes / 2**20:.0f} "
        f"MiB of RSS per web process before any stream; the machine's 2 cores "
        f"{busy:.2f} busy." + (f" For comparison, {floor}." if floor else "")
    ]


# -- output streams ------------------------------------------------------------------


def _cores(run: dict) -> str:
    span = run["span_seconds"]
    parts = ("web", "redis", "workers", "client", "publisher")
    return " / ".join(f"{run['cpu'][k] / span:.2f}" if k in run["cpu"] else "–" for k in parts)


def _writes_bound(seconds: float, interval: float) -> int:
    """The most UPDATEs of a job's row while it writes output for ``seconds``: its start,
    a save of the output at its first event and then at most one per
    ``PROGRESS_DB_INTERVAL``, the whole output at the end, and its end."""
    return 4 + math.floor(seconds / interval)


def _writes_rows(res: dict) -> list[tuple[float, float, list[dict], list[int], list[float]]]:
    """(tokens/s, seconds, writes, tokens, job seconds) per batch: the delivery run's jobs
    and each rate of the writes check."""
    rows = []
    mine = next((r for r in res["runs"] if r["system"] == "myapp"), None)
    if mine and mine.get("writes"):
        rows.append(
            (
                res["rate"],
                res["seconds"],
                mine["writes"],
                mine["tokens_per_job"],
                mine["job_seconds"],
            )
        )
    for w in res.get("writes", []):
        rows.append((w["rate"], w["seconds"], w["writes"], w["tokens"], w["job_seconds"]))
    return rows


def output_section(res: dict) -> list[str]:
    runs = {r["system"]: r for r in res["runs"]}
    mine = runs.get("myapp")
    if mine is None:
        return ["Not run."]
    config = res["config"]
    per_user = res["streams"] // res["users"]
    lines = [
        f"{res['jobs']} jobs (`bench.jobbodies.streamer`), each calling `progress.output` "
        f"{res['rate']:g} times a second for {res['seconds']:g} s with a token "
        "`t=<time.time()>` (20 characters, the time of the call), on `rq worker-pool -n "
        f"{res['workers']} -w myapp.worker.PoolWorker` (a forked work horse per job), myapp's "
        "gunicorn (one gevent worker process), its own Redis and the run's SQLite file; "
        f"{res['streams']:,} streams (`/stream`, {res['users']} users, {per_user:,} streams and "
        f"{res['jobs'] // res['users']} jobs each) watch. A job's tokens go out as "
        f"`event: output` at most `PROGRESS_MAX_RATE` ({config['PROGRESS_MAX_RATE']:g}) times a "
        "second, each event with every token since the one before. One run of each system:",
        "",
        "- **myapp**: as above; every stream counts its `event: output` arrivals, and every "
        f"{res['sample']}th stream of each user reads each token's stamp on arrival (the "
        "clients cannot parse every token of every stream and keep up): latency is that "
        "moment minus the stamp, the wait for the next event of the job included "
        f"(up to {1000 / config['PROGRESS_MAX_RATE']:.0f} ms by design);",
        "- **bare**: the same tokens at the same rates, batched the same way "
        "(`bench/tokens.py`, one process playing every job), PUBLISHed on a Redis of its own "
        "to as many raw RESP subscribers: no Lua, no event log, no web process — the floor of "
        "the delivery.",
        "",
        "| system | jobs writing at once | tokens/s per job | output events/s published "
        "| delivered events/s | delivered by end of drain | token p50 | p99 | max "
        "| token → Redis p50 / p99 | stamps read | cores: web / Redis / workers / clients "
        "/ publisher | streams dropped |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("myapp", "bare"):
        run = runs.get(name)
        if run is None:
            continue
        lat, to_redis = run["latency"], run.get("to_redis")
        before = f"{_ms(to_redis['p50'])} / {_ms(to_redis['p99'])}" if to_redis else "–"
        at_once = f"{run['at_once']} of {res['jobs']}" if name == "myapp" else f"{res['jobs']}"
        rate = (
            fmt(spread(run["tokens_per_s_per_job"]), 1, 0)
            if name == "myapp"
            else f"{run['tokens'] / res['jobs'] / run['writing_seconds']:.0f}"
        )
        lines.append(
            f"| {name} | {at_once} | {rate} | {run['published_per_s']:,.0f} "
            f"| {run['delivered_per_s']:,.0f} | {run['delivered_fraction']:.0%} "
            f"| {_ms(lat['p50'])} | {_ms(lat['p99'])} | {_ms(lat['max'])} | {before} "
            f"| {run['stamps']:,} | {_cores(run)} | {run['closed']} |"
        )
    bare = runs.get("bare")
    lines += [
        "",
        "*Output events/s published*: `event: output` entries in the users' event logs over "
        "the time from the first job's first token to the last job's last; *delivered*: the "
        "events the streams received by the time every job had ended, over the same start "
        "(one event to one stream counts once); *delivered by end of drain*: received up to "
        "a few seconds later, of what was published times the streams of its user. *Token → "
        "Redis*: from each token's stamp to its event's entry in the event log (the Redis "
        "clock of the XADD), over every token published: the part of the latency spent in "
        "the job's process, before the web process and the streams. *Cores*: "
        "CPU seconds per second (from /proc) over the whole run (the workers with their work "
        "horses).",
    ]
    if bare and bare["latency"]["p99"] and mine["latency"]["p99"]:
        lines += [
            "",
            f"myapp / bare: {mine['latency']['p99'] / bare['latency']['p99']:.1f}× the p99, "
            f"{mine['latency']['p50'] / bare['latency']['p50']:.1f}× the p50, "
            f"{mine['delivered_per_s'] / bare['delivered_per_s']:.2f}× the delivered events/s.",
        ]
    to_redis = mine.get("to_redis") or {}
    if to_redis.get("p99") and mine["latency"]["p99"]:
        share = to_redis["p99"] / mine["latency"]["p99"]
        where = (
            "most of it is spent before Redis had the token, in the jobs' processes"
            if share >= 0.5
            else "most of it is spent after Redis had the token, in the delivery"
        )
        lines += [
            "",
            f"Of myapp's token p99 ({mine['latency']['p99'] * 1000:,.0f} ms), "
            f"{to_redis['p99'] * 1000:,.0f} ms is the p99 from the stamp to the event log: "
            f"{where}.",
        ]
    if mine.get("repeated"):
        lines += [
            "",
            f"{mine['repeated']:,} of myapp's {mine['published']:,} output events repeat an "
            "offset of their job already logged (the same text sent twice); the page skips "
            "what it has.",
        ]
    errors = mine.get("server_errors") or {}
    lines += _exceptions(errors, "web server's log")
    lines += ["", *_writes_table(res), "", *_panels_table(res)]
    return lines


def _writes_table(res: dict) -> list[str]:
    rows = _writes_rows(res)
    if not rows:
        return []
    interval = res["config"]["PROGRESS_DB_INTERVAL"]
    lines = [
        "### Database writes per job",
        "",
        "Triggers the bench adds to the SQLite file count every INSERT and UPDATE of a job's "
        "row (the INSERT is the bench's, as `myapp.jobs.submit` writes it), for the jobs "
        "above and for jobs at other token rates over the same seconds (all at once, no "
        "streams):",
        "",
        "| tokens/s per job | for | tokens per job | UPDATEs of the job's row "
        "| of them saving output | INSERTs | job wrote for |",
        "|---|---|---|---|---|---|---|",
    ]
    for rate, seconds, writes, tokens, job_seconds in rows:
        lines.append(
            f"| {rate:,g} | {seconds:g} s | {fmt(spread(tokens))} "
            f"| {fmt(spread(w['updates'] for w in writes))} "
            f"| {fmt(spread(w['output_updates'] for w in writes))} "
            f"| {fmt(spread(w['inserts'] for w in writes))} "
            f"| {fmt(spread(job_seconds), 1, 2, ' s')} |"
        )
    lines += [
        "",
        "myapp writes the row when the job starts, saves the output with its first event and "
        f"then at most once per `PROGRESS_DB_INTERVAL` ({interval:g} s) while tokens come, "
        "then the whole output, and the end: at most 4 + ⌊seconds / "
        f"{interval:g}⌋ UPDATEs, whatever the number of tokens.",
    ]
    return lines


def _panels_table(res: dict) -> list[str]:
    panels = res.get("panels")
    if not panels:
        return []
    per, row = panels["per_panel"], panels["per_row"]
    return [
        "### Memory per open output panel",
        "",
        f"Chromium {panels.get('chromium', '?')} (headless, driven by Playwright as the page "
        "tests drive it) shows the real page of one user, signed in through its form, live "
        f"over SSE. {panels['panels']} jobs without output end (their rows), then "
        f"{panels['panels']} jobs each write {panels['bytes']:,} characters into their output "
        f"panels ({panels['token']}-character lines at 200 a second), until every panel holds "
        "them all. After each step the bench forces a full GC (CDP "
        "`HeapProfiler.collectGarbage`) and reads the JS heap (`Runtime.getHeapUsage`), the "
        "DOM nodes (`Memory.getDOMCounters`) and the RSS of Chromium's renderer processes; "
        "per panel is the panels' step minus the rows' step, divided by the panels. The "
        "page keeps each job's text once in its store and once in the panel's text nodes, "
        "which live outside the JS heap (in the renderer's RSS).",
        "",
        "| per | JS heap | DOM nodes | renderer RSS |",
        "|---|---|---|---|",
        f"| output panel of {panels['bytes']:,} characters | {per['js_heap'] / 1024:,.1f} KiB "
        f"| {per['nodes']:,.0f} | {per['renderer_rss'] / 1024:,.0f} KiB |",
        f"| job row without output | {row['js_heap'] / 1024:,.1f} KiB | {row['nodes']:,.0f} "
        f"| {row['renderer_rss'] / 1024:,.0f} KiB |",
    ]


def output_goals(res: dict) -> list[str]:
    runs = {r["system"]: r for r in res["runs"]}
    mine = runs.get("myapp")
    if mine is None:
        return []
    lat, bare = mine["latency"], runs.get("bare")
    target = f"{res['jobs']} jobs × {res['rate']:g} tokens/s, {res['streams']:,} streams"
    rate = median(mine["tokens_per_s_per_job"])
    ran = f"{mine['at_once']} of {res['jobs']} at once, {rate or 0:.0f} tokens/s per job"
    if mine["at_once"] < res["jobs"] or (rate or 0) < 0.95 * res["rate"]:
        span = mine["span_seconds"]
        ran += (
            " (short of the target: the machine's 2 cores were busy with "
            + ", ".join(f"{k} {v / span:.2f}" for k, v in mine["cpu"].items())
            + " cores)"
        )
    vs = ""
    if bare and bare["latency"]["p99"] and lat["p99"]:
        vs = (
            f"; bare Redis with the same tokens batched the same way: p50 "
            f"{bare['latency']['p50'] * 1000:.1f} ms, p99 {bare['latency']['p99'] * 1000:.1f} ms "
            f"(myapp {lat['p99'] / bare['latency']['p99']:.1f}× its p99)"
        )
    p50 = "–" if lat["p50"] is None else f"{lat['p50'] * 1000:,.1f} ms"
    p99 = "–" if lat["p99"] is None else f"{lat['p99'] * 1000:,.1f} ms"
    if (mine.get("to_redis") or {}).get("p99") is not None:
        p99 += f" ({mine['to_redis']['p99'] * 1000:,.1f} ms of it before Redis had the token)"
    lines = [
        f"- **Output streams, {target} (issue #17; no goal, for the record):** {ran}: "
        f"{mine['published_per_s']:,.0f} output events/s published, "
        f"{mine['delivered_per_s']:,.0f} delivered/s to the streams "
        f"({mine['delivered_fraction']:.0%} delivered by the end of the drain, "
        f"{mine['closed']} streams dropped); from `progress.output` to the client, token "
        f"p50 {p50}, p99 {p99}{vs}."
    ]
    rows = _writes_rows(res)
    if rows:
        interval = res["config"]["PROGRESS_DB_INTERVAL"]
        by_seconds: dict[float, list] = {}
        for rate_, seconds, writes, tokens, _ in rows:
            by_seconds.setdefault(seconds, []).append((rate_, writes, tokens))
        parts, met = [], True
        for seconds, batches in sorted(by_seconds.items()):
            most = max(w["updates"] for _, writes, _ in batches for w in writes)
            counts = {median([w["updates"] for w in writes]) for _, writes, _ in batches}
            met = met and most <= _writes_bound(seconds, interval)
            met = met and (len(batches) < 2 or max(counts) - min(counts) <= 1)
            parts.append(
                f"over {seconds:g} s, "
                + ", ".join(
                    f"{median(tokens) or 0:,.0f} tokens: {median([w['updates'] for w in writes]):g}"
                    for _, writes, tokens in sorted(batches)
                )
                + f" (bound {_writes_bound(seconds, interval)})"
            )
        lines.append(
            "- **Database writes per output job constant, not proportional to tokens: "
            f"{'MET' if met else 'MISSED'}.** UPDATEs of a job's row (medians): "
            + "; ".join(parts)
            + "; the bound is 4 (start, first event, whole output, end) + one per "
            f"`PROGRESS_DB_INTERVAL` ({interval:g} s) the job wrote."
        )
    panels = res.get("panels")
    if panels:
        per = panels["per_panel"]
        lines.append(
            f"- Memory per open output panel (no goal, for the record): a panel holding "
            f"{panels['bytes']:,} characters adds {per['js_heap'] / 1024:,.1f} KiB of JS heap "
            f"({per['js_heap'] / panels['bytes']:.2f} bytes per character), "
            f"{per['nodes']:,.0f} DOM nodes and {per['renderer_rss'] / 1024:,.0f} KiB of "
            "renderer RSS in Chromium."
        )
    return lines


# -- scale-out over web processes ----------------------------------------------------


def _scale_rows(res: dict) -> list[dict]:
    """Per P, its runs pooled: sums over the repeats, medians of the latencies."""
    rows = []
    for entry in res["per_p"]:
        runs = entry["runs"]
        if not runs:
            continue
        received = sum(r["received"] for r in runs)
        published = sum(r["published"] for r in runs)
        seconds = sum(r["window_seconds"] + r["drain_seconds"] for r in runs)
        held = entry["streams_per_process"]
        total = sum(held.values()) or 1
        per_process = []
        for pid in sorted(held, key=lambda k: -held[k]):
            cpu = sum(r["process_cpu"].get(pid, 0.0) for r in runs)
            delivered = received * held[pid] / total
            per_process.append((held[pid], cpu / delivered if delivered else None))
        rows.append(
            {
                "p": entry["p"],
                "held": sorted(held.values(), reverse=True),
                "subs": sorted(entry["subscriptions"], reverse=True),
                "delivered_per_s": median([r["delivered_per_s"] for r in runs]),
                "fraction": received / max(sum(r["expected"] for r in runs), 1),
                "p50": median([r["latency"]["p50"] for r in runs]),
                "p99": median([r["latency"]["p99"] for r in runs]),
                "web_cores": sum(r["cpu"]["web"] for r in runs) / seconds,
                "web_per_event": sum(r["cpu"]["web"] for r in runs) / max(received, 1),
                "per_process": per_process,
                "busiest": per_process[0][1] if per_process else None,
                "redis_per_event": sum(r["cpu"]["redis"] for r in runs) / max(received, 1),
                "out_per_s": sum(r["redis_output"] for r in runs) / seconds,
                "out_per_event": sum(r["redis_output"] for r in runs) / max(published, 1),
                "closed": sum(r["closed"] for r in runs),
                "repeats": len(runs),
            }
        )
    return rows


def _scale_ratio(rows: list[dict], key: str, p: int) -> str:
    base = next((r for r in rows if r["p"] == 1), None)
    other = next((r for r in rows if r["p"] == p), None)
    if not base or not other or not base[key]:
        return "–"
    return f"{other[key] / base[key]:.2f}×"


def scaleout_section(res: dict) -> list[str]:
    rows = _scale_rows(res)
    lines = [
        f"myapp's fan-out (as in Fan-out above: `/stream` with a Bearer token, events published "
        f"with `event_log.append`) on `gunicorn --workers P`, P = "
        f"{', '.join(str(e['p']) for e in res['per_p'])}: {res['users']:,} users with one "
        f"stream each, {res['rate']:,.0f} events/s round-robin over the users for "
        f"{res['duration']:g} s, {res['repeats']} repeat(s) per P; each P with a fresh Redis "
        "and web server, the same streams and the same events. With one stream per user every "
        "event is for one process, whichever P: a hub subscribed to its own users' channels "
        "only should keep each process's CPU per delivered event and Redis's output per event "
        "flat as processes are added.",
        "",
        "- *streams per process*: each worker's `open_streams` in its `myapp:metrics:web:*` "
        "hash; the workers share one listening socket and the kernel spreads the connections "
        "(unevenly). *subscriptions*: `CLIENT LIST`'s `sub` of each pub/sub connection (its "
        "users' channels plus the hub's own).",
        "- *web CPU*: utime + stime of the arbiter and its workers over the publishing window "
        "and the drain, per event received; *per process*: each worker's CPU over the whole "
        "run divided by the events its streams received (the events received times its share "
        "of the streams), busiest process first.",
        "- *Redis output*: the change of `INFO stats` `total_net_output_bytes` over the run "
        "(publisher's replies included, the bench's two `INFO` calls subtracted), per second "
        "of window and drain and per published event. Per event that is one pub/sub "
        "message (the event's JSON with its log id, on the channel of its user) to the one "
        "process holding that user's stream, and the publisher's reply: were every process "
        "subscribed to every user's channel, it would be P messages.",
        "",
        "| P | streams per process | subscriptions | delivered events/s | delivered | p50 | p99 "
        "| web cores | web CPU / delivered event | per process | Redis CPU / event "
        "| Redis output | Redis output / event |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per = ", ".join("–" if us is None else f"{us * 1e6:,.0f}" for _, us in r["per_process"])
        lines.append(
            f"| {r['p']} | {', '.join(f'{h:,}' for h in r['held'])} "
            f"| {', '.join(f'{s:,}' for s in r['subs'])} | {r['delivered_per_s']:,.0f} "
            f"| {r['fraction']:.1%} | {_ms(r['p50'])} | {_ms(r['p99'])} "
            f"| {r['web_cores']:.2f} | {r['web_per_event'] * 1e6:,.0f} µs | {per} µs "
            f"| {r['redis_per_event'] * 1e6:,.1f} µs | {r['out_per_s'] / 1024:,.0f} KiB/s "
            f"| {r['out_per_event']:,.0f} B |"
        )
    lines += [
        "",
        "| ratio | web CPU / delivered event | busiest process's CPU / its event "
        "| Redis output / event | Redis CPU / event |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["p"] == 1:
            continue
        lines.append(
            f"| P={r['p']} / P=1 | {_scale_ratio(rows, 'web_per_event', r['p'])} "
            f"| {_scale_ratio(rows, 'busiest', r['p'])} "
            f"| {_scale_ratio(rows, 'out_per_event', r['p'])} "
            f"| {_scale_ratio(rows, 'redis_per_event', r['p'])} |"
        )
    lines += _dense_lines(res.get("dense"))
    closed = sum(r["closed"] for r in rows + _scale_rows(res.get("dense") or {"per_p": []}))
    if closed:
        lines += ["", f"Streams dropped by the server during the runs: {closed}."]
    entries = res["per_p"] + (res.get("dense") or {}).get("per_p", [])
    errors = {f"P={e['p']} {k}": v for e in entries for k, v in e["server_errors"].items()}
    lines += _exceptions(errors, "web servers' logs")
    return lines


def _dense_cores(entry: dict) -> str:
    """Cores used (web / Redis / client / publisher), summed over the runs of one P."""
    runs = entry["runs"]
    span = sum(r["window_seconds"] + r["drain_seconds"] for r in runs) or 1.0
    used = [sum(r["cpu"].get(k, 0.0) for r in runs) for k in ("web", "redis", "client")]
    used.append(sum(r["publisher_cpu"] for r in runs))
    return " / ".join(f"{seconds / span:.2f}" for seconds in used)


def _dense_lines(dense: dict | None) -> list[str]:
    rows = _scale_rows(dense) if dense else []
    if not rows:
        return []
    cores = {e["p"]: _dense_cores(e) for e in dense["per_p"] if e["runs"]}
    lines = [
        "",
        f"The dense fan-out: {dense['streams']:,} streams over {dense['users']} users "
        f"({dense['streams'] // dense['users']:,} each), {dense['rate']:,.0f} events/s, as "
        f"Fan-out's largest N ({dense['streams'] * dense['rate'] / dense['users']:,.0f} "
        "deliveries/s), on P processes. Each process holds streams of every user, so every "
        "event goes to each: Redis's output grows with P here. The 2 cores are shared by the "
        "web processes, Redis, the clients that read the streams and the publisher.",
        "",
        "| P | streams per process | delivered events/s | delivered | p50 | p99 | web CPU / "
        "delivered event | cores: web / Redis / client / publisher | Redis output / event |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['p']} | {', '.join(f'{h:,}' for h in r['held'])} "
            f"| {r['delivered_per_s']:,.0f} | {r['fraction']:.1%} | {_ms(r['p50'])} "
            f"| {_ms(r['p99'])} | {r['web_per_event'] * 1e6:,.1f} µs | {cores[r['p']]} "
            f"| {r['out_per_event']:,.0f} B |"
        )
    return lines


def dense_goal(res: dict) -> list[str]:
    dense = res.get("dense")
    rows = _scale_rows(dense) if dense else []
    if not rows:
        return []
    best = min(rows, key=lambda r: r["p99"])
    met = best["p99"] <= 0.1
    one = next((r for r in rows if r["p"] == 1), None)
    figures = ", ".join(f"P={r['p']} {_ms(r['p99'])}" for r in rows)
    why = ""
    if one is not None:
        entry = next(e for e in dense["per_p"] if e["p"] == 1)
        why = (
            f" One process spends {one['web_per_event'] * 1e6:.1f} µs of CPU per delivery, "
            f"{one['web_cores']:.2f} cores at {one['delivered_per_s']:,.0f} deliveries/s "
            f"(cores web / Redis / client / publisher: {_dense_cores(entry)})."
        )
    return [
        f"- **Fan-out at {dense['streams']:,} streams, {dense['rate']:,.0f} events/s (issue "
        f"#18; goal p99 ≤ 100 ms): {'MET' if met else 'MISSED'}.** p99 {figures}.{why}"
    ]


def scaleout_goals(res: dict) -> list[str]:
    rows = _scale_rows(res)
    if not any(r["p"] == 1 for r in rows) or len(rows) < 2:
        return []
    cpu = ", ".join(
        f"P={r['p']}/P=1 {_scale_ratio(rows, 'web_per_event', r['p'])}" for r in rows if r["p"] != 1
    )
    out = ", ".join(
        f"P={r['p']}/P=1 {_scale_ratio(rows, 'out_per_event', r['p'])}" for r in rows if r["p"] != 1
    )
    base = rows[0]
    worst_cpu = max(r["web_per_event"] / base["web_per_event"] for r in rows)
    worst_out = max(r["out_per_event"] / base["out_per_event"] for r in rows)
    met = worst_cpu <= 1.25 and worst_out <= 1.1
    return [
        f"- {'**' if met else ''}Scale-out over web processes, {res['users']:,} users × 1 "
        f"stream, {res['rate']:,.0f} events/s (issue #18; flat: within 1.25× for CPU, 1.1× "
        f"for Redis output){'**' if met else ''}: web CPU per delivered event {cpu}; Redis "
        f"output per published event {out} "
        f"({', '.join(format(r['out_per_event'], ',.0f') for r in rows)} B); p99 "
        f"{', '.join(_ms(r['p99']) for r in rows)} "
        f"(P = {', '.join(str(r['p']) for r in rows)}). " + ("Met." if met else "Missed.")
    ] + dense_goal(res)


SECTIONS = {
    "workers": workers_section,
    "enqueue": enqueue_section,
    "page": page_section,
    "capacity": capacity_section,
    "output": output_section,
    "scaleout": scaleout_section,
}
GOALS = {
    "jobs": jobs_goals,
    "workers": workers_goals,
    "enqueue": enqueue_goals,
    "page": page_goals,
    "capacity": capacity_goals,
    "output": output_goals,
    "scaleout": scaleout_goals,
}


def _exceptions(errors: dict[str, int], where: str) -> list[str]:
    """The lines naming the exceptions the web servers logged during a scenario, if any."""
    if not errors:
        return []
    return [
        "",
        f"Exceptions in the {where}: " + ", ".join(f"{k} × {v}" for k, v in errors.items()) + ".",
    ]
