"""Partitions: one worker cut off from Redis, another from the database, for 10 s in
the middle of a job. Each job ends once, as its record and its stream both say, no
row is written twice, and its progress comes back on the stream with the link.

Each cut is a TCP relay (:mod:`tests.relay`) between one worker and the server; the
web server, the test and the second worker keep a direct link.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
from rq import Retry

from myapp.db import db
from myapp.job_json import TERMINAL
from myapp.models import Contact
from tests.conftest import wait_until
from tests.jobs import enqueue_test_job
from tests.records import records
from tests.relay import RESET, SILENT, Relay
from tests.rig import Rig
from tests.sse_client import Stream, snapshot_sent

#: Seconds each link stays cut.
CUT_SECONDS = 10
#: The paced import: long enough that the job is still running when the link returns.
ROWS, BATCH, PAUSE = 500, 10, 0.2


@pytest.fixture
def rig(service_env):
    made = Rig({**service_env, "RQ_QUEUE": f"partitions-{uuid.uuid4().hex[:8]}"})
    try:
        yield made
    finally:
        made.stop()


def start_on_one_worker(rig, app, alice, retry: Retry | None, **env) -> tuple[Stream, str]:
    """Alice's stream, and a paced import (retried by ``retry``) taken by a worker
    started with ``env``; then a second worker, on direct links."""
    rig.start_web()
    rig.start_worker(**env)
    wait_until(lambda: len(rig.live_workers()) == 1, 30)
    stream = Stream(f"{rig.base}/stream", alice.headers)
    stream.wait_for(snapshot_sent, 5)
    job_id = enqueue_test_job(
        app, alice, "tests.paced_import.run", retry=retry,
        rows=ROWS, batch=BATCH, seconds=PAUSE,
    )  # fmt: skip
    stream.wait_for(lambda _: any(moved(e) for e in stream.job_events(job_id)), 30)
    rig.start_worker()
    wait_until(lambda: len(rig.live_workers()) == 2, 30)
    return stream, job_id


def moved(event: dict) -> bool:
    """A progress event: the job running, with a count."""
    return event["status"] == "started" and (event.get("progress") or {}).get("done") is not None


def cut_for_a_while(relay: Relay, how: str, stream: Stream, job_id: str) -> int:
    """Cut the link for CUT_SECONDS; how many of the job's events came before it returned."""
    relay.cut(how)
    time.sleep(CUT_SECONDS)
    relay.restore()
    return len(stream.job_events(job_id))


def check_the_end(app, stream: Stream, job_id: str, restored_at: int) -> list[dict]:
    """The job finished once: its record, its rows and its stream agree."""
    wait_until(lambda: records(app, [job_id])[job_id].status in TERMINAL, 60, 0.2)
    row = records(app, [job_id])[job_id]
    assert (row.status, row.error) == ("finished", None)
    assert row.result["imported"] == ROWS
    with app.app_context():
        written = list(db.session.scalars(db.select(Contact.row_number).filter_by(job_id=job_id)))
    assert sorted(written) == list(range(1, ROWS + 1))  # every row, once

    stream.wait_for(lambda _: any(e["status"] in TERMINAL for e in stream.job_events(job_id)), 10)
    time.sleep(1)  # a second end, if one were coming, would be on its way by now
    events = stream.job_events(job_id)
    ends = [e for e in events if e["status"] in TERMINAL]
    assert [(e["status"], e["version"]) for e in ends] == [("finished", row.version)]
    assert events[-1] is ends[0]
    versions = [e["version"] for e in events]
    assert versions == sorted(set(versions)), "the stream showed an older state after a newer"
    assert any(moved(e) for e in events[restored_at:-1]), "no progress after the link returned"
    return events


def test_a_worker_cut_off_from_redis_does_not_end_its_job_twice(rig, make_app, accounts):
    """Cut off past its heartbeat, the worker is taken for dead: the reaper retries the
    job on the other worker, which resumes from the checkpoint. When the link returns,
    the first run finds it no longer holds the job and stops, writing nothing."""
    app = make_app(RQ_QUEUE=rig.env["RQ_QUEUE"])
    alice = accounts.create()
    with Relay.to(rig.env["REDIS_URL"]) as relay:
        cut_off = relay.url(rig.env["REDIS_URL"])
        retry = Retry(max=2, interval=1)
        stream, job_id = start_on_one_worker(rig, app, alice, retry, REDIS_URL=cut_off)
        restored_at = cut_for_a_while(relay, SILENT, stream, job_id)
        events = check_the_end(app, stream, job_id, restored_at)
    retried = [e for e in events if e["status"] in ("queued", "scheduled") and e["error"]]
    assert [e["error"] for e in retried] == ["worker died"]
    assert records(app, [job_id])[job_id].result["resumed_at"] > 0
    assert rig.workers[0].poll() is None, "the worker cut off did not survive the cut"


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
    reason="SQLite has no network link to cut; the PostgreSQL run of the suite runs this",
)
def test_a_worker_cut_off_from_the_database_rides_it_out(rig, make_app, accounts):
    """Its connections reset and new ones refused for 10 s: the job's writes wait, its
    body runs again from its checkpoint, and its heartbeat (in Redis) keeps it its own."""
    app = make_app(RQ_QUEUE=rig.env["RQ_QUEUE"])
    alice = accounts.create()
    with Relay.to(rig.env["DATABASE_URL"]) as relay:
        cut_off = relay.url(rig.env["DATABASE_URL"])
        # Not retried: an error the cut caused would fail it.
        stream, job_id = start_on_one_worker(rig, app, alice, None, DATABASE_URL=cut_off)
        restored_at = cut_for_a_while(relay, RESET, stream, job_id)
        events = check_the_end(app, stream, job_id, restored_at)
    assert not [e for e in events if e["status"] in ("queued", "scheduled") and e["error"]]
