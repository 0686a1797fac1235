"""A worker killed at each point of a job's life: the job ends, and a job that had
not started yet runs after all (see :mod:`myapp.worker.reaper`).

Each case starts a worker that kills its whole process group at one point of its
first job (``tests/dying_worker.py``), then a healthy worker on the same queue.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

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
