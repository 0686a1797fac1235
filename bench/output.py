"""Output streams: jobs writing tokens with ``progress.output`` while streams watch.

As issue #17 pins it: ``jobs`` jobs (100) writing ``rate`` tokens a second (200)
each for ``seconds`` (10), while ``streams`` streams (1,000) watch, spread over
``users`` users (10 jobs and 100 streams each). In four parts:

- ``myapp``: a Redis, gunicorn on myapp's worker class, ``rq worker-pool`` with
  ``workers`` PoolWorkers (enough to run every job at once) and the run's SQLite
  file; the streams are ``/stream`` with each user's token. The jobs are
  :func:`bench.jobbodies.streamer`: each token is ``t=<time.time()>``, taken just
  before its ``progress.output`` call. Every stream counts its ``event: output``
  arrivals; every ``sample``-th stream of each user also reads each token's stamp on
  arrival, and its latency is that moment minus the stamp: the batching into at most
  ``PROGRESS_MAX_RATE`` events a second is part of it.
- ``bare``: the same tokens, batched the same way, PUBLISHed on plain Redis to as
  many raw RESP subscribers (:mod:`bench.tokens`): the floor of the delivery.
- writes: triggers the bench adds to the SQLite file count every INSERT and UPDATE
  of a job's row, for the jobs above and for jobs writing ``write_rates`` tokens a
  second over the same ``write_seconds``.
- panels: Chromium (as :mod:`bench.page` drives it) shows one user's page while
  ``panels`` jobs write ``panel_bytes`` each into their output panels; the JS heap
  after a forced GC (CDP ``Runtime.getHeapUsage``), the DOM nodes and the renderer's
  RSS are read before and after, and so are they for as many jobs without output,
  whose rows are taken off: what is left is the panels'.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from array import array
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path

from bench import jobs, servers, workers
from bench.fanout import STREAMS_PER_USER_LIMIT, fmt_ms, per_user_counts, percentiles
from bench.servers import LineProc

#: A token's stamp, as :func:`bench.jobbodies.streamer` and :mod:`bench.tokens` write it.
STAMP = r"t=([0-9]+\.[0-9]+)"
#: How each kind of stream marks an event: SSE's event line, RESP's message frame.
EVENT_MARKS = {"sse": "event:output", "bare": "$7\r\nmessage\r\n"}
#: Characters of each token of the panel jobs (lines of log).
PANEL_TOKEN = 100

#: Counts every write of a job's row (``output``: whether it changed the text).
COUNT_WRITES = """
CREATE TABLE IF NOT EXISTS bench_writes (job_id TEXT, op TEXT, output INTEGER);
CREATE TRIGGER IF NOT EXISTS bench_writes_insert AFTER INSERT ON tracked_jobs
BEGIN INSERT INTO bench_writes VALUES (NEW.id, 'insert', NEW.output IS NOT NULL); END;
CREATE TRIGGER IF NOT EXISTS bench_writes_update AFTER UPDATE ON tracked_jobs
BEGIN INSERT INTO bench_writes VALUES (NEW.id, 'update', NEW.output IS NOT OLD.output); END;
"""
STOP_COUNTING = """
DROP TRIGGER IF EXISTS bench_writes_insert;
DROP TRIGGER IF EXISTS bench_writes_update;
DROP TABLE IF EXISTS bench_writes;
"""


@dataclass
class OutputOptions:
    jobs: int = 100
    users: int = 10
    streams: int = 1000
    rate: float = 200.0
    seconds: float = 10.0
    workers: int = 100
    sample: int = 10
    write_rates: list[float] = field(default_factory=lambda: [20.0, 200.0, 2000.0])
    write_jobs: int = 10
    write_seconds: float = 5.0
    panels: int = 10
    panel_bytes: int = 100_000
    drain: float = 5.0
    deadline: float = float("inf")
    log: callable = print


def run(opts: OutputOptions, workdir: Path, db_path: Path, users: list[dict]) -> dict:
    users = users[: opts.users]
    results: dict = {
        "jobs": opts.jobs,
        "users": len(users),
        "streams": opts.streams,
        "rate": opts.rate,
        "seconds": opts.seconds,
        "workers": opts.workers,
        "sample": opts.sample,
        "runs": [],
        "writes": [],
    }
    _script(db_path, COUNT_WRITES)
    try:
        with ExitStack() as stack:
            myapp = start_myapp(opts, workdir, db_path, stack)
            results["config"] = myapp["config"]
            results["runs"].append(deliver_myapp(opts, myapp, users, workdir, db_path))
            if _in_time(opts, results, "writes"):
                results["writes"] = measure_writes(opts, myapp, users, db_path)
            if _in_time(opts, results, "panels"):
                results["panels"] = measure_panels(opts, myapp, users[0])
        if _in_time(opts, results, "bare"):
            max_rate = results["config"]["PROGRESS_MAX_RATE"]
            results["runs"].append(deliver_bare(opts, users, workdir, max_rate))
    finally:
        _script(db_path, STOP_COUNTING)
    return results


def _script(db_path: Path, script: str) -> None:
    with closing(sqlite3.connect(db_path)) as conn:
        conn.executescript(script)


def _in_time(opts: OutputOptions, results: dict, part: str) -> bool:
    if time.monotonic() < opts.deadline:
        return True
    opts.log(f"  output: time budget spent; {part} skipped")
    results["skipped"] = ", ".join(filter(None, [results.get("skipped"), part]))
    return False


# -- the services --------------------------------------------------------------


def start_myapp(opts: OutputOptions, workdir: Path, db_path: Path, stack: ExitStack) -> dict:
    """Redis, gunicorn and the worker pool, stopped by ``stack``; and an app to enqueue."""
    from rq import Worker

    redis = servers.start_redis(workdir / "redis-output", "output")
    stack.callback(redis.stop)
    database_url = f"sqlite:///{db_path}"
    env = servers.service_env(redis.url, database_url)
    env["MAX_STREAMS_PER_USER"] = str(STREAMS_PER_USER_LIMIT)
    web = servers.start_gunicorn("output", "app:app", env, workdir)
    stack.callback(web.stop)
    log = open(workdir / "output-workers.log", "ab")  # noqa: SIM115
    stack.callback(log.close)
    started = time.monotonic()
    pool = workers.start_workers("pool", opts.workers, env, log, stack)
    servers.wait_until(
        lambda: pool[0].alive() and Worker.count(connection=redis.client) >= opts.workers,
        180,
        "the worker pool",
    )
    opts.log(f"  output: {opts.workers} pool workers up in {time.monotonic() - started:.1f}s")
    app = jobs.make_app(redis.url, database_url)
    stack.callback(_dispose, app)
    return {
        "redis": redis,
        "web": web,
        "pool": pool[0],
        "app": app,
        "config": {k: app.config[k] for k in ("PROGRESS_MAX_RATE", "PROGRESS_DB_INTERVAL")},
    }


def _dispose(app) -> None:
    from myapp.db import db

    with app.app_context():
        db.engine.dispose()


def open_clients(kind: str, port: int, specs: list[dict], n: int, opts: OutputOptions) -> list:
    """Client processes (up to 1,000 streams each) with ``n`` streams open."""
    clients: list[LineProc] = []
    try:
        for offset in range(0, n, 1000):
            config = {
                "kind": kind,
                "client": "raw",
                "host": "127.0.0.1",
                "port": port,
                "n": min(1000, n - offset),
                "offset": offset,
                "users": specs,
                "ready_mark": "event:snapshot" if kind == "sse" else "",
                "concurrency": 50,
                "open_timeout": 120,
                "stamp": STAMP,
                "event_mark": EVENT_MARKS[kind],
                "sample": opts.sample,
            }
            client = LineProc(
                f"output-client-{kind}-{offset}",
                [servers.PYTHON, "-m", "bench.clients", json.dumps(config)],
            )
            clients.append(client)
            client.read(30)  # its "ready"
        for client in clients:
            client.send("open")
        for client in clients:
            json.loads(client.read(600))
    except BaseException:
        _stop(clients)
        raise
    return clients


def _ask_all(clients: list[LineProc], line: str) -> list[dict]:
    for client in clients:
        client.send(line)
    return [json.loads(client.read(60)) for client in clients]


def _stop(clients: list[LineProc]) -> None:
    for client in clients:
        client.stop()


def _collect(clients: list[LineProc], workdir: Path, name: str) -> tuple[list[dict], array]:
    """Stop recording; each client's counts, and every latency they read."""
    files = [workdir / f"output-lat-{name}-{i}.f64" for i in range(len(clients))]
    for client, path in zip(clients, files, strict=True):
        client.send(f"stop {path}")
    answers = [json.loads(client.read(60)) for client in clients]
    latencies = array("d")
    for path in files:
        latencies.frombytes(path.read_bytes())
        path.unlink()
    return answers, latencies


def _drain(clients: list[LineProc], expected: int, limit: float) -> int:
    """Wait until every delivery arrived, or none did for a second, or ``limit`` s."""
    started = last = time.monotonic()
    count = sum(a["count"] for a in _ask_all(clients, "count"))
    while count < expected and time.monotonic() - started < limit:
        time.sleep(0.2)
        now = sum(a["count"] for a in _ask_all(clients, "count"))
        if now > count:
            count, last = now, time.monotonic()
        elif time.monotonic() - last > 1.0:
            break
    return count


# -- delivery --------------------------------------------------------------------


def published_outputs(redis, users: list[dict]) -> tuple[list[int], int, array]:
    """``event: output`` events in each user's event log; how many of them repeat a
    job's offset (the same text logged twice); and every token's seconds from its stamp
    to its event's entry (the Redis clock of the XADD): the part of the latency spent
    before Redis had the token."""
    from myapp.keys import channel_for, log_key

    counts, seen, repeats, lags = [], set(), 0, array("d")
    stamp = re.compile(STAMP.encode())
    for user in users:
        entries = redis.client.xrange(log_key(channel_for(user["id"])))
        outputs = [(i, f[b"m"]) for i, f in entries if b'"type":"output"' in f[b"m"]]
        counts.append(len(outputs))
        for entry_id, message in outputs:
            data = json.loads(message)["data"]
            repeats += (data["job"], data["offset"]) in seen
            seen.add((data["job"], data["offset"]))
            logged = int(entry_id.split(b"-")[0]) / 1000
            lags.extend([logged - float(t) for t in stamp.findall(message)])
    return counts, repeats, lags


def job_results(app, ids: list[str]) -> list[dict]:
    from myapp.db import db
    from myapp.models import TrackedJob

    with app.app_context():
        rows = db.session.scalars(db.select(TrackedJob.result).where(TrackedJob.id.in_(ids)))
        found = [r for r in rows if isinstance(r, dict) and "tokens" in r]
        db.session.rollback()
    return found


def most_at_once(spans: list[dict]) -> int:
    """The most jobs that were writing at the same moment."""
    edges = sorted([(r["started"], 1) for r in spans] + [(r["ended"], -1) for r in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def writes_of(db_path: Path, ids: list[str]) -> list[dict]:
    """Per job: the INSERTs and UPDATEs of its row, and the UPDATEs that saved output."""
    counts = {i: {"inserts": 0, "updates": 0, "output_updates": 0} for i in ids}
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute(
            "SELECT job_id, op, output, COUNT(*) FROM bench_writes GROUP BY 1, 2, 3"
        )
        for job_id, op, output, n in rows.fetchall():
            if job_id not in counts:
                continue
            counts[job_id]["inserts" if op == "insert" else "updates"] += n
            if op == "update" and output:
                counts[job_id]["output_updates"] += n
    return list(counts.values())


def deliver_myapp(opts, myapp: dict, users: list[dict], workdir: Path, db_path: Path) -> dict:
    redis, web, app = myapp["redis"], myapp["web"], myapp["app"]
    specs = [{"path": "/stream", "token": u["token"]} for u in users]
    started = time.monotonic()
    clients = open_clients("sse", web.port, specs, opts.streams, opts)
    try:
        opts.log(
            f"  output myapp: {opts.streams} streams open in {time.monotonic() - started:.1f}s"
        )
        pool = [myapp["pool"].pid, *servers.children(myapp["pool"].pid)]
        parts = {
            "web": lambda: servers.cpu_seconds(web.pids()),
            "redis": lambda: servers.cpu_seconds([redis.proc.pid]),
            "workers": lambda: jobs.cpu_with_children(pool),
            "client": lambda: servers.cpu_seconds([c.pid for c in clients]),
        }
        _ask_all(clients, "start")
        cpu0 = {k: f() for k, f in parts.items()}
        t0 = time.time()
        kwargs = {"rate": opts.rate, "seconds": opts.seconds}
        ids, _ = jobs.enqueue_batch(app, "bench.jobbodies.streamer", kwargs, opts.jobs, users)
        statuses = jobs.wait_terminal(app, ids, opts.seconds * 4 + 120)
        window_end = time.time()
        window_count = sum(a["count"] for a in _ask_all(clients, "count"))
        published, repeated, to_redis = published_outputs(redis, users)
        per_user = per_user_counts(opts.streams, len(users))
        expected = sum(p * n for p, n in zip(published, per_user, strict=True))
        _drain(clients, expected, opts.drain)
        cpu1 = {k: f() for k, f in parts.items()}
        span = time.time() - t0
        answers, latencies = _collect(clients, workdir, "myapp")
    finally:
        _stop(clients)
    spans = job_results(app, ids)
    first = min((r["started"] for r in spans), default=t0)
    last = max((r["ended"] for r in spans), default=window_end)
    received = sum(a["count"] for a in answers)
    writes = writes_of(db_path, ids)
    run = {
        "system": "myapp",
        "statuses": statuses,
        "jobs_written": len(spans),
        "at_once": most_at_once(spans),
        "tokens": sum(r["tokens"] for r in spans),
        "tokens_per_job": [r["tokens"] for r in spans],
        "tokens_per_s_per_job": [r["tokens"] / max(r["ended"] - r["started"], 1e-9) for r in spans],
        "job_seconds": [r["ended"] - r["started"] for r in spans],
        "start_delay": max((r["started"] for r in spans), default=t0) - t0,
        "writing_seconds": last - first,
        "published": sum(published),
        "repeated": repeated,
        "published_per_s": sum(published) / max(last - first, 1e-9),
        "expected": expected,
        "window_count": window_count,
        "delivered_per_s": window_count / max(window_end - first, 1e-9),
        "received": received,
        "delivered_fraction": received / expected if expected else 0.0,
        "stamps": sum(a["stamps"] for a in answers),
        "latency": percentiles(latencies),
        "to_redis": percentiles(to_redis),
        "closed": sum(a["closed"] for a in answers),
        "cpu": {k: cpu1[k] - cpu0[k] for k in parts},
        "span_seconds": span,
        "writes": writes,
        "server_errors": web.errors(),
    }
    _log_run(opts, run)
    return run


def deliver_bare(opts: OutputOptions, users: list[dict], workdir: Path, max_rate: float) -> dict:
    """The same tokens on bare Redis, batched at myapp's ``PROGRESS_MAX_RATE``."""
    with ExitStack() as stack:
        redis = servers.start_redis(workdir / "redis-output-bare", "output-bare")
        stack.callback(redis.stop)
        channels = [f"bench:user:{i}" for i in range(len(users))]
        specs = [{"channel": c} for c in channels]
        port = int(redis.url.rsplit(":", 1)[1].split("/")[0])
        clients = open_clients("bare", port, specs, opts.streams, opts)
        stack.callback(_stop, clients)
        servers.wait_until(lambda: redis.numsub(channels) >= opts.streams, 120, "subscriptions")
        config = {
            "redis_url": redis.url,
            "channels": channels,
            "jobs": opts.jobs,
            "rate": opts.rate,
            "seconds": opts.seconds,
            "max_rate": max_rate,
        }
        publisher = LineProc(
            "output-tokens", [servers.PYTHON, "-m", "bench.tokens", json.dumps(config)]
        )
        stack.callback(publisher.stop)
        if publisher.read(60).strip() != "ready":
            raise RuntimeError("the token publisher did not start")
        parts = {
            "redis": lambda: servers.cpu_seconds([redis.proc.pid]),
            "client": lambda: servers.cpu_seconds([c.pid for c in clients]),
        }
        _ask_all(clients, "start")
        cpu0 = {k: f() for k, f in parts.items()}
        t0 = time.monotonic()
        publisher.send("go")
        played = json.loads(publisher.read(opts.seconds * 5 + 60))
        window_count = sum(a["count"] for a in _ask_all(clients, "count"))
        per_user = per_user_counts(opts.streams, len(users))
        expected = sum(p * n for p, n in zip(played["per_channel"], per_user, strict=True))
        _drain(clients, expected, opts.drain)
        cpu1 = {k: f() for k, f in parts.items()}
        span = time.monotonic() - t0
        answers, latencies = _collect(clients, workdir, "bare")
    received = sum(a["count"] for a in answers)
    run = {
        "system": "bare",
        "tokens": played["tokens"],
        "writing_seconds": played["seconds"],
        "published": played["published"],
        "published_per_s": played["published"] / played["seconds"],
        "expected": expected,
        "window_count": window_count,
        "delivered_per_s": window_count / played["seconds"],
        "received": received,
        "delivered_fraction": received / expected if expected else 0.0,
        "stamps": sum(a["stamps"] for a in answers),
        "latency": percentiles(latencies),
        "closed": sum(a["closed"] for a in answers),
        "cpu": {**{k: cpu1[k] - cpu0[k] for k in parts}, "publisher": played["cpu"]},
        "span_seconds": span,
    }
    _log_run(opts, run)
    return run


def _log_run(opts: OutputOptions, run: dict) -> None:
    lat = run["latency"]
    opts.log(
        f"  output {run['system']}: {run['published_per_s']:,.0f} events/s published, "
        f"{run['delivered_per_s']:,.0f} delivered/s ({run['delivered_fraction']:.0%} by the "
        f"end of the drain), token p50 {fmt_ms(lat['p50'])} p99 {fmt_ms(lat['p99'])} "
        f"({lat['n']:,} stamps), closed {run['closed']}, {run.get('repeated', 0)} repeated"
        + (f"; token → Redis p99 {fmt_ms(run['to_redis']['p99'])}" if "to_redis" in run else "")
    )


# -- database writes -------------------------------------------------------------


def measure_writes(opts: OutputOptions, myapp: dict, users: list[dict], db_path: Path) -> list:
    """Jobs at each of ``write_rates`` tokens a second over the same seconds, at once."""
    app = myapp["app"]
    batches = []
    for rate in opts.write_rates:
        kwargs = {"rate": rate, "seconds": opts.write_seconds}
        ids, _ = jobs.enqueue_batch(app, "bench.jobbodies.streamer", kwargs, opts.write_jobs, users)
        batches.append((rate, ids))
    every = [i for _, ids in batches for i in ids]
    statuses = jobs.wait_terminal(app, every, opts.write_seconds * 4 + 60)
    found = []
    for rate, ids in batches:
        spans = job_results(app, ids)
        writes = writes_of(db_path, ids)
        found.append(
            {
                "rate": rate,
                "seconds": opts.write_seconds,
                "jobs": len(ids),
                "statuses": statuses,
                "tokens": [r["tokens"] for r in spans],
                "job_seconds": [r["ended"] - r["started"] for r in spans],
                "writes": writes,
            }
        )
        updates = sorted(w["updates"] for w in writes)
        opts.log(
            f"  output writes: {rate:g} tokens/s for {opts.write_seconds:g}s: "
            f"UPDATEs per job {updates[0]}–{updates[-1]}"
        )
    return found


# -- output panels in the page -----------------------------------------------------

PANELS_FULL = """([size, count]) => [...document.querySelectorAll('pre.job-output')]
  .filter((panel) => panel.textContent.length >= size).length >= count"""


def measure_panels(opts: OutputOptions, myapp: dict, user: dict) -> dict:
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import CHROMIUM, LAUNCH_ARGS  # the browser the page tests drive

    app, web = myapp["app"], myapp["web"]
    seconds = opts.panel_bytes / (PANEL_TOKEN * 200.0)
    found: dict = {"panels": opts.panels, "bytes": opts.panel_bytes, "token": PANEL_TOKEN}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            found["chromium"] = browser.version
            context = browser.new_context(base_url=web.base)
            context.set_default_timeout(30_000)
            page = context.new_page()
            page.goto("/")
            page.locator("#name").fill(user["name"])
            page.locator("#password").fill("x")
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("#connection")).to_have_text("live")
            cdp = context.new_cdp_session(page)
            # Every step runs the same check, so that Playwright's script, which it puts in
            # the page the first time, is in the heap at every measurement.
            page.wait_for_function(PANELS_FULL, arg=[0, 0])
            memory = found["memory"] = {"before": _page_memory(cdp)}
            rounds = (("rows", {"rate": 1.0, "seconds": 0.0}), ("panels", None))
            for name, kwargs in rounds:
                kwargs = kwargs or {"rate": 200.0, "seconds": seconds, "size": PANEL_TOKEN}
                ids, _ = jobs.enqueue_batch(
                    app, "bench.jobbodies.streamer", kwargs, opts.panels, [user]
                )
                jobs.wait_terminal(app, ids, seconds * 4 + 60)
                for job_id in ids:
                    row = page.locator(f'li[data-job-id="{job_id}"]')
                    expect(row).to_have_class(re.compile(r"\bjob--finished\b"))
                full = [opts.panel_bytes, opts.panels] if name == "panels" else [0, 0]
                page.wait_for_function(PANELS_FULL, arg=full)
                memory[name] = _page_memory(cdp)
        finally:
            browser.close()
    before, rows, panels = memory["before"], memory["rows"], memory["panels"]
    found["per_panel"] = {
        k: ((panels[k] - rows[k]) - (rows[k] - before[k])) / opts.panels for k in rows
    }
    found["per_row"] = {k: (rows[k] - before[k]) / opts.panels for k in rows}
    per = found["per_panel"]
    opts.log(
        f"  output panels: {opts.panels} of {opts.panel_bytes:,} characters: "
        f"{per['js_heap'] / 1024:.1f} KiB JS heap, {per['nodes']:.0f} DOM nodes, "
        f"{per['renderer_rss'] / 1024:.0f} KiB renderer RSS per panel"
    )
    return found


def _page_memory(cdp) -> dict:
    """The page's JS heap after a full GC, its DOM nodes, and the renderers' RSS."""
    for _ in range(2):
        cdp.send("HeapProfiler.collectGarbage")
    time.sleep(0.3)
    heap = cdp.send("Runtime.getHeapUsage")
    counters = cdp.send("Memory.getDOMCounters")
    return {
        "js_heap": heap["usedSize"],
        "nodes": counters["nodes"],
        "renderer_rss": servers.rss_bytes(_renderers()),
    }


def _renderers() -> list[int]:
    """Chromium's renderer processes among this process's descendants."""
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        kids = servers.children(pid)
        todo += kids
        for kid in kids:
            try:
                if b"--type=renderer" in Path(f"/proc/{kid}/cmdline").read_bytes():
                    found.append(kid)
            except OSError:
                pass
    return found
