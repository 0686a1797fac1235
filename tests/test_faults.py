"""Faults on the real stack: workers killed again and again, Redis restarted with
everything in it lost, stream clients dropped at random.

Each test runs its own web server and workers on a queue of its own (and, for the
Redis restart, a Redis of its own), so the faults stay inside the test.
"""

from __future__ import annotations

import random
import time
import uuid

import pytest
import requests
from rq.job import Job
from rq.serializers import JSONSerializer

from myapp.db import db
from myapp.job_json import TERMINAL
from myapp.models import Contact
from tests.conftest import free_port, wait_until
from tests.own_redis import start_redis
from tests.records import records
from tests.rig import Rig
from tests.sse_client import Stream, snapshot_sent


@pytest.fixture
def rig(service_env):
    made = Rig({**service_env, "RQ_QUEUE": f"faults-{uuid.uuid4().hex[:8]}"})
    try:
        yield made
    finally:
        made.stop()


def submit(rig, account, kind, params) -> dict:
    body = {"kind": kind, "params": params}
    response = requests.post(f"{rig.base}/api/jobs", json=body, headers=account.headers, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def all_ended(app, job_ids):
    return lambda: all(row.status in TERMINAL for row in records(app, job_ids).values())


def contact_rows(app, job_id) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(db.select(Contact.row_number).filter_by(job_id=job_id)))


def test_workers_killed_again_and_again_lose_nothing(rig, app, accounts):
    rig.start_web()
    for _ in range(3):
        rig.start_worker()
    wait_until(lambda: len(rig.live_workers()) == 3, 30)
    alice = accounts.create()
    stream = Stream(f"{rig.base}/stream", alice.headers)
    stream.wait_for(snapshot_sent, timeout=5)
    rows = [{"name": f"P{i}", "email": f"p{i}@example.com"} for i in range(6000)]
    imports = [submit(rig, alice, "import_contacts", {"rows": rows})["id"] for _ in range(2)]
    runs = [
        submit(rig, alice, "process_run", {"steps": 40, "step_seconds": 0.1})["id"]
        for _ in range(3)
    ]
    jobs = [*imports, *runs]
    rng, kills = random.Random(1), 0
    deadline = time.monotonic() + 40
    while kills < 6 and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.2, 1.2))
        busy = [w for w in rig.live_workers() if w.get_current_job_id() in jobs]
        if busy:
            rig.kill(rng.choice(busy))
            rig.start_worker()
            kills += 1
    assert kills >= 3
    try:
        wait_until(all_ended(app, jobs), timeout=120)
        stream.wait_for(
            lambda _: all(stream.job_events(j)[-1:][0]["status"] in TERMINAL for j in jobs), 20
        )
    finally:
        stream.close()

    for job_id, row in records(app, jobs).items():
        # The database, the last event on the stream and RQ (if it still has the
        # job) all say the same.
        assert stream.job_events(job_id)[-1]["status"] == row.status
        try:
            job = Job.fetch(job_id, connection=rig.redis, serializer=JSONSerializer)
            assert job.get_status().value == row.status
        except Exception as exc:  # noqa: BLE001 - RQ forgot it: only the record counts
            assert "No such job" in str(exc) or "NoSuchJob" in type(exc).__name__
        assert row.status in {"finished", "failed"}
        if row.status == "failed":
            assert row.error == "worker died"
    for job_id in imports:
        written = contact_rows(app, job_id)
        assert len(written) == len(set(written))  # never a row twice
        if records(app, [job_id])[job_id].status == "finished":
            assert sorted(written) == list(range(1, len(rows) + 1))  # every row once


def test_a_redis_restart_that_loses_everything_is_ridden_out(service_env, app, accounts, tmp_path):
    port = free_port()
    redis_server = start_redis(port, tmp_path)
    # A queue of its own too: the shared workers' reaper must not take its jobs for theirs.
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    rig = Rig({**service_env, "REDIS_URL": f"redis://127.0.0.1:{port}/0", "RQ_QUEUE": queue})
    try:
        rig.start_web()
        for _ in range(2):
            rig.start_worker()
        wait_until(lambda: len(rig.live_workers()) == 2, 30)
        alice = accounts.create()
        before = Stream(f"{rig.base}/stream", alice.headers)
        before.wait_for(snapshot_sent, timeout=5)
        jobs = [
            submit(rig, alice, "process_run", {"steps": 30, "step_seconds": 0.1})["id"]
            for _ in range(4)
        ]
        before.wait_for(lambda _: any(e["progress"]["done"] for e in before.job_events(jobs[0])))

        redis_server.kill()  # everything in Redis is gone: no persistence
        redis_server.wait()
        time.sleep(1)
        redis_server = start_redis(port, tmp_path)

        # Every job ends, in the database: done, or failed because it was running (its
        # kind is not retried). Nothing hangs.
        wait_until(all_ended(app, jobs), timeout=90)
        for row in records(app, jobs).values():
            assert row.status == "finished" or row.error in (
                "lost: Redis no longer has this job; it was running, and process_run jobs are "
                "not retried",
                "worker died",
            ), (row.status, row.error)
        # The stream that was open was ended, so its client reconnects; a new one
        # starts from a snapshot that agrees with the database.
        before.wait_for(lambda _: before.error is not None or not before._thread.is_alive(), 30)
        after = Stream(f"{rig.base}/stream", alice.headers)
        try:
            (snapshot,) = after.wait_for(snapshot_sent, timeout=10)[:1]
            shown = {job["id"]: job["status"] for job in snapshot.json()["jobs"]}
            assert {job_id: shown[job_id] for job_id in jobs} == {
                job_id: row.status for job_id, row in records(app, jobs).items()
            }
            # Web and workers reconnected by themselves: new work runs to its end.
            again = submit(rig, alice, "process_run", {"steps": 3, "step_seconds": 0.05})
            after.wait_for(
                lambda _: any(e["status"] == "finished" for e in after.job_events(again["id"])), 60
            )
        finally:
            after.close()
            before.close()
    finally:
        rig.stop()
        redis_server.kill()
        redis_server.wait()


def test_clients_dropped_at_random_end_with_every_event_once(server, accounts):
    from myapp.wire import parse_id

    alice = accounts.create()
    whole = Stream(f"{server}/stream", alice.headers)  # never dropped: the reference
    choppy = Stream(f"{server}/stream", alice.headers)
    try:
        whole.wait_for(snapshot_sent, timeout=5)
        (snapshot,) = [e for e in choppy.wait_for(snapshot_sent, timeout=5) if e.type == "snapshot"]
        body = {"kind": "process_run", "params": {"steps": 40, "step_seconds": 0.05}}
        jobs = [
            requests.post(f"{server}/api/jobs", json=body, headers=alice.headers, timeout=10).json()
            for _ in range(3)
        ]
        rng, seen, drops = random.Random(5), [], 0
        last = snapshot.id
        while not all(whole.job_events(j["id"])[-1:] and whole.job_events(j["id"])[-1]["status"]
                      in TERMINAL for j in jobs):  # fmt: skip
            time.sleep(rng.uniform(0.05, 0.4))
            choppy.close()
            drops += 1
            seen += [e.id for e in choppy.events if e.type == "job"]
            last = seen[-1] if seen else last
            choppy = Stream(f"{server}/stream", {**alice.headers, "Last-Event-ID": last})
        expected = [e.id for e in whole.events if e.type == "job" and parse_id(e.id) > parse_id(
            snapshot.id)]  # fmt: skip
        choppy.wait_for(
            lambda events: len(seen) + sum(e.type == "job" for e in events) >= len(expected), 20
        )
        time.sleep(0.3)
        seen += [e.id for e in choppy.events if e.type == "job"]
        assert not [e for e in choppy.events if e.type == "snapshot"]  # replayed, every time
    finally:
        choppy.close()
        whole.close()
    assert drops >= 3
    assert seen == expected  # every event, once, in order
