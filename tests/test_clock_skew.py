"""Workers whose clocks are wrong: 30 s and 3 s behind and ahead of the web's, beside one
in sync, all in one run, each under a real libfaketime.

Order comes from versions, not clocks (:mod:`myapp.ordering`), and times are read on
the clock every process shares (:mod:`myapp.clock`). So the API and the stream must
show exactly what an all-in-sync deployment shows: every state, in order, each job
ended, its record and its last event the same JSON, its times true to the second,
and no live worker taken for dead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from myapp.job_json import TERMINAL, parse_time
from tests.conftest import wait_until
from tests.jobs import album, submit
from tests.records import state_of
from tests.rig import Rig, skewed
from tests.sse_client import Stream, ended, last, snapshot_sent

#: Each worker's clock, in seconds from the true one; 0 is a worker in sync.
SKEWS = (0, -30, -3, 3, 30)


@pytest.fixture(scope="module")
def rig(service_env):
    """One web process in sync and a worker on each clock of :data:`SKEWS`."""
    # One user's five jobs run at once, one on each worker.
    made = Rig(
        {
            **service_env,
            "RQ_QUEUE": f"skew-{uuid.uuid4().hex[:8]}",
            "MAX_RUNNING_JOBS_PER_USER": "5",
        }
    )
    try:
        made.start_web()
        made.skew_of_pid = {made.start_worker(**skewed(s)).pid: s for s in SKEWS}
        wait_until(lambda: len(made.live_workers()) == len(SKEWS), 30)
        yield made
    finally:
        made.stop()


@pytest.fixture
def watched(rig, accounts):
    """A user of this test and their stream, its snapshot arrived; closed afterwards."""
    user = accounts.create()
    stream = Stream(f"{rig.base}/stream", user.headers)
    stream.wait_for(snapshot_sent, timeout=5)
    yield user, stream
    stream.close()


def one_per_clock(rig, user, params) -> list[dict]:
    """A process_run for each worker: all are idle, so each takes one and is busy after."""
    return [submit(rig.base, user, "process_run", params) for _ in SKEWS]


def true_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def skew_of_worker(rig, job_id: str) -> int:
    """The clock skew of the worker that ran the job."""
    job = Job.fetch(job_id, connection=rig.redis, serializer=JSONSerializer)
    pids = {w.name: w.pid for w in Worker.all(connection=rig.redis)}
    return rig.skew_of_pid[pids[job.worker_name]]


def api(rig, account, job_id) -> dict:
    response = requests.get(f"{rig.base}/api/jobs/{job_id}", headers=account.headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def post(rig, account, path) -> requests.Response:
    return requests.post(f"{rig.base}{path}", headers=account.headers, timeout=10)


def running(stream, job_id, after=0, steps=2):
    """A predicate: past the job's first ``after`` events, it ran ``steps`` steps."""
    return lambda _: any(
        e["status"] == "started" and (e["progress"]["done"] or 0) >= steps
        for e in stream.job_events(job_id)[after:]
    )


def heard(stream, job_id, status, after):
    """A predicate: the job was ``status`` in one of its events past the first ``after``."""
    return lambda _: status in [e["status"] for e in stream.job_events(job_id)[after:]]


def assert_in_order(stream, job_id):
    """Each event of the job is newer than the one before it, and no run's bar moved back."""
    events = stream.job_events(job_id)
    versions = [e["version"] for e in events]
    assert versions == sorted(set(versions)), versions
    done = 0
    for event in events:
        if event["status"] == "queued":
            done = 0  # a new run
        elif event["status"] == "started":
            assert (event["progress"]["done"] or 0) >= done, events
            done = event["progress"]["done"] or 0


def assert_one_truth(rig, account, stream, job_ids, earliest, latest):
    """Each job's record, its last event, a replay and a snapshot are the same JSON;
    its times are true ones (a skewed worker's own clock would put them 30 s off)."""
    records = {job_id: state_of(api(rig, account, job_id)) for job_id in job_ids}
    for job_id, record in records.items():
        assert record == last(stream, job_id)
        for name in ("created_at", "started_at", "ended_at", "updated_at"):
            if record[name] is not None:
                at = parse_time(record[name]).timestamp()
                assert earliest.timestamp() - 1 <= at <= latest.timestamp() + 1, name
    first = next(e.id for e in stream.events if e.type == "job")
    with_replay = Stream(f"{rig.base}/stream", {**account.headers, "Last-Event-ID": first})
    fresh = Stream(f"{rig.base}/stream", account.headers)
    try:
        with_replay.wait_for(
            lambda _: all(with_replay.job_events(j)[-1:] == [records[j]] for j in job_ids)
        )
        assert not snapshot_sent(with_replay.events)  # a replay, not a snapshot
        fresh.wait_for(snapshot_sent, timeout=5)
        snapshot = next(e.json() for e in fresh.events if e.type == "snapshot")
        in_snapshot = {j["id"]: state_of(j) for j in snapshot["jobs"] if j["id"] in records}
        assert in_snapshot == records
    finally:
        with_replay.close()
        fresh.close()


def test_libfaketime_moves_the_clock_of_a_process():
    """The skew is real: a process under it reads a clock that far off."""
    for seconds in (-30, 30):
        read = subprocess.run(
            [sys.executable, "-c", "import time; print(time.time())"],
            env={**os.environ, **skewed(seconds)}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert abs(float(read.stdout) - time.time() - seconds) < 2


def test_skewed_workers_beat_on_the_shared_clock(rig):
    """RQ reads the shared clock too: no live worker's heartbeat looks old."""
    for found in rig.live_workers():
        beat = found.last_heartbeat.replace(tzinfo=None)
        assert abs((beat - true_now()).total_seconds()) < 5, (found.name, beat)


def test_progress_on_every_clock_ends_as_in_sync(rig, watched):
    alice, stream = watched
    earliest = true_now()
    jobs = one_per_clock(rig, alice, {"steps": 8, "step_seconds": 0.25})
    for job in jobs:
        stream.wait_for(ended(stream, job["id"]), timeout=60)
    latest = true_now()
    assert {skew_of_worker(rig, job["id"]) for job in jobs} == set(SKEWS)
    for job in jobs:
        statuses = [e["status"] for e in stream.job_events(job["id"])]
        assert statuses[-1] == "finished"
        assert "started" in statuses
        assert_in_order(stream, job["id"])
        record = api(rig, alice, job["id"])
        assert record["progress"]["done"] == 8
        assert record["started_at"] <= record["ended_at"]
    assert_one_truth(rig, alice, stream, [job["id"] for job in jobs], earliest, latest)


def test_cancel_and_retry_on_every_clock_reach_the_stream(rig, watched):
    """The web's cancel and retry are newer than a skewed worker's states, both ways."""
    alice, stream = watched
    earliest = true_now()
    jobs = one_per_clock(rig, alice, {"steps": 400, "step_seconds": 0.05})
    for job in jobs:
        stream.wait_for(running(stream, job["id"]), 30)
    assert {skew_of_worker(rig, job["id"]) for job in jobs} == set(SKEWS)
    for job in jobs:
        answer = post(rig, alice, f"/api/jobs/{job['id']}/cancel")
        assert answer.status_code == 202, answer.text
    marks = {}
    for job in jobs:
        stream.wait_for(heard(stream, job["id"], "canceled", marks.get(job["id"], 0)), 30)
        assert api(rig, alice, job["id"])["status"] == "canceled"
    # Nothing of the canceled run comes after its cancel.
    time.sleep(1)
    for job in jobs:
        assert last(stream, job["id"])["status"] == "canceled"
        assert_in_order(stream, job["id"])

    marks.update({job["id"]: len(stream.job_events(job["id"])) for job in jobs})
    for job in jobs:
        assert post(rig, alice, f"/api/jobs/{job['id']}/retry").status_code == 202
    for job in jobs:
        stream.wait_for(heard(stream, job["id"], "queued", marks[job["id"]]), timeout=10)
        stream.wait_for(running(stream, job["id"], marks[job["id"]]), 30)
        assert post(rig, alice, f"/api/jobs/{job['id']}/cancel").status_code == 202
    for job in jobs:
        stream.wait_for(heard(stream, job["id"], "canceled", marks.get(job["id"], 0)), 30)
        assert_in_order(stream, job["id"])
    assert_one_truth(rig, alice, stream, [job["id"] for job in jobs], earliest, true_now())


def test_a_batch_and_a_sequence_across_every_clock_end_as_in_sync(rig, watched):
    alice, stream = watched
    earliest = true_now()
    batch = submit(rig.base, alice, "publish_album", album(15, rejected={4}, latency_ms=200))
    sequence = submit(rig.base, alice, "generate_profile", {"stage_seconds": 0.3, "name": "Ada"})
    for parent in (batch, sequence):
        stream.wait_for(ended(stream, parent["id"]), timeout=90)
    latest = true_now()

    done = last(stream, batch["id"])
    assert done["status"] == "failed" and done["error"] == "1 of 15 failed"
    assert done["counts"]["finished"] == 14 and done["counts"]["failed"] == 1
    ran_on = {skew_of_worker(rig, child) for child in batch["children"]}
    assert len(ran_on) > 1  # the pieces were spread over clocks
    profile = last(stream, sequence["id"])
    assert profile["status"] == "finished", profile["error"]
    stages = [api(rig, alice, stage) for stage in profile["children"]]
    for earlier, later in zip(stages, stages[1:], strict=False):
        assert earlier["ended_at"] <= later["started_at"]
    for job_id in [batch["id"], sequence["id"], *batch["children"], *profile["children"]]:
        assert api(rig, alice, job_id)["status"] in TERMINAL
        assert_in_order(stream, job_id)
    assert_one_truth(rig, alice, stream, [batch["id"], sequence["id"]], earliest, latest)
