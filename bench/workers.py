"""Worker classes and Redis round trips: what progress costs on each way of running jobs.

Three ways of running myapp's jobs, one after the other, each with ``workers``
processes (or pool members) on a Redis of its own and the run's SQLite file:

- ``simple``: myapp's TrackingWorker on RQ's ``SimpleWorker`` model, each job in
  the worker's own process (:mod:`bench.simple_worker`);
- ``worker``: ``python worker.py`` (TrackingWorker: a forked work horse per job);
- ``pool``: ``rq worker-pool -n W -w myapp.worker.PoolWorker``, as docs/scaling.md
  starts it;
- ``rq``: bare ``rq worker -S json`` processes (RQ's forking ``Worker``) on a queue of
  their own, running :mod:`bench.bare_bodies`: no myapp at all, the floor the
  others are held against (issue #18: myapp's ``worker`` at 80% of its jobs/s).

Each runs the same batches, in an order that rotates from repeat to repeat:
``noop``; ``10ms`` (a 10 ms sleep, a short job); and ``seconds`` of work in 10
steps with no progress (``none``), with a ``progress.update`` at each step
(``10hz``), and with one as often as the job can (``flood``). The timed bodies
(:func:`bench.jobbodies.counted`) count what their process sends to Redis while
they run (round trips and commands, see :mod:`bench.roundtrips`) and return it;
it is read back from the job's row. Bare RQ runs ``noop`` and ``10ms`` only (the
others need myapp's ``progress``), timed until its finished registry holds the batch.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import jobs, servers

KINDS = ["simple", "worker", "pool", "rq"]
BATCHES = [
    ("noop", "bench.jobbodies.noop", {}),
    ("10ms", "bench.jobbodies.pause", {}),
    ("none", "bench.jobbodies.counted", {"mode": "none"}),
    ("10hz", "bench.jobbodies.counted", {"mode": "steps"}),
    ("flood", "bench.jobbodies.counted", {"mode": "flood"}),
]
#: What bare RQ runs instead, by batch.
BARE_BATCHES = {"noop": "bench.bare_bodies.noop", "10ms": "bench.bare_bodies.pause"}
#: Bare RQ's queue: not myapp's.
BARE_QUEUE = "bare"


@dataclass
class WorkerOptions:
    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    workers: int = 10
    jobs: int = 40
    repeats: int = 2
    seconds: float = 1.0
    deadline: float = float("inf")
    log: callable = print


def start_workers(kind: str, count: int, env: dict, log, stack: ExitStack) -> list[servers.Proc]:
    if kind == "pool":
        rq = str(Path(servers.PYTHON).with_name("rq"))
        args = [rq, "worker-pool", "-n", str(count), "-w", "myapp.worker.PoolWorker"]
        commands = [[*args, "-u", env["REDIS_URL"], "-q", "default"]]
    elif kind == "rq":
        rq = str(Path(servers.PYTHON).with_name("rq"))
        command = [rq, "worker", "-u", env["REDIS_URL"], "-S", "json", BARE_QUEUE]
        commands = [command for _ in range(count)]
    else:
        entry = ["-m", "bench.simple_worker"] if kind == "simple" else ["worker.py"]
        commands = [[servers.PYTHON, *entry] for _ in range(count)]
    procs = [
        servers.spawn(
            f"{kind}-{i}", command, cwd=servers.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        for i, command in enumerate(commands)
    ]
    stack.callback(_stop, procs)
    return procs


def _stop(procs: list[servers.Proc]) -> None:
    """Stop them, then whatever they left running (a pool's members)."""
    members = [pid for proc in procs for pid in servers.children(proc.pid)]
    servers.stop_all(procs, timeout=20)
    for pid in members:
        try:
            Path(f"/proc/{pid}").stat()
        except OSError:
            continue
        subprocess.run(["kill", "-KILL", str(pid)], check=False)


def results_of(app, ids: list[str]) -> list[dict]:
    from myapp.db import db
    from myapp.models import TrackedJob

    with app.app_context():
        rows = db.session.scalars(db.select(TrackedJob.result).where(TrackedJob.id.in_(ids)))
        found = [r for r in rows if isinstance(r, dict) and "sent" in r]
        db.session.rollback()
    return found


def run(opts: WorkerOptions, workdir: Path, db_path: Path, users: list[dict]) -> dict:
    from rq import Worker

    results: dict = {"workers": opts.workers, "jobs": opts.jobs, "runs": []}
    database_url = f"sqlite:///{db_path}"
    for kind in opts.kinds:
        if time.monotonic() > opts.deadline:
            opts.log(f"  workers: time budget spent; {kind} skipped")
            results.setdefault("skipped", []).append(kind)
            continue
        with ExitStack() as stack:
            redis = servers.start_redis(workdir / f"redis-workers-{kind}", f"workers-{kind}")
            stack.callback(redis.stop)
            env = servers.service_env(redis.url, database_url)
            log = open(workdir / f"workers-{kind}.log", "ab")  # noqa: SIM115
            stack.callback(log.close)
            procs = start_workers(kind, opts.workers, env, log, stack)
            started = time.monotonic()
            servers.wait_until(
                lambda procs=procs, redis=redis: (
                    all(p.alive() for p in procs)
                    and Worker.count(connection=redis.client) >= opts.workers
                ),
                120,
                f"the {kind} workers",
            )
            opts.log(f"  workers: {opts.workers} {kind} up in {time.monotonic() - started:.1f}s")
            app = jobs.make_app(redis.url, database_url)
            stack.callback(_dispose, app)
            batches = BATCHES
            if kind == "rq":
                batches = [(name, BARE_BATCHES[name], {}) for name in BARE_BATCHES]
            for repeat in range(opts.repeats):
                shift = repeat % len(batches)
                for name, func, kwargs in batches[shift:] + batches[:shift]:
                    if time.monotonic() > opts.deadline:
                        opts.log(f"  workers: time budget spent; skipped {kind} {name}")
                        results.setdefault("skipped", []).append(f"{kind} {name} #{repeat}")
                        continue
                    kwargs = {**kwargs, "seconds": opts.seconds} if kwargs else kwargs
                    if kind == "rq":
                        run = bare_batch(procs, redis, func, opts)
                    else:
                        run = run_batch(app, procs, redis, func, kwargs, opts, users)
                    run.update(kind=kind, batch=name, repeat=repeat)
                    results["runs"].append(run)
                    per = run.get("per_call") or {}
                    opts.log(
                        f"  workers {kind} #{repeat} {name}: {run['jobs_per_s']:.1f} jobs/s "
                        f"({run['finished']}/{opts.jobs}), "
                        f"{run['calls_per_job']:.0f} calls/job, "
                        f"{per.get('round trips', 0):.3f} round trips/call"
                    )
    return results


def run_batch(app, procs, redis, func: str, kwargs: dict, opts: WorkerOptions, users) -> dict:
    pids = [p.pid for p in procs]
    if len(procs) == 1:  # a pool: its members, and their horses
        pids += servers.children(procs[0].pid)
    run, ids = jobs.time_batch(app, pids, redis, func, kwargs, opts.jobs, users, 120)
    counted = results_of(app, ids)
    calls = sum(r["calls"] for r in counted)
    sent: Counter = Counter()
    for r in counted:
        sent.update(r["sent"])
    return {
        **run,
        "counted_jobs": len(counted),
        "calls_per_job": calls / len(counted) if counted else 0.0,
        "sent_per_job": {k: v / len(counted) for k, v in sent.items()} if counted else {},
        "per_call": {k: v / calls for k, v in sent.items()} if calls else {},
    }


def bare_batch(procs, redis, func: str, opts: WorkerOptions, timeout: float = 120) -> dict:
    """Bare RQ: enqueue the batch on its queue, wait until every job finished or failed;
    the same figures as :func:`bench.jobs.time_batch`."""
    from rq import Queue
    from rq.registry import FailedJobRegistry, FinishedJobRegistry
    from rq.serializers import JSONSerializer

    pids = [p.pid for p in procs]
    queue = Queue(BARE_QUEUE, connection=redis.client, serializer=JSONSerializer)
    finished = FinishedJobRegistry(queue=queue)
    failed = FailedJobRegistry(queue=queue)
    before = finished.count, failed.count
    time.sleep(0.5)  # let the workers' heartbeats settle
    cpu0 = jobs.cpu_with_children(pids), servers.cpu_seconds([redis.proc.pid])
    t0 = time.monotonic()
    for _ in range(opts.jobs):
        queue.enqueue_call(func)
    deadline = t0 + timeout
    while True:
        done, lost = finished.count - before[0], failed.count - before[1]
        if done + lost >= opts.jobs or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    seconds = time.monotonic() - t0
    cpu1 = jobs.cpu_with_children(pids), servers.cpu_seconds([redis.proc.pid])
    return {
        "seconds": seconds,
        "finished": done,
        "statuses": {"finished": done, "failed": lost},
        "jobs_per_s": done / seconds,
        "worker_cpu_per_job": (cpu1[0] - cpu0[0]) / opts.jobs,
        "redis_cpu_per_job": (cpu1[1] - cpu0[1]) / opts.jobs,
        "counted_jobs": 0,
        "calls_per_job": 0.0,
        "sent_per_job": {},
        "per_call": {},
    }


def _dispose(app) -> None:
    with app.app_context():
        from myapp.db import db

        db.engine.dispose()
