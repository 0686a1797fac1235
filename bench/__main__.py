"""``python -m bench``: run the benchmarks and write docs/benchmarks.md.

The default run (fan-out at 100, 1,000 and 5,000 streams and job overhead, then
worker classes, enqueue path, latency to the page, capacity, output streams and
the scale-out over 1, 2 and 4 web processes) stops by itself
within about twenty minutes: no fan-out or job run starts once its share of
``--budget`` is spent, and each later scenario has an allowance of its own
(``ALLOWANCES``); what was skipped is written in the report. ``--scenarios``
runs some of them: the others are then taken from the newest full run's raw
figures in bench/results/, so docs/benchmarks.md always shows them all.
``--quick`` is a smoke run of a few minutes, written to bench/results/quick.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench import (
    capacity,
    carried,
    enqueue,
    fanout,
    jobs,
    output,
    page,
    report,
    scaleout,
    servers,
    workers,
)

RESULTS = Path(__file__).resolve().parent / "results"
DOC = servers.ROOT / "docs" / "benchmarks.md"
#: Every scenario, in the order of the default run.
SCENARIOS = ["fanout", "jobs", "workers", "enqueue", "page", "capacity", "output", "scaleout"]
#: Seconds after which no new run of these scenarios starts (full size; --quick: a third).
ALLOWANCES = {
    "workers": 420.0,
    "enqueue": 240.0,
    "page": 150.0,
    "capacity": 900.0,  # 12.9 minutes at full size (12-04 18:59), the host's ramps included
    "output": 180.0,
    "scaleout": 360.0,  # 3.7 minutes at full size (12-04 18:59), the dense fan-out included
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    names = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    parser.add_argument("--quick", action="store_true", help="a 1–2 minute smoke run")
    parser.add_argument("--streams", type=ints, help="stream counts N (default 100,1000,5000)")
    parser.add_argument(
        "--systems",
        type=names,
        default=["stock", "myapp", "bare"],
        help=f"of {','.join(fanout.SYSTEMS)} (default stock,myapp,bare)",
    )
    parser.add_argument("--users", type=int, default=10, help="users the streams are spread over")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s published in total")
    parser.add_argument("--duration", type=float, help="seconds of publishing per run (default 8)")
    parser.add_argument("--repeats", type=int, help="repeats per N and system (default 3)")
    parser.add_argument(
        "--large-repeats",
        type=int,
        help="repeats at N >= 5,000, where each saturated run reopens every stream (default 2)",
    )
    parser.add_argument(
        "--open-concurrency", type=int, default=50, help="streams opened at a time (default 50)"
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=1000,
        help="myapp streams opened all at once, once, at the smallest N (0: no)",
    )
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait for stragglers")
    parser.add_argument(
        "--bare-client",
        choices=["raw", "redis-py"],
        default="raw",
        help="bare subscribers: raw RESP (default) or redis.asyncio",
    )
    parser.add_argument(
        "--scenarios",
        type=names,
        default=list(SCENARIOS),
        help=f"of {','.join(SCENARIOS)} (default all)",
    )
    parser.add_argument("--jobs", type=int, help="jobs per batch (default 200)")
    parser.add_argument("--job-workers", type=int, help="RQ worker processes (default 20)")
    parser.add_argument("--job-repeats", type=int, help="repeats of the job batches (default 3)")
    parser.add_argument("--enqueue-requests", type=int, help="requests per enqueue run (500)")
    parser.add_argument(
        "--enqueue-concurrency", type=ints, help="connections at a time (default 1,8)"
    )
    parser.add_argument(
        "--enqueue-systems",
        type=names,
        default=list(enqueue.SYSTEMS),
        help=f"of {','.join(enqueue.SYSTEMS)} (default all)",
    )
    parser.add_argument("--enqueue-repeats", type=int, help="repeats of the enqueue runs (3)")
    parser.add_argument(
        "--updates",
        type=ints,
        help="progress.update calls per job for the database writes (default 100,1000,10000)",
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL server; the bench creates and drops a database of its own on it",
    )
    parser.add_argument(
        "--worker-kinds",
        type=names,
        default=list(workers.KINDS),
        help=f"of {','.join(workers.KINDS)} (default all)",
    )
    parser.add_argument("--worker-count", type=int, help="workers of each kind (default 10)")
    parser.add_argument("--worker-jobs", type=int, help="jobs per worker batch (default 40)")
    parser.add_argument("--worker-repeats", type=int, help="repeats of the worker batches (2)")
    parser.add_argument("--page-jobs", type=int, help="jobs watched at once (default 4)")
    parser.add_argument("--page-steps", type=int, help="updates per job, 0.25 s apart (40)")
    parser.add_argument("--page-repeats", type=int, help="repeats of the page run (default 3)")
    parser.add_argument(
        "--capacity-steps", type=ints, help="idle streams to ramp through (2500,5000,10000)"
    )
    parser.add_argument(
        "--capacity-host",
        type=ints,
        help="STREAMS,PROCESSES: idle streams over several web processes (100000,7; 0 skips)",
    )
    parser.add_argument(
        "--probe-seconds", type=float, help="seconds of /healthz probing per probe (default 5)"
    )
    parser.add_argument("--output-jobs", type=int, help="jobs writing output at once (100)")
    parser.add_argument("--output-streams", type=int, help="streams watching them (1000)")
    parser.add_argument("--output-rate", type=float, help="tokens a second per job (200)")
    parser.add_argument("--output-seconds", type=float, help="seconds each job writes (10)")
    parser.add_argument(
        "--output-workers", type=int, help="rq worker-pool members (default: one per job)"
    )
    parser.add_argument("--panels", type=int, help="output panels filled in the page (10)")
    parser.add_argument(
        "--panel-bytes", type=int, help="characters written into each panel (100000)"
    )
    parser.add_argument(
        "--scale-processes", type=ints, help="gunicorn worker processes P (default 1,2,4)"
    )
    parser.add_argument("--scale-users", type=int, help="users, one stream each (2000)")
    parser.add_argument("--scale-repeats", type=int, help="repeats of each P's run (3)")
    parser.add_argument(
        "--scale-dense", type=int, help="streams of the dense fan-out over 10 users (5000; 0 skips)"
    )
    parser.add_argument(
        "--budget", type=float, help="seconds the fan-out and job scenarios may take (default 600)"
    )
    parser.add_argument("--output", type=Path, help="the Markdown file to write")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RAW_JSON",
        help="only write the Markdown again from a run's raw figures",
    )
    args = parser.parse_args(argv)
    for option, known in (
        ("scenarios", SCENARIOS),
        ("systems", fanout.SYSTEMS),
        ("enqueue_systems", enqueue.SYSTEMS),
        ("worker_kinds", workers.KINDS),
    ):
        unknown = [name for name in getattr(args, option) if name not in known]
        if unknown:
            parser.error(f"--{option.replace('_', '-')}: unknown {', '.join(unknown)}")
    quick = args.quick
    defaults = {
        "streams": [100, 1000] if quick else [100, 1000, 5000],
        "duration": 3.0 if quick else 8.0,
        "repeats": 1 if quick else 3,
        "large_repeats": 1 if quick else 2,
        "jobs": 30 if quick else 200,
        "job_workers": 10 if quick else 20,
        "job_repeats": 1 if quick else 3,
        "enqueue_requests": 100 if quick else 500,
        "enqueue_concurrency": [1, 8],
        "enqueue_repeats": 1 if quick else 3,
        "updates": [100, 1000, 10000],
        "worker_count": 4 if quick else 10,
        "worker_jobs": 8 if quick else 40,
        "worker_repeats": 1 if quick else 2,
        "page_jobs": 4,
        "page_steps": 12 if quick else 40,
        "page_repeats": 1 if quick else 3,
        "capacity_steps": [500, 1000] if quick else [2500, 5000, 10000],
        "capacity_host": [2000, 2] if quick else [100_000, 7],
        "probe_seconds": 2.0 if quick else 5.0,
        "output_jobs": 10 if quick else 100,
        "output_streams": 100 if quick else 1000,
        "output_rate": 50.0 if quick else 200.0,
        "output_seconds": 3.0 if quick else 10.0,
        "panels": 2 if quick else 10,
        "panel_bytes": 20_000 if quick else 100_000,
        "scale_processes": [1, 2, 4],
        "scale_users": 100 if quick else 2000,
        "scale_repeats": 1 if quick else 3,
        "scale_dense": 500 if quick else 5000,
        "budget": 150.0 if quick else 600.0,
        "output": RESULTS / "quick.md" if quick else DOC,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.output_workers is None:
        args.output_workers = args.output_jobs
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.render:
        args.output.write_text(report.render(json.loads(args.render.read_text())))
        print(f"wrote {args.output} from {args.render}")
        return 0
    servers.raise_nofile()
    # A hard stop well past the budget, in case something hangs: the exception
    # unwinds every ``finally``, which stops every process we started.
    signal.signal(signal.SIGALRM, _overdue)
    signal.signal(signal.SIGTERM, _stopped)  # so that a SIGTERM also runs the finally blocks
    scale = 1 / 3 if args.quick else 1.0
    allowance = {k: v * scale for k, v in ALLOWANCES.items() if k in args.scenarios}
    signal.alarm(int(args.budget + sum(allowance.values())) + 240)
    started = time.monotonic()
    start_utc = datetime.datetime.now(datetime.UTC)
    log = lambda text: print(f"[{time.monotonic() - started:5.0f}s] {text}", flush=True)  # noqa: E731
    results: dict = {
        "command": shlex.join(["python", "-m", "bench", *argv]),
        "started": start_utc.strftime("%Y-%m-%d %H:%M"),
        "load_start": report.load_average(),
        "options": {
            "streams": args.streams,
            "systems": args.systems,
            "users": args.users,
            "rate": args.rate,
            "duration": args.duration,
            "repeats": args.repeats,
            "large_repeats": args.large_repeats,
            "drain": args.drain,
            "bare_client": args.bare_client,
            "open_concurrency": args.open_concurrency,
            "burst": args.burst,
        },
        "notes": [],
    }
    # No fan-out run starts after fanout_deadline (a run at 5,000 streams takes up to
    # ~40 s), no job batch after jobs_deadline (a batch takes up to ~15 s, and the
    # workers ~10 s to stop): the job scenario gets what the fan-out leaves.
    jobs_share = 0.0 if "jobs" not in args.scenarios else (35.0 if args.quick else 90.0)
    fanout_deadline = started + args.budget - jobs_share - (10 if args.quick else 40)
    jobs_deadline = started + args.budget - (15 if args.quick else 30)
    with tempfile.TemporaryDirectory(prefix="myapp-bench-") as tmp:
        workdir = Path(tmp)
        db_path = workdir / "myapp.db"
        log(f"creating {args.users} users with `flask --app app user create`")
        env = servers.service_env("redis://127.0.0.1:1/0", f"sqlite:///{db_path}")
        users = servers.create_users(env, db_path, [f"bench-user-{i}" for i in range(args.users)])
        results["redis_version"] = _redis_version(workdir)
        if "fanout" in args.scenarios:
            log(f"fan-out: N = {args.streams}, systems {args.systems}")
            opts = fanout.Options(
                streams=args.streams,
                systems=args.systems,
                users=args.users,
                rate=args.rate,
                duration=args.duration,
                repeats=args.repeats,
                large_repeats=args.large_repeats,
                drain=args.drain,
                bare_client=args.bare_client,
                deadline=fanout_deadline,
                open_concurrency=args.open_concurrency,
                burst=args.burst,
                log=log,
            )
            results["fanout"] = fanout.run(opts, workdir, db_path, users)
        if "jobs" in args.scenarios:
            log(f"job overhead: {args.jobs} jobs per batch on {args.job_workers} workers")
            jopts = jobs.JobOptions(
                jobs=args.jobs,
                workers=args.job_workers,
                repeats=args.job_repeats,
                deadline=jobs_deadline,
                log=log,
            )
            results["jobs"] = jobs.run(jopts, workdir, db_path, users)
        if "workers" in args.scenarios:
            log(f"worker classes: {args.worker_kinds}, {args.worker_count} workers each")
            wopts = workers.WorkerOptions(
                kinds=args.worker_kinds,
                workers=args.worker_count,
                jobs=args.worker_jobs,
                repeats=args.worker_repeats,
                deadline=time.monotonic() + allowance["workers"],
                log=log,
            )
            results["workers"] = workers.run(wopts, workdir, db_path, users)
        if "page" in args.scenarios:
            log(f"latency to the page: {args.page_jobs} jobs of {args.page_steps} updates")
            popts = page.PageOptions(
                jobs=args.page_jobs,
                steps=args.page_steps,
                repeats=args.page_repeats,
                deadline=time.monotonic() + allowance["page"],
                log=log,
            )
            results["page"] = page.run(popts, workdir, db_path, users)
        if "enqueue" in args.scenarios:
            log(f"enqueue path: {args.enqueue_systems}, concurrency {args.enqueue_concurrency}")
            eopts = enqueue.EnqueueOptions(
                requests=args.enqueue_requests,
                concurrency=args.enqueue_concurrency,
                repeats=args.enqueue_repeats,
                systems=args.enqueue_systems,
                postgres_url=args.postgres_url,
                updates=args.updates,
                write_repeats=1 if args.quick else 2,
                paced_seconds=1.0 if args.quick else 3.0,
                deadline=time.monotonic() + allowance["enqueue"],
                log=log,
            )
            results["enqueue"] = enqueue.run(eopts, workdir, db_path, users)
        if "capacity" in args.scenarios:
            log(f"capacity: idle streams {args.capacity_steps}, host {args.capacity_host}")
            host_streams, host_processes = (*args.capacity_host, 1)[:2]
            copts = capacity.CapacityOptions(
                steps=args.capacity_steps,
                host_streams=host_streams,
                host_processes=host_processes,
                probe_seconds=args.probe_seconds,
                probes=1 if args.quick else 3,
                deadline=time.monotonic() + allowance["capacity"],
                log=log,
            )
            results["capacity"] = capacity.run(copts, workdir, db_path, users)
        if "output" in args.scenarios:
            log(
                f"output streams: {args.output_jobs} jobs × {args.output_rate:g} tokens/s, "
                f"{args.output_streams} streams"
            )
            oopts = output.OutputOptions(
                jobs=args.output_jobs,
                users=args.users,
                streams=args.output_streams,
                rate=args.output_rate,
                seconds=args.output_seconds,
                workers=args.output_workers,
                write_jobs=3 if args.quick else 10,
                write_seconds=2.0 if args.quick else 5.0,
                panels=args.panels,
                panel_bytes=args.panel_bytes,
                drain=2.0 if args.quick else 5.0,
                deadline=time.monotonic() + allowance["output"],
                log=log,
            )
            results["output"] = output.run(oopts, workdir, db_path, users)
        if "scaleout" in args.scenarios:
            log(
                f"scale-out: P = {args.scale_processes} web processes, {args.scale_users} "
                f"users × 1 stream, {args.rate:g} events/s"
            )
            sopts = scaleout.ScaleOptions(
                processes=args.scale_processes,
                users=args.scale_users,
                rate=args.rate,
                duration=args.duration,
                repeats=args.scale_repeats,
                dense_streams=args.scale_dense,
                drain=args.drain,
                deadline=time.monotonic() + allowance["scaleout"],
                log=log,
            )
            results["scaleout"] = scaleout.run(sopts, workdir, db_path)
    results["elapsed"] = time.monotonic() - started
    results["load_end"] = report.load_average()
    results["machine"] = report.machine(results["redis_version"])
    if args.output == DOC:
        merge_earlier(results)
    RESULTS.mkdir(exist_ok=True)
    raw = RESULTS / f"{start_utc.strftime('%Y%m%dT%H%M%S')}{'-quick' if args.quick else ''}.json"
    raw.write_text(json.dumps(results, indent=1))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report.render(results))
    log(f"wrote {args.output} (raw figures: {raw})")
    return 0


def merge_earlier(results: dict) -> None:
    """Fill in the scenarios this run left out from the newest full run that has them,
    so that docs/benchmarks.md always shows every scenario (each says which run); one
    that no raw figures have keeps what docs/benchmarks.md shows (:mod:`bench.carried`)."""
    for path in sorted(RESULTS.glob("*.json"), reverse=True):
        if path.stem.endswith("-quick"):
            continue
        earlier = json.loads(path.read_text())
        for key in SCENARIOS:
            if key in results or key not in earlier:
                continue
            results[key] = earlier[key]
            source = earlier.get("earlier", {}).get(key) or {
                "file": path.name,
                "started": earlier["started"],
                "command": earlier["command"],
                "options": earlier["options"],
                "load": f"{earlier['load_start']} / {earlier['load_end']}",
            }
            results.setdefault("earlier", {})[key] = source
    missing = [key for key in SCENARIOS if key not in results]
    if missing and DOC.exists():
        shown = carried.from_document(DOC.read_text())
        kept = {key: shown[key] for key in missing if key in shown}
        if kept:
            results["kept"] = kept


class Overdue(BaseException):
    """A BaseException, so that no ``except Exception`` on the way swallows it."""


def _overdue(signum, frame):
    raise Overdue("the run went far past its --budget; everything started was stopped")


def _stopped(signum, frame):
    raise Overdue("stopped by SIGTERM; everything started was stopped")


def _redis_version(workdir: Path) -> str:
    redis = servers.start_redis(workdir / "redis-version", "version")
    try:
        return redis.info()["redis_version"]
    finally:
        redis.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
