"""Enqueue path: ``POST /api/jobs`` through the web server against bare ``Queue.enqueue``.

The same job (``process_run`` with one step) is enqueued by, side by side:

- ``rq``: ``Queue.enqueue`` called in a loop (threads for concurrency above 1),
  no HTTP, no database: the floor;
- ``flask-rq``: a minimal Flask view around ``Queue.enqueue``
  (:mod:`bench.enqueue_app`) on the same gunicorn: what HTTP and Flask add;
- ``myapp-sqlite`` / ``myapp-postgres``: ``POST /api/jobs`` with a Bearer token:
  validation, the per-user limit, the ``TrackedJob`` row, the enqueue and the
  ``queued`` event, on SQLite and on a PostgreSQL database made for the run.

Each system has its own Redis; nothing works the queues (the jobs pile up).
``MAX_ACTIVE_JOBS_PER_USER`` and ``MAX_JOBS_PER_HOUR`` are raised so that the limits
never refuse a request.
Repeats rotate the order of the systems, at each concurrency in turn.

Then a 1,000-photo ``publish_album`` (:func:`albums`), on each myapp system's Redis and
database with one ``python worker.py`` running: the time to its 202 and to its
first piece started, against the same 1,000 jobs enqueued by hand with RQ's
``Queue.enqueue_many`` for the same worker.

Then database writes per job: one ``python worker.py`` on the PostgreSQL
database runs jobs of 100, 1,000 and 10,000 ``progress.update`` calls (as fast as
they come), one at a time, then the same spread over
a few seconds; a trigger the bench adds to ``tracked_jobs`` counts
every INSERT and UPDATE of each job's row.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import servers
from bench.fanout import percentiles
from bench.report import fmt, spread

SYSTEMS = ["rq", "flask-rq", "myapp-sqlite", "myapp-postgres"]
JOB = {"kind": "process_run", "params": {"steps": 1, "step_seconds": 0.0}}
#: Where a request's time goes, kept by hand (from :mod:`bench.enqueue_profile`).
PROFILE = Path(__file__).with_name("enqueue_profile.md")
#: The album's photos: each piece uploads 1 KB with no latency, so pieces end at once.
ALBUM_ITEMS = 1000
ALBUM_PIECE = {"size_kb": 1, "reject": False, "failure_rate": 0.0, "latency_ms": 0}

COUNT_WRITES = """
CREATE TABLE bench_writes (job_id varchar(64), op text);
CREATE FUNCTION bench_count_write() RETURNS trigger AS $$
BEGIN
  INSERT INTO bench_writes VALUES (NEW.id, TG_OP);
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER bench_count_write AFTER INSERT OR UPDATE ON tracked_jobs
  FOR EACH ROW EXECUTE FUNCTION bench_count_write();
"""


@dataclass
class EnqueueOptions:
    requests: int = 500  # per run
    concurrency: list[int] = field(default_factory=lambda: [1, 8])
    repeats: int = 3
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    updates: list[int] = field(default_factory=lambda: [100, 1000, 10000])
    write_repeats: int = 2
    paced_seconds: float = 3.0  # the same updates spread over this long, too (0: not)
    album_repeats: int = 3  # of the 1,000-photo album and its enqueue_many baseline (0: not)
    deadline: float = float("inf")
    log: callable = print


@dataclass
class Target:
    """One system under test: how the load generator reaches it."""

    name: str
    redis: servers.RedisServer
    web: servers.WebServer | None = None
    users: list[dict] = field(default_factory=list)
    env: dict = field(default_factory=dict)

    def config(self, connections: int, count: int) -> dict:
        if self.web is None:
            return {
                "mode": "rq",
                "redis_url": self.redis.url,
                "queue": "default",
                "func": "myapp.jobs.process_run.run",
                "kwargs": JOB["params"],
                "timeout": 3600,
                "connections": connections,
                "count": count,
            }
        body = json.dumps(JOB)
        requests = [
            f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            + (f"Authorization: Bearer {user['token']}\r\n" if user else "")
            + f"\r\n{body}"
            for user in (self.users or [None])
        ]
        return {
            "mode": "http",
            "host": "127.0.0.1",
            "port": self.web.port,
            "requests": requests,
            "connections": connections,
            "count": count,
        }

    def pids(self) -> list[int]:
        return self.web.pids() if self.web else []


def load(config: dict, timeout: float = 300) -> dict:
    done = subprocess.run(
        [servers.PYTHON, "-m", "bench.loadgen", json.dumps(config)],
        cwd=servers.ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=servers.raise_nofile,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.loadgen failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout)


def start_target(
    name: str, workdir: Path, stack: ExitStack, database: str | None, users: list[dict]
) -> Target:
    redis = servers.start_redis(workdir / f"redis-{name}", name)
    stack.callback(redis.stop)
    target = Target(name, redis, users=users)
    if name == "rq":
        return target
    env = servers.service_env(redis.url, database)
    env["MAX_ACTIVE_JOBS_PER_USER"] = env["MAX_JOBS_PER_HOUR"] = "1000000000"
    target.env = env
    app = "bench.enqueue_app:app" if name == "flask-rq" else "app:app"
    target.web = servers.start_gunicorn(name, app, env, workdir)
    stack.callback(target.web.stop)
    return target


def run_once(target: Target, connections: int, count: int) -> dict:
    cpu0 = servers.cpu_seconds(target.pids()), servers.cpu_seconds([target.redis.proc.pid])
    out = load(target.config(connections, count))
    cpu1 = servers.cpu_seconds(target.pids()), servers.cpu_seconds([target.redis.proc.pid])
    ok = out["statuses"].get("202", 0) + out["statuses"].get("enqueued", 0)
    return {
        "system": target.name,
        "concurrency": connections,
        "requests": count,
        "accepted": ok,
        "statuses": out["statuses"],
        "errors": out["errors"],
        "seconds": out["seconds"],
        "per_s": ok / out["seconds"],
        "latency": {
            **percentiles(out["latencies"]),
            "min": min(out["latencies"], default=None),
            "median": percentiles(out["latencies"])["p50"],
        },
        "web_cpu_per_request": (cpu1[0] - cpu0[0]) / max(ok, 1),
        "redis_cpu_per_request": (cpu1[1] - cpu0[1]) / max(ok, 1),
        "client_cpu_per_request": out["cpu"] / max(ok, 1),
    }


def run(opts: EnqueueOptions, workdir: Path, db_path: Path, users: list[dict]) -> dict:
    results: dict = {"runs": [], "writes": [], "systems": opts.systems}
    with ExitStack() as stack:
        pg_url, pg_users = None, []
        if any(s == "myapp-postgres" for s in opts.systems) or opts.updates:
            pg_url = stack.enter_context(servers.postgres_database(opts.postgres_url))
            env = servers.service_env("redis://127.0.0.1:1/0", pg_url)
            opts.log("  enqueue: creating 4 users on PostgreSQL")
            pg_users = servers.create_users(env, pg_url, [f"bench-user-{i}" for i in range(4)])
            results["postgres"] = _server_version(pg_url)
        targets = []
        for name in opts.systems:
            database = {"myapp-sqlite": f"sqlite:///{db_path}", "myapp-postgres": pg_url}
            mine = {"myapp-sqlite": users, "myapp-postgres": pg_users}.get(name, [])
            targets.append(start_target(name, workdir, stack, database.get(name), mine))
        for target in targets:  # first connections, imports, prepared statements
            load(target.config(2, 20))
        for repeat in range(opts.repeats):
            for connections in opts.concurrency:
                shift = repeat % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    if time.monotonic() > opts.deadline:
                        opts.log(f"  enqueue: time budget spent; skipped {target.name} #{repeat}")
                        results["skipped"] = results.get("skipped", 0) + 1
                        continue
                    run = run_once(target, connections, opts.requests)
                    run["repeat"] = repeat
                    results["runs"].append(run)
                    lat = run["latency"]
                    opts.log(
                        f"  enqueue #{repeat} c={connections} {target.name}: "
                        f"{run['per_s']:.0f}/s, p50 {lat['p50'] * 1000:.2f} ms, "
                        f"p99 {lat['p99'] * 1000:.2f} ms, {run['accepted']}/{run['requests']} ok"
                    )
        if opts.album_repeats and time.monotonic() < opts.deadline:
            results["albums"] = albums(opts, targets, workdir, stack)
        results["server_errors"] = {
            t.name: t.web.errors() for t in targets if t.web is not None and t.web.errors()
        }
        if opts.updates and time.monotonic() < opts.deadline:
            results["writes"] = count_writes(opts, workdir, pg_url, pg_users, stack)
    return results


def albums(opts: EnqueueOptions, targets: list[Target], workdir: Path, stack) -> list[dict]:
    """A 1,000-photo album through ``POST /api/jobs``, and the same 1,000 RQ jobs by
    ``Queue.enqueue_many``, each on an emptied Redis with one ``python worker.py``:
    the seconds until the answer (or ``enqueue_many``'s return) and until the first
    piece started (its ``started_at`` in RQ, the worker's clock: the same machine)."""
    found = []
    for target in [t for t in targets if t.name.startswith("myapp-") and t.users]:
        log = open(workdir / f"album-worker-{target.name}.log", "ab")  # noqa: SIM115
        stack.callback(log.close)
        for repeat in range(opts.album_repeats):
            for how in ("myapp", "enqueue_many")[:: 1 if repeat % 2 == 0 else -1]:
                if time.monotonic() > opts.deadline:
                    opts.log(f"  album: time budget spent; skipped {target.name} {how}")
                    return found
                # The piled-up jobs of the runs above, and their records: a reaper would
                # rebuild the records' jobs, Redis having lost them, ahead of the album.
                target.redis.client.flushdb()
                _empty_records(target.env["DATABASE_URL"])
                worker = servers.spawn(
                    f"worker-album-{target.name}",
                    [servers.PYTHON, "worker.py"],
                    cwd=servers.ROOT,
                    env=target.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    _wait_for_worker(target)
                    timing = _album_post(target) if how == "myapp" else _album_by_hand(target)
                finally:
                    worker.stop(30)
                row = {"system": target.name, "how": how, "repeat": repeat, **timing}
                found.append(row)
                opts.log(
                    f"  album #{repeat} {target.name} {how}: answered in "
                    f"{row['answered'] * 1000:.0f} ms, first piece started at "
                    f"{row['first_started'] * 1000:.0f} ms"
                )
    return found


def _empty_records(database_url: str) -> None:
    from sqlalchemy import create_engine, text

    from myapp.db import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM tracked_jobs"))
    finally:
        engine.dispose()


def _wait_for_worker(target: Target) -> None:
    from rq import Worker

    client = target.redis.client
    servers.wait_until(lambda: Worker.count(connection=client) >= 1, 60, "the album's worker")


def _album_post(target: Target) -> dict:
    items = [{"name": f"photo-{i:04}.jpg", "size_kb": 1} for i in range(ALBUM_ITEMS)]
    body = json.dumps({"kind": "publish_album", "params": {"items": items, "latency_ms": 0}})
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {target.users[0]['token']}",
    }
    conn = http.client.HTTPConnection("127.0.0.1", target.web.port, timeout=120)
    try:
        sent = time.time()
        conn.request("POST", "/api/jobs", body=body, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        answered = time.time() - sent
    finally:
        conn.close()
    if response.status != 202:
        raise RuntimeError(f"the album was refused: {response.status} {answer[:300]!r}")
    first = json.loads(answer)["children"][0]
    return {"answered": answered, "first_started": _started_at(target, first) - sent}


def _album_by_hand(target: Target) -> dict:
    """The same jobs as the album's pieces, with the meta myapp's worker reads, but no
    records, no rate limit and no events of their own."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    queue = Queue("default", connection=target.redis.client, serializer=JSONSerializer)
    user_id = target.users[0]["id"]
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000", time.gmtime())
    datas = [
        Queue.prepare_data(
            "myapp.jobs.publish_album.upload",
            kwargs={"name": f"photo-{i:04}.jpg", **ALBUM_PIECE},
            job_id=str(uuid.uuid4()),
            timeout=600,
            meta={
                "user_id": user_id,
                "kind": "publish_album.upload",
                "created_at": now,
                "version": 1,
                "max_attempts": 5,
            },
        )  # fmt: skip
        for i in range(ALBUM_ITEMS)
    ]
    sent = time.time()
    queue.enqueue_many(datas)
    answered = time.time() - sent
    return {"answered": answered, "first_started": _started_at(target, datas[0].job_id) - sent}


def _started_at(target: Target, job_id: str, timeout: float = 120.0) -> float:
    """When RQ says the job started (epoch seconds), polled every millisecond."""
    from rq.utils import utcparse

    client, deadline = target.redis.client, time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = client.hget(f"rq:job:{job_id}", "started_at")
        if value:
            return utcparse(value.decode()).timestamp()
        time.sleep(0.001)
    raise RuntimeError(f"job {job_id} did not start within {timeout:g} s")


def album_section(res: dict) -> list[str]:
    """Issue #18's first goal, where the time goes, and the album's table (for
    :func:`bench.sections.enqueue_section`)."""
    lines = _goal_lines(res.get("runs") or [])
    if PROFILE.exists():
        lines += [PROFILE.read_text().strip(), ""]
    rows = res.get("albums") or []
    if not rows:
        return lines
    lines += [
        f"### A {ALBUM_ITEMS:,}-photo album",
        "",
        f"`POST /api/jobs` of a `publish_album` of {ALBUM_ITEMS:,} photos (1 KB each, no "
        f"latency), against the same {ALBUM_ITEMS:,} jobs enqueued by hand with RQ's "
        "`Queue.enqueue_many` (myapp's meta, no records, no rate limit, no events), each on "
        "the system's emptied Redis with one `python worker.py` running; the first piece's "
        "start is RQ's `started_at`. Cells are min / **median** / max over the repeats.",
        "",
        "| system | enqueued by | answer (202, or `enqueue_many` returned) | first piece started |",
        "|---|---|---|---|",
    ]
    for name in sorted({r["system"] for r in rows}):
        for how in ("myapp", "enqueue_many"):
            mine = [r for r in rows if r["system"] == name and r["how"] == how]
            if mine:
                lines.append(
                    f"| {name} | {'`POST /api/jobs`' if how == 'myapp' else '`enqueue_many`'} "
                    f"| {fmt(spread(r['answered'] for r in mine), 1000, 0, ' ms')} "
                    f"| {fmt(spread(r['first_started'] for r in mine), 1000, 0, ' ms')} |"
                )
    lines.append("")
    ratios = []
    for name in sorted({r["system"] for r in rows}):
        for key, what in (("answered", "the answer"), ("first_started", "the first start")):
            paired = spread(
                a[key] / b[key]
                for a in rows
                for b in rows
                if a["system"] == b["system"] == name
                and a["repeat"] == b["repeat"]
                and (a["how"], b["how"]) == ("myapp", "enqueue_many")
            )
            if paired:
                ratios.append(f"{name} / `enqueue_many`: {fmt(paired, 1, 1, '×')} {what}")
    if ratios:
        lines += ["Paired by repeat: " + "; ".join(ratios) + ".", ""]
    return lines


def _goal_lines(runs: list[dict]) -> list[str]:
    """Issue #18, goal 1: web CPU per request and p99 at 8, myapp / flask-rq, paired."""
    parts = []
    for name in ("myapp-sqlite", "myapp-postgres"):
        for c, key, what in (
            (1, "web_cpu_per_request", "web CPU per request at 1 at a time"),
            (8, "web_cpu_per_request", "web CPU per request at 8"),
            (8, "p99", "p99 at 8"),
        ):

            def value(r, key=key):
                return r["latency"]["p99"] if key == "p99" else r[key]

            paired = spread(
                value(a) / value(b)
                for a in runs
                for b in runs
                if (a["system"], b["system"]) == (name, "flask-rq")
                and a["concurrency"] == b["concurrency"] == c
                and a["repeat"] == b["repeat"]
                and value(b)
            )
            if paired:
                parts.append(f"{name}, {what}: {fmt(paired, 1, 2, '×')}")
    if not parts:
        return []
    return [
        "Issue #18, goal 1 (each at most 2× flask-rq's), paired by repeat, myapp / "
        "flask-rq: " + "; ".join(parts) + ".",
        "",
    ]


def count_writes(
    opts: EnqueueOptions, workdir: Path, pg_url: str, users: list[dict], stack: ExitStack
) -> list[dict]:
    """Rows written per job for each size of job, on one real worker."""
    import psycopg

    from bench import jobs

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(COUNT_WRITES)
    redis = servers.start_redis(workdir / "redis-writes", "writes")
    stack.callback(redis.stop)
    env = servers.service_env(redis.url, pg_url)
    log = open(workdir / "writes-worker.log", "ab")  # noqa: SIM115
    stack.callback(log.close)
    worker = servers.spawn(
        "worker-writes",
        [servers.PYTHON, "worker.py"],
        cwd=servers.ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack.callback(worker.stop, 20)
    app = jobs.make_app(redis.url, pg_url)
    stack.callback(_dispose, app)
    from rq import Worker

    servers.wait_until(lambda: Worker.count(connection=redis.client) >= 1, 60, "the worker")
    found = []
    paces = [0.0, opts.paced_seconds] if opts.paced_seconds else [0.0]
    for repeat in range(opts.write_repeats):
        for pace, updates in [(p, u) for p in paces for u in opts.updates]:
            if time.monotonic() > opts.deadline:
                break
            kwargs = {"updates": updates, "seconds": pace}
            ids, _ = jobs.enqueue_batch(app, "bench.jobbodies.updater", kwargs, 1, users)
            statuses = jobs.wait_terminal(app, ids, 120)
            with psycopg.connect(pg_url) as conn:
                ops = dict(
                    conn.execute(
                        "SELECT op, count(*) FROM bench_writes WHERE job_id = %s GROUP BY op",
                        ids,
                    ).fetchall()
                )
                seconds = conn.execute(
                    "SELECT extract(epoch FROM ended_at - started_at) FROM tracked_jobs "
                    "WHERE id = %s",
                    ids,
                ).fetchone()[0]
            row = {
                "updates": updates,
                "paced": pace,
                "repeat": repeat,
                "status": next(iter(statuses), None),
                "inserts": ops.get("INSERT", 0),
                "updates_written": ops.get("UPDATE", 0),
                "job_seconds": float(seconds) if seconds is not None else None,
            }
            found.append(row)
            opts.log(
                f"  writes: {updates:,} progress.update calls over {pace:g} s → "
                f"{row['updates_written']} "
                f"UPDATEs, {row['inserts']} INSERT, job ran {row['job_seconds'] or 0:.2f} s"
            )
    return found


def _dispose(app) -> None:
    with app.app_context():
        from myapp.db import db

        db.engine.dispose()


def _server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]
