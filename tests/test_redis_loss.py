"""Redis loses data, no job is lost: jobs whose RQ copy vanished (a ``FLUSHALL`` here,
as a Redis restarted empty or a failover that dropped the last writes) are rebuilt
from their records by the reaper (:func:`myapp.jobs.control.rebuild`).

The tests share a web server, on a Redis and a queue of their own, and start their
own workers; each flushes that Redis, never the one the other tests share.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
import requests

from myapp import job_json
from myapp.connections import fetch_job, get_queue
from myapp.db import db
from myapp.job_json import TERMINAL
from myapp.jobs.control import LOST
from myapp.keys import admitted_key, channel_for
from myapp.models import Contact, TrackedJob, Upload
from myapp.worker import reaper
from tests.conftest import free_port, wait_until
from tests.jobs import album
from tests.own_redis import start_redis
from tests.records import records, user_id
from tests.rig import Rig
from tests.sse_client import Stream, snapshot_sent

#: The test services' WORKER_DEATH_SECONDS: a lost job is back within it.
DEATH_SECONDS = 6.0


@pytest.fixture(scope="module")
def rig(service_env, tmp_path_factory):
    port = free_port()
    server = start_redis(port, tmp_path_factory.mktemp("lossy-redis"))
    env = {
        **service_env,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "RQ_QUEUE": f"loss-{uuid.uuid4().hex[:8]}",
        "WORKER_DEATH_SECONDS": str(DEATH_SECONDS),
    }
    made = Rig(env)
    try:
        made.start_web()
        yield made
    finally:
        made.stop()
        server.kill()
        server.wait()


@pytest.fixture
def lossy(rig):
    """The rig, its workers stopped after the test."""
    yield rig
    for worker in rig.workers:
        kill(worker)
    rig.workers.clear()


def kill(worker) -> None:
    """``kill -9`` a worker and its work horse, as losing its host would."""
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended by itself
    worker.wait(timeout=30)


def start_worker(rig) -> None:
    rig.start_worker()
    wait_until(lambda: len(rig.live_workers()) == 1, 30)


def submit(rig, account, kind, params) -> str:
    body = {"kind": kind, "params": params}
    response = requests.post(f"{rig.base}/api/jobs", json=body, headers=account.headers, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def open_stream(rig, account) -> Stream:
    stream = Stream(f"{rig.base}/stream", account.headers)
    stream.wait_for(snapshot_sent, timeout=10)
    return stream


def statuses(stream: Stream, job_id: str, after: int = 0) -> list[str]:
    """The job's statuses on the stream past its first ``after`` events, each once
    in a row (progress repeats ``started``)."""
    seen: list[str] = []
    for event in stream.job_events(job_id)[after:]:
        if seen[-1:] != [event["status"]]:
            seen.append(event["status"])
    return seen


def flush(rig) -> None:
    """Everything in the rig's Redis is gone, the web and workers still connected."""
    rig.redis.flushall()


def ended(app, job_ids):
    return lambda: all(row.status in TERMINAL for row in records(app, job_ids).values())


def test_queued_jobs_that_redis_lost_run_after_all(lossy, app, accounts):
    alice = accounts.create()
    stream = open_stream(lossy, alice)
    try:
        jobs = [
            submit(lossy, alice, "process_run", {"steps": 3, "step_seconds": 0.01})
            for _ in range(3)
        ]
        stream.wait_for(lambda _: all(statuses(stream, job) for job in jobs))
        flush(lossy)
        before = {job: len(stream.job_events(job)) for job in jobs}
        start_worker(lossy)
        started = time.monotonic()
        # Back in RQ within WORKER_DEATH_SECONDS of a worker being there to see it.
        stream.wait_for(lambda _: all(statuses(stream, j, before[j]) for j in jobs), DEATH_SECONDS)
        rebuilt_after = time.monotonic() - started
        wait_until(ended(app, jobs), 30)
        stream.wait_for(lambda _: all(statuses(stream, j)[-1] == "finished" for j in jobs))
        for job in jobs:
            assert statuses(stream, job, before[job]) == ["queued", "started", "finished"]
        assert {row.status for row in records(app, jobs).values()} == {"finished"}
        # Each job's place among alice's active jobs came back and went with its end.
        owner = user_id(app, alice)
        assert lossy.redis.scard(admitted_key(channel_for(owner))) == 0
        print(f"three lost queued jobs back in RQ {rebuilt_after:.1f} s after a worker started")
    finally:
        stream.close()


def test_a_running_import_redis_lost_resumes_and_writes_each_row_once(lossy, app, accounts):
    alice = accounts.create()
    rows = [{"name": f"P{i}", "email": f"p{i}@example.com"} for i in range(20000)]
    start_worker(lossy)
    worker = lossy.workers[-1]
    stream = open_stream(lossy, alice)
    try:
        job = submit(lossy, alice, "import_contacts", {"rows": rows})
        wait_until(lambda: len(contact_rows(app, job)) >= 1000, 60)
        kill(worker)  # its host and Redis's data are lost together
        flush(lossy)
        written_before = len(contact_rows(app, job))
        before = len(stream.job_events(job))
        start_worker(lossy)
        stream.wait_for(lambda _: statuses(stream, job, before)[-1:] == ["finished"], 60)
        again = stream.job_events(job)[before:]
        assert again[0]["status"] == "queued"
        assert again[0]["retry"] == {"attempt": 2, "of": 4, "at": None}  # the lost run counts
        # It went on from its checkpoint, committed with the rows written before.
        done = [e["progress"]["done"] for e in again if e["status"] == "started"]
        done = [count for count in done if count is not None]
        assert done and min(done) >= written_before, (written_before, done[:3])
        written = contact_rows(app, job)
        assert written_before < len(rows)
        assert sorted(written) == list(range(1, len(rows) + 1))  # every row, once
    finally:
        stream.close()


def test_a_job_that_runs_on_through_the_loss_is_not_run_twice(lossy, app, accounts):
    alice = accounts.create()
    start_worker(lossy)
    stream = open_stream(lossy, alice)
    try:
        # It runs longer than the reaper's quiet, and reports all along.
        job = submit(lossy, alice, "process_run", {"steps": 40, "step_seconds": 0.15})
        stream.wait_for(lambda _: statuses(stream, job)[-1:] == ["started"])
        flush(lossy)
        before = len(stream.job_events(job))
        stream.wait_for(lambda _: statuses(stream, job, before)[-1:] == ["finished"], 60)
        assert statuses(stream, job, before) == ["started", "finished"]
        assert records(app, [job])[job].status == "finished"
    finally:
        stream.close()


def test_a_batch_puts_back_only_its_unfinished_pieces(lossy, app, accounts):
    alice = accounts.create()
    start_worker(lossy)
    worker = lossy.workers[-1]
    parent = submit(lossy, alice, "publish_album", album(5, latency_ms=400))
    with app.app_context():
        pieces = [
            child.id for child in db.session.get(TrackedJob, parent).children
        ]  # in position order
    wait_until(lambda: sum(r.status == "finished" for r in records(app, pieces).values()) >= 2, 30)
    kill(worker)
    flush(lossy)
    kept = {
        job_id: (row.version, row.ended_at)
        for job_id, row in records(app, pieces).items()
        if row.status == "finished"
    }
    assert 2 <= len(kept) < len(pieces)
    start_worker(lossy)
    wait_until(ended(app, [parent]), 60)
    after = records(app, [parent, *pieces])
    assert after[parent].status == "finished"
    assert all(after[job_id].status == "finished" for job_id in pieces)
    # The pieces that had finished did not run again: not one change since.
    assert {job_id: (after[job_id].version, after[job_id].ended_at) for job_id in kept} == kept


def test_a_sequence_puts_back_its_current_stage_and_the_rest_wait(lossy, app, accounts):
    alice = accounts.create()
    parent = submit(lossy, alice, "generate_profile", {"stage_seconds": 0.2, "seed": 7})
    with app.app_context():
        stages = [child.id for child in db.session.get(TrackedJob, parent).children]
    flush(lossy)
    start_worker(lossy)
    wait_until(ended(app, [parent]), 60)
    rows = records(app, [parent, *stages])
    assert [rows[stage].status for stage in stages] == ["finished"] * len(stages)
    for earlier, later in zip(stages, stages[1:], strict=False):
        assert rows[earlier].ended_at <= rows[later].started_at  # in order, one at a time


def test_what_cannot_be_rebuilt_fails_saying_why(lossy, app, accounts):
    alice = accounts.create()
    owner = user_id(app, alice)
    gone = submit(lossy, alice, "import_contacts", {"rows": [{"name": "A", "email": "a@x.org"}]})
    running = submit(lossy, alice, "process_run", {"steps": 2, "step_seconds": 0})
    old = job_json.utcnow() - timedelta(minutes=5)
    with app.app_context():
        db.session.execute(db.delete(Upload).where(Upload.job_id == gone))
        # A job of a kind since removed, and a process_run that was running.
        vanished = str(uuid.uuid4())
        db.session.add(
            TrackedJob(id=vanished, user_id=owner, kind="retired_kind", params={},
                       status="queued", created_at=old, updated_at=old,
                       queue=lossy.env["RQ_QUEUE"])
        )  # fmt: skip
        db.session.get(TrackedJob, running).status = "started"
        db.session.commit()
    flush(lossy)
    start_worker(lossy)
    jobs = [gone, running, vanished]
    wait_until(ended(app, jobs), 3 * DEATH_SECONDS)
    errors = {job_id: (row.status, row.error) for job_id, row in records(app, jobs).items()}
    assert errors == {
        gone: ("failed", f"{LOST}; its upload is gone"),
        running: ("failed", f"{LOST}; it was running, and process_run jobs are not retried"),
        vanished: ("failed", f"{LOST}; jobs of kind 'retired_kind' can no longer be run"),
    }


def test_only_jobs_rq_lost_and_of_the_reapers_own_queue_are_rebuilt(lossy, make_app, accounts):
    alice = accounts.create()
    job = submit(lossy, alice, "process_run", {"steps": 2, "step_seconds": 0})
    app = make_app(REDIS_URL=lossy.env["REDIS_URL"], RQ_QUEUE=lossy.env["RQ_QUEUE"])
    elsewhere = make_app(REDIS_URL=lossy.env["REDIS_URL"], RQ_QUEUE="another-queue")
    with app.app_context():  # queued for minutes, as behind a long queue
        row = db.session.get(TrackedJob, job)
        row.updated_at = job_json.utcnow() - timedelta(minutes=5)
        db.session.commit()
    version = records(app, [job])[job].version

    def reap(by) -> tuple[str, int]:
        with by.app_context():
            reaper.reap(get_queue(), 1.0, force=True)
        row = records(app, [job])[job]
        return row.status, row.version

    assert reap(app) == ("queued", version)  # RQ has it: nothing to do
    flush(lossy)
    assert reap(elsewhere) == ("queued", version)  # not that reaper's job
    status, rebuilt = reap(app)
    assert status == "queued" and rebuilt > version
    with app.app_context():
        assert fetch_job(job).get_status().value == "queued"


def contact_rows(app, job_id) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(db.select(Contact.row_number).filter_by(job_id=job_id)))
