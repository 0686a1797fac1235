"""Cancel, retry, timeouts, dead workers and the per-user limit, on real workers."""

import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from redis import Redis
from rq import Retry

from tests.conftest import ROOT, wait_until
from tests.jobs import cancel_all, enqueue_test_job, start
from tests.rq_state import worker_running
from tests.sse_client import ended


def post(server, account, path):
    return requests.post(f"{server}{path}", headers=account.headers, timeout=10)


def statuses(stream, job_id):
    return [e["status"] for e in stream.job_events(job_id)]


def test_cancel_a_queued_job_and_it_never_starts(server, alice, stream):
    blockers = [start(server, alice, steps=50, step_seconds=0.1) for _ in range(2)]
    try:
        queued = start(server, alice, steps=5, step_seconds=0)
        response = post(server, alice, f"/api/jobs/{queued['id']}/cancel")
        assert response.status_code == 202
        assert response.json()["status"] == "canceled"
        assert response.json()["ended_at"] is not None
    finally:
        for job in blockers:
            post(server, alice, f"/api/jobs/{job['id']}/cancel")
    for job in blockers:
        stream.wait_for(ended(stream, job["id"]))
    time.sleep(0.5)
    assert statuses(stream, queued["id"]) == ["queued", "canceled"]
    again = requests.get(f"{server}/api/jobs/{queued['id']}", headers=alice.headers, timeout=5)
    assert again.json()["status"] == "canceled"


def test_cancel_a_running_job_stops_it_within_two_seconds(server, alice, stream):
    job = start(server, alice, steps=200, step_seconds=0.05)
    stream.wait_for(lambda _: any(e["progress"]["done"] for e in stream.job_events(job["id"])))
    asked = time.monotonic()
    assert post(server, alice, f"/api/jobs/{job['id']}/cancel").status_code == 202
    stream.wait_for(ended(stream, job["id"]), timeout=5)
    assert time.monotonic() - asked < 2
    last = stream.job_events(job["id"])[-1]
    assert last["status"] == "canceled"
    assert last["progress"]["done"] < 200, "the work it did is kept, and it did not finish"


def test_a_job_that_does_not_report_is_stopped_by_its_worker(app, server, alice, stream):
    job_id = enqueue_test_job(app, alice, "tests.job_bodies.silent", seconds=30)
    stream.wait_for(lambda _: "started" in statuses(stream, job_id))
    asked = time.monotonic()
    assert post(server, alice, f"/api/jobs/{job_id}/cancel").status_code == 202
    stream.wait_for(ended(stream, job_id), timeout=10)
    assert statuses(stream, job_id)[-1] == "canceled"
    assert time.monotonic() - asked < 5  # the grace (1 s in tests) and a monitor beat


def test_canceling_an_ended_job_is_409(server, alice, stream):
    job = start(server, alice, steps=1, step_seconds=0)
    stream.wait_for(ended(stream, job["id"]))
    response = post(server, alice, f"/api/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert "already ended (finished)" in response.json()["error"]
    assert post(server, alice, f"/api/jobs/{job['id']}/retry").status_code == 409


def test_another_users_job_cannot_be_canceled_or_retried(server, accounts, alice):
    job = start(server, alice, steps=1, step_seconds=0)
    bob = accounts.create()
    for action in ("cancel", "retry"):
        response = post(server, bob, f"/api/jobs/{job['id']}/{action}")
        assert response.status_code == 404
        assert response.json() == {"error": "no such job"}


def test_retry_a_canceled_job(server, alice, stream):
    job = start(server, alice, steps=100, step_seconds=0.05)
    stream.wait_for(lambda _: "started" in statuses(stream, job["id"]))
    post(server, alice, f"/api/jobs/{job['id']}/cancel")
    stream.wait_for(ended(stream, job["id"]))
    response = post(server, alice, f"/api/jobs/{job['id']}/retry")
    assert response.status_code == 202
    assert response.json()["status"] == "queued" and response.json()["error"] is None
    stream.wait_for(lambda _: statuses(stream, job["id"]).count("started") >= 2)
    post(server, alice, f"/api/jobs/{job['id']}/cancel")
    stream.wait_for(lambda _: statuses(stream, job["id"]).count("canceled") == 2)


def test_automatic_retries_then_success(app, server, redis_url, alice, stream):
    key = f"flaky:{uuid.uuid4()}"
    job_id = enqueue_test_job(
        app, alice, "tests.job_bodies.flaky", retry=Retry(max=2, interval=1), failures=2, key=key
    )
    stream.wait_for(ended(stream, job_id), timeout=30)
    events = stream.job_events(job_id)
    waits = [e for e in events if e["status"] == "scheduled"]
    assert [w["retry"]["attempt"] for w in waits] == [2, 3]
    assert all(w["retry"]["of"] == 3 and w["retry"]["at"] for w in waits)
    assert waits[0]["error"] == "ConnectionError: third party down (run 1)"
    assert events[-1]["status"] == "finished"
    assert events[-1]["result"] == "succeeded on run 3"
    assert int(Redis.from_url(redis_url).get(key)) == 3


def test_a_permanent_failure_stops_after_its_retries(app, server, redis_url, alice, stream):
    key = f"flaky:{uuid.uuid4()}"
    job_id = enqueue_test_job(
        app, alice, "tests.job_bodies.flaky", retry=Retry(max=1), failures=5, key=key
    )
    stream.wait_for(ended(stream, job_id), timeout=30)
    last = stream.job_events(job_id)[-1]
    assert last["status"] == "failed"
    assert last["error"] == "ConnectionError: third party down (run 2)"
    assert int(Redis.from_url(redis_url).get(key)) == 2


def test_a_job_past_its_timeout_fails_with_a_clear_error(app, server, alice, stream):
    job_id = enqueue_test_job(app, alice, "tests.job_bodies.silent", timeout=1, seconds=10)
    stream.wait_for(ended(stream, job_id), timeout=20)
    last = stream.job_events(job_id)[-1]
    assert (last["status"], last["error"]) == ("failed", "timed out after 1 s")
    api = requests.get(f"{server}/api/jobs/{job_id}", headers=alice.headers, timeout=5).json()
    assert api["error"] == "timed out after 1 s"


def test_a_killed_worker_does_not_leave_its_job_started(
    server, service_env, worker, redis_url, alice, stream
):
    job = start(server, alice, steps=400, step_seconds=0.05)
    stream.wait_for(lambda _: any(e["progress"]["done"] for e in stream.job_events(job["id"])))
    victim = worker_running(redis_url, job["id"])
    (horse,) = horses_of(victim.pid)
    os.kill(victim.pid, signal.SIGKILL)
    # Keep two workers for the rest of the run: the fixture stops this one too.
    worker.append(subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=service_env))
    stream.wait_for(ended(stream, job["id"]), timeout=30)  # WORKER_DEATH_SECONDS is 6
    last = stream.job_events(job["id"])[-1]
    assert (last["status"], last["error"]) == ("failed", "worker died")
    assert not _running(horse), "the work horse died with its worker"


def horses_of(worker_pid: int) -> list[int]:
    """The worker's work horse: the child that leads its own process group (RQ's
    scheduler, a child too of the worker holding the scheduler lock, does not)."""
    children = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    return [int(pid) for pid in children if os.getpgid(int(pid)) == int(pid)]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_at_most_ten_active_jobs_per_user_under_concurrent_requests(server, alice):
    body = {"kind": "process_run", "params": {"steps": 100, "step_seconds": 0.1}}

    def submit(_):
        return requests.post(f"{server}/api/jobs", json=body, headers=alice.headers, timeout=10)

    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            codes = sorted(r.status_code for r in pool.map(submit, range(20)))
        assert codes == [202] * 10 + [429] * 10
        refused = submit(0)
        assert refused.status_code == 429 and "10 active jobs" in refused.json()["error"]
        jobs = requests.get(f"{server}/api/jobs", headers=alice.headers, timeout=10).json()["jobs"]
        assert len(jobs) == 10
    finally:
        cancel_all(server, alice)
    wait_until(lambda: submit(0).status_code == 202, timeout=10)  # the places came back
    cancel_all(server, alice)


def test_running_jobs_show_an_eta(server, alice, stream):
    job = start(server, alice, steps=30, step_seconds=0.05)
    stream.wait_for(ended(stream, job["id"]))
    etas = [e["progress"]["eta_seconds"] for e in stream.job_events(job["id"])]
    running = [eta for eta in etas[:-1] if eta is not None]
    assert running, "an ETA while running"
    assert all(0 <= eta < 5 for eta in running)
    assert etas[-1] is None


def test_a_graceful_stop_puts_the_running_job_back_for_another_worker(
    server, service_env, worker, redis_url, alice, stream
):
    job = start(server, alice, steps=60, step_seconds=0.05)
    stream.wait_for(lambda _: any(e["progress"]["done"] for e in stream.job_events(job["id"])))
    victim = worker_running(redis_url, job["id"])
    (process,) = [p for p in worker if p.pid == victim.pid]
    worker.append(subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=service_env))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0, "the worker stopped without waiting for the job"
    stream.wait_for(ended(stream, job["id"]), timeout=30)
    events = stream.job_events(job["id"])
    back = [e for e in events if e["status"] == "queued" and e["started_at"]]
    assert back and back[0]["progress"]["message"] == "interrupted by a worker restart"
    assert events[-1]["status"] == "finished"


def test_a_users_running_jobs_are_limited_so_others_get_workers(make_app, server, alice, stream):
    app = make_app(MAX_RUNNING_JOBS_PER_USER=1)  # the limit is set when jobs are enqueued
    client = app.test_client()
    body = {"kind": "process_run", "params": {"steps": 10, "step_seconds": 0.05}}
    ids = [client.post("/api/jobs", json=body, headers=alice.headers).json["id"] for _ in range(2)]
    for job_id in ids:
        stream.wait_for(ended(stream, job_id))
    first, second = (stream.job_events(job_id)[-1] for job_id in ids)
    # Two workers were free, yet the second job started only after the first ended.
    assert first["status"] == second["status"] == "finished"
    assert second["started_at"] >= first["ended_at"]
