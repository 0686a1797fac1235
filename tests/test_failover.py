"""Redis failover through Sentinel, on the real stack: a primary, a replica and three
Sentinels (tests/sentinels.py), a gunicorn web server and two ``python worker.py``,
all finding the primary through the Sentinels. The primary is killed with ``kill -9``
while jobs run and a stream is open, three times in one run."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import requests

from myapp.job_json import TERMINAL
from tests.accounts import Accounts
from tests.conftest import ROOT, wait_until
from tests.jobs import start
from tests.records import records
from tests.resuming import ResumingStream
from tests.rig import Rig
from tests.sentinels import Sentinels

FAILOVERS = 3
#: Seconds /readyz may take to answer 200 again after the primary was killed.
READY_WITHIN = 15.0


def ready(base: str) -> bool:
    return requests.get(f"{base}/readyz", timeout=20).status_code == 200


def test_jobs_streams_and_readiness_ride_out_failovers(service_env, make_app, tmp_path):
    sentinels = Sentinels(tmp_path).start()
    env = {name: value for name, value in service_env.items() if name != "REDIS_URL"}
    # A running job's heartbeat lasts half of WORKER_DEATH_SECONDS: at the tests' 6 s, a
    # failover's few seconds let RQ take a live job for dead (its finish wins, by version).
    # A queue of its own: the session's workers (another Redis, the same database) leave
    # its records to its own reaper (myapp.worker.reaper).
    queue = f"failover-{uuid.uuid4().hex[:8]}"
    rig = Rig({**env, **sentinels.env, "RQ_QUEUE": queue, "WORKER_DEATH_SECONDS": "20"})
    watcher = watch = None
    watched = tmp_path / "watch.out"
    try:
        app = make_app(REDIS_URL=None, **sentinels.env)
        accounts = Accounts(app)
        alice, admin = accounts.create(), accounts.create(admin=True)
        rig.start_web()
        for _ in range(2):
            rig.start_worker()
        wait_until(lambda: ready(rig.base), 30)
        watcher = ResumingStream(f"{rig.base}/stream", alice.headers)
        wait_until(watcher.snapshots, 10)

        jobs, figures = [], []
        for n in range(FAILOVERS):
            batch = [start(rig.base, alice, steps=30, step_seconds=0.1)["id"] for _ in range(3)]
            jobs += batch
            if n == 0:
                # The terminal follows the last of them through every failover.
                with watched.open("w") as out:
                    watch = subprocess.Popen(
                        [sys.executable, "-m", "flask", "--app", "app", "jobs", "watch",
                         batch[-1]], cwd=ROOT, env=rig.env, stdout=out, stderr=subprocess.STDOUT,
                    )  # fmt: skip
            first = batch[0]
            wait_until(lambda: watcher.latest().get(first, {}).get("status") == "started", 20)  # noqa: B023
            opened = watcher.opened

            old, killed_at = sentinels.kill_primary()
            # A readiness check made during the failover waits for the new primary.
            wait_until(lambda: ready(rig.base), READY_WITHIN, interval=0.1)
            readied = time.monotonic() - killed_at
            sentinels.wait_for_new_primary(old)
            promoted = time.monotonic() - killed_at
            # The stream was ended and opened again, on the new primary.
            wait_until(lambda: watcher.opened > opened, 20)  # noqa: B023
            resumed = time.monotonic() - killed_at
            figures.append((promoted, readied, resumed))
            print(
                f"failover {n + 1}: new primary after {promoted:.1f} s, /readyz 200 after "
                f"{readied:.1f} s, stream open again after {resumed:.1f} s"
            )
            sentinels.restart_as_replica(old)

        # Every job ends finished: in the API, in its record, and on the stream
        # (live, or in the snapshot it got after the subscription came back).
        def all_finished():
            answers = [
                requests.get(f"{rig.base}/api/jobs/{job_id}", headers=alice.headers, timeout=20)
                for job_id in jobs
            ]
            return all(a.ok and a.json()["status"] in TERMINAL for a in answers) and answers

        answers = wait_until(all_finished, 90)
        assert [a.json()["status"] for a in answers] == ["finished"] * len(jobs)
        assert {row.status for row in records(app, jobs).values()} == {"finished"}
        assert len(records(app, jobs)) == len(jobs)
        wait_until(lambda: all(watcher.latest()[j]["status"] == "finished" for j in jobs), 30)
        # No job was ever taken for dead (or lost) on the way.
        told = [e.json() for e in watcher.events if e.type == "job"]
        assert not [job for job in told if job["status"] == "failed"]
        # Every failover ended the stream; it resumed from a snapshot each time.
        assert watcher.opened >= 1 + FAILOVERS
        assert len(watcher.snapshots()) >= 1 + FAILOVERS
        watch.wait(timeout=30)
        output = watched.read_text()
        assert watch.returncode == 0, output
        assert output.strip().endswith(f"{jobs[2]}: finished"), output
        # rq-dashboard follows the primary too.
        dashboard = requests.get(f"{rig.base}/rq/0/data/queues.json", headers=admin.headers,
                                 timeout=20)  # fmt: skip
        assert dashboard.status_code == 200, dashboard.text
        assert all(readied < READY_WITHIN for _, readied, _ in figures)
    finally:
        if watcher is not None:
            watcher.close()
        if watch is not None and watch.poll() is None:
            watch.kill()
            watch.wait()
        rig.stop()
        sentinels.stop()
