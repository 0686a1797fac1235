"""A user's request and a worker's report crossing each other: the job's record
and its stream end in the same state, and an ended job is never undone.

The job sits on a queue no worker reads, and the worker's side of the race is
played by hand at the exact point where it bit in the soak.
"""

from __future__ import annotations

import uuid

import pytest
from rq.job import JobStatus

from myapp import job_json
from myapp.connections import fetch_job
from myapp.db import db
from myapp.models import TrackedJob
from myapp.pipeline import lifecycle


@pytest.fixture
def app(make_app):
    return make_app(RQ_QUEUE=f"races-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def job(app, accounts):
    """A process_run whose worker is at the point where RQ has stored its end."""
    alice = accounts.create()
    body = {"kind": "process_run", "params": {"steps": 3, "step_seconds": 0}}
    response = app.test_client().post("/api/jobs", json=body, headers=alice.headers)
    assert response.status_code == 202, response.text
    with app.app_context():
        rq_job = fetch_job(response.json["id"])
        lifecycle.job_changed(rq_job, "started")
        rq_job.set_status(JobStatus.FINISHED)
    return alice, rq_job


def test_canceling_a_job_that_just_ended_is_409_and_keeps_its_end(app, job):
    alice, rq_job = job
    with app.app_context():
        about_to_record = job_json.from_rq(rq_job, status="finished")  # the worker's next step
    response = app.test_client().post(f"/api/jobs/{rq_job.id}/cancel", headers=alice.headers)
    assert response.status_code == 409
    assert response.json == {"error": "the job has already ended (finished); nothing to cancel"}
    with app.app_context():
        assert fetch_job(rq_job.id).get_status().value == "finished"
        lifecycle.record(about_to_record)
        assert db.session.get(TrackedJob, rq_job.id).status == "finished"


def test_a_state_older_than_the_record_never_overwrites_it(app, job):
    _, rq_job = job
    with app.app_context():
        older = job_json.from_rq(rq_job, status="finished")
        row = db.session.get(TrackedJob, rq_job.id)
        lifecycle.row_changed(row, status="canceled", ended_at=job_json.utcnow())
        lifecycle.record(older)  # computed before the cancel, arriving after it
        db.session.expire_all()
        assert db.session.get(TrackedJob, rq_job.id).status == "canceled"
