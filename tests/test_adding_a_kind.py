"""The recipe for a new kind (docs/architecture.md) works: one module, one line.

The kind lives in tests/kinds/countdown.py; the line that registers it is the
fixture's, as myapp/jobs/__init__.py would hold it. Real workers run it from its
import path, as RQ stores it.
"""

import pytest
import requests
from rq import Retry

from myapp.jobs import KINDS
from myapp.jobs.kind import Kind
from tests.kinds import countdown
from tests.sse_client import Stream, ended, snapshot_sent


@pytest.fixture
def registered(monkeypatch):
    # The registration line of the recipe:
    monkeypatch.setitem(
        KINDS,
        "countdown",
        Kind(countdown.run, countdown.Params, timeout=60, retry=Retry(max=2, interval=1)),
    )


def test_a_new_kind_runs_with_progress_steps_and_its_retry_policy(
    registered, client, accounts, server, worker
):
    alice = accounts.create()
    stream = Stream(f"{server}/stream", alice.headers)
    try:
        stream.wait_for(snapshot_sent, timeout=5)
        params = {"count": 6, "fail_once_at": 4, "step_seconds": 0.05}
        response = client.post(
            "/api/jobs", json={"kind": "countdown", "params": params}, headers=alice.headers
        )
        assert response.status_code == 202, response.json
        job_id = response.json["id"]
        stream.wait_for(ended(stream, job_id), timeout=30)
    finally:
        stream.close()
    events = stream.job_events(job_id)
    statuses = [event["status"] for event in events]
    # The first attempt fails at 4; the retry policy queues it again, and it ends.
    assert statuses[0] == "queued" and statuses[-1] == "finished", statuses
    assert statuses.count("started") >= 2, statuses
    retried = next(event for event in events if event["retry"] is not None)
    assert retried["retry"]["attempt"] == 2 and retried["retry"]["of"] == 3
    # Progress reached the stream, and the second attempt went on from the cursor.
    messages = [event["progress"]["message"] for event in events]
    assert "3 of 6" in messages and "resumed at 3 of 6" in messages, messages
    assert events[-1]["result"] == {"counted": 6, "resumed_at": 3}
    job = requests.get(f"{server}/api/jobs/{job_id}", headers=alice.headers, timeout=10).json()
    assert job["status"] == "finished" and job["result"] == {"counted": 6, "resumed_at": 3}


def test_a_new_kind_is_validated_and_described_like_the_others(registered, client, accounts):
    alice = accounts.create()
    bad = {"kind": "countdown", "params": {"count": 0}}
    response = client.post("/api/jobs", json=bad, headers=alice.headers)
    assert response.status_code == 400
    assert "params.count" in response.json["error"]
    described = client.get("/api/openapi.json").json
    assert "countdown" in str(described)


def test_without_its_line_the_kind_is_unknown(client, accounts):
    alice = accounts.create()
    response = client.post(
        "/api/jobs", json={"kind": "countdown", "params": {"count": 1}}, headers=alice.headers
    )
    assert response.status_code == 400
    assert "unknown kind 'countdown'" in response.json["error"]
