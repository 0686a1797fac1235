"""Job overhead: what tracking and ``progress.update`` cost a real RQ worker.

``workers`` real ``python worker.py`` processes (myapp's TrackingWorker, which
forks a work horse per job) on a Redis of their own and the run's SQLite file.
Each repeat runs three batches of ``jobs`` jobs, in an order that rotates:

- ``noop``: a job that does nothing (the cost of a tracked job by itself);
- ``sleep``: 10 steps of 0.1 s (1 s of "work"), reporting nothing;
- ``progress``: the same 10 steps, each with a ``progress.update`` (all 10 are
  published: they are 0.1 s apart, at ``PROGRESS_MAX_RATE`` 10/s).

Jobs are made as :func:`myapp.jobs.submit` makes them (a ``TrackedJob`` row, then
``get_queue().enqueue_call`` with the meta the worker needs, without the per-user
rate limit), all rows committed first so that enqueueing is not what is timed.
A batch's time runs from the first enqueue to the moment every row is terminal
(the worker records the end in the database last). CPU is the workers' own plus
their reaped work horses' (utime+stime+cutime+cstime) plus Redis's.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench import servers

BATCHES = [
    ("noop", "bench.jobbodies.noop", {}),
    ("sleep", "bench.jobbodies.sleeper", {"steps": 10, "seconds": 1.0}),
    ("progress", "bench.jobbodies.reporter", {"steps": 10, "seconds": 1.0}),
]


@dataclass
class JobOptions:
    jobs: int = 200
    workers: int = 20
    repeats: int = 3
    timeout: float = 120.0
    deadline: float = float("inf")  # time.monotonic() after which no batch starts
    log: callable = print


def cpu_with_children(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / servers.CLK_TCK


def make_app(redis_url: str, database_url: str):
    """myapp in this process, on the benchmark's services (for enqueueing)."""
    from myapp import create_app

    saved = {k: os.environ.get(k) for k in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY")}
    os.environ.update(
        REDIS_URL=redis_url, DATABASE_URL=database_url, SECRET_KEY="bench-secret-" + "x" * 32
    )
    try:
        return create_app()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def enqueue_batch(
    app, func: str, kwargs: dict, count: int, users: list[dict]
) -> tuple[list[str], float]:
    """``count`` tracked jobs; their ids and the monotonic time of the first enqueue."""
    from myapp import job_json
    from myapp.connections import get_queue
    from myapp.db import db
    from myapp.models import TrackedJob

    with app.app_context():
        now = job_json.utcnow()
        rows = [
            TrackedJob(
                id=str(uuid.uuid4()),
                user_id=users[i % len(users)]["id"],
                kind="bench",
                params=kwargs,
                status="queued",
                created_at=now,
                updated_at=now,
            )
            for i in range(count)
        ]
        db.session.add_all(rows)
        db.session.commit()
        queue = get_queue()
        started = time.monotonic()
        for row in rows:
            queue.enqueue_call(
                func,
                kwargs=kwargs,
                job_id=row.id,
                timeout=60,
                description=f"bench {row.id}",
                meta={
                    "user_id": row.user_id,
                    "kind": "bench",
                    "created_at": job_json.iso(now),
                    "max_attempts": 1,
                },
            )
        ids = [row.id for row in rows]
    return ids, started


def time_batch(
    app, pids: list[int], redis, func: str, kwargs: dict, count: int, users, timeout: float
) -> tuple[dict, list[str]]:
    """Enqueue ``count`` jobs and wait for them all to end: the figures of the batch
    (time, jobs/s, the workers' and Redis's CPU per job), and the jobs' ids."""
    time.sleep(0.5)  # let the workers' heartbeats settle
    cpu0 = cpu_with_children(pids), servers.cpu_seconds([redis.proc.pid])
    ids, t0 = enqueue_batch(app, func, kwargs, count, users)
    statuses = wait_terminal(app, ids, timeout)
    seconds = time.monotonic() - t0
    cpu1 = cpu_with_children(pids), servers.cpu_seconds([redis.proc.pid])
    done = statuses.get("finished", 0)
    run = {
        "seconds": seconds,
        "finished": done,
        "statuses": statuses,
        "jobs_per_s": done / seconds,
        "worker_cpu_per_job": (cpu1[0] - cpu0[0]) / count,
        "redis_cpu_per_job": (cpu1[1] - cpu0[1]) / count,
    }
    return run, ids


def wait_terminal(app, ids: list[str], timeout: float) -> dict[str, int]:
    """Poll the rows until all are terminal (or ``timeout``); their statuses."""
    from myapp.db import db
    from myapp.job_json import TERMINAL
    from myapp.models import TrackedJob

    deadline = time.monotonic() + timeout
    with app.app_context():
        while True:
            statuses = dict(
                db.session.execute(
                    db.select(TrackedJob.status, db.func.count())
                    .where(TrackedJob.id.in_(ids))
                    .group_by(TrackedJob.status)
                ).all()
            )
            db.session.rollback()  # see the workers' newer commits next time
            if sum(n for s, n in statuses.items() if s in TERMINAL) >= len(ids):
                return statuses
            if time.monotonic() > deadline:
                return statuses
            time.sleep(0.05)


def run(opts: JobOptions, workdir: Path, db_path: Path, users: list[dict]) -> dict:
    from redis import Redis
    from rq import Worker

    results: dict = {"workers": opts.workers, "jobs": opts.jobs, "runs": []}
    with ExitStack() as stack:
        redis = servers.start_redis(workdir / "redis-jobs", "jobs")
        stack.callback(redis.stop)
        database_url = f"sqlite:///{db_path}"
        env = servers.service_env(redis.url, database_url)
        log = open(workdir / "workers.log", "ab")  # noqa: SIM115
        stack.callback(log.close)
        workers: list[servers.Proc] = []
        stack.callback(servers.stop_all, workers)
        for i in range(opts.workers):
            proc = servers.spawn(
                f"worker-{i}",
                [servers.PYTHON, "worker.py"],
                cwd=servers.ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            workers.append(proc)
        connection = Redis.from_url(redis.url)
        stack.callback(connection.close)
        started = time.monotonic()
        servers.wait_until(
            lambda: (
                all(w.alive() for w in workers)
                and Worker.count(connection=connection) >= opts.workers
            ),
            120,
            "the RQ workers",
        )
        results["workers_start_seconds"] = time.monotonic() - started
        app = make_app(redis.url, database_url)
        pids = [w.pid for w in workers]
        for repeat in range(opts.repeats):
            shift = repeat % len(BATCHES)
            for name, func, kwargs in BATCHES[shift:] + BATCHES[:shift]:
                if time.monotonic() > opts.deadline:
                    opts.log(f"  jobs: time budget spent; skipped {name} #{repeat}")
                    results["skipped"] = results.get("skipped", 0) + 1
                    continue
                run, _ = time_batch(app, pids, redis, func, kwargs, opts.jobs, users, opts.timeout)
                run.update(batch=name, repeat=repeat)
                results["runs"].append(run)
                opts.log(
                    f"  jobs #{repeat} {name}: {run['jobs_per_s']:.1f} jobs/s "
                    f"({run['finished']}/{opts.jobs} finished in {run['seconds']:.1f}s), "
                    f"{1000 * run['worker_cpu_per_job']:.1f} ms worker CPU/job"
                )
        with app.app_context():
            from myapp.db import db

            db.engine.dispose()
    return results
