"""A worker killed at each point of a job's life: the job ends, and a job that had
not started yet runs after all (see :mod:`myapp.worker.reaper`).

Each case starts a worker that kills its whole process group at one point of its
first job (``tests/dying_worker.py``), then a healthy worker on the same queue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from myapp.job_json import TERMINAL
from myapp.worker import reaper
from tests.conftest import ROOT, wait_until
from tests.records import records
from tests.rig import Rig

#: What the record must end as, for a death at each point.
ENDS = {
    "taken": ("finished", None),  # it never ran: it runs now
    "executing": ("finished", None),
    "started": ("failed", reaper.WORKER_DIED),  # process_run is not retried
    "ended": ("finished", None),  # RQ had its end: the record takes it
}


@pytest.mark.parametrize("point", list(ENDS))
def test_a_job_whose_worker_dies_ends_as_far_as_it_got(point, service_env, make_app, accounts):
    queue = f"deaths-{uuid.uuid4().hex[:8]}"
    app = make_app(RQ_QUEUE=queue)
    rig = Rig({**service_env, "RQ_QUEUE": queue})
    try:
        alice = accounts.create()
        body = {"kind": "process_run", "params": {"steps": 3, "step_seconds": 0.01}}
        response = app.test_client().post("/api/jobs", json=body, headers=alice.headers)
        assert response.status_code == 202, response.text
        job_id = response.json["id"]

        dying = subprocess.Popen(
            [sys.executable, "-m", "tests.dying_worker", point],
            cwd=ROOT, env=rig.env, start_new_session=True,
        )  # fmt: skip
        assert dying.wait(timeout=60) == -9, "the worker did not die where it was told to"
        rig.start_worker()
        wait_until(lambda: records(app, [job_id])[job_id].status in TERMINAL, 60, 0.2)

        row = records(app, [job_id])[job_id]
        assert (row.status, row.error) == ENDS[point]
        if row.status == "finished":
            assert row.result == {"steps": 3}
        assert rig.redis.hget(f"rq:job:{job_id}", "status").decode() == row.status
        assert rig.redis.llen(f"rq:queue:{queue}:intermediate") == 0
    finally:
        rig.stop()


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def running(pid: int) -> bool:
    """Alive, and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_killed_alone_takes_its_scheduler_with_it(service_env):
    """Killed with -9, its process group spared: the scheduler it forked must not go on
    enqueuing by itself, with the code and configuration of its day."""
    rig = Rig({**service_env, "RQ_QUEUE": f"orphans-{uuid.uuid4().hex[:8]}"})
    try:
        worker = rig.start_worker()
        scheduler = wait_until(lambda: children(worker.pid), 30)  # RQ's scheduler process
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        wait_until(lambda: not any(running(pid) for pid in scheduler), 10)
    finally:
        rig.stop()
