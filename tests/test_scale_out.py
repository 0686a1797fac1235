"""Scale-out: two web processes, three workers and ``rq worker-pool`` on one Redis and
one database, as docs/scaling.md describes. The per-user limit, replay, coalescing
and cancel must hold whichever process a request, a stream or a job lands on.

The processes work a queue of their own, so the run's other workers stay out of it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from redis import Redis
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from myapp.job_json import TERMINAL
from tests.conftest import ROOT, free_port, wait_until, web_command
from tests.jobs import album, seconds_between, submit
from tests.sse_client import Stream, ended, last, snapshot_sent


@dataclass
class Cluster:
    bases: list[str]
    redis: Redis
    queue: str
    pool: subprocess.Popen

    def pool_workers(self) -> set[str]:
        """The names of the workers that ``rq worker-pool`` started."""
        return {w.name for w in self.workers() if _parent_of(w.pid) == self.pool.pid}

    def workers(self) -> list[Worker]:
        return [w for w in Worker.all(connection=self.redis) if self.queue in w.queue_names()]


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture(scope="module")
def cluster(service_env, redis_url):
    queue = f"scale-{uuid.uuid4().hex[:8]}"
    env = {**service_env, "RQ_QUEUE": queue}
    ports = [free_port(), free_port()]
    processes = [subprocess.Popen(web_command(port), cwd=ROOT, env=env) for port in ports]
    processes.append(subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env))
    rq = Path(sys.executable).with_name("rq")
    pool_command = [str(rq), "worker-pool", "-n", "2", "-w", "myapp.worker.PoolWorker"]
    pool = subprocess.Popen([*pool_command, "-u", redis_url, queue], cwd=ROOT, env=env)
    processes.append(pool)
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    made = Cluster(bases, Redis.from_url(redis_url), queue, pool)
    try:
        for base in bases:
            wait_until(lambda base=base: requests.get(f"{base}/healthz", timeout=1).ok, 30)
        wait_until(lambda: len(made.workers()) >= 3 and len(made.pool_workers()) == 2, 30)
        yield made
    finally:
        for process in processes:
            process.terminate()
        stuck = []
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stuck.append(process.args)
                process.kill()  # not left running into the next tests
                process.wait()
        assert not stuck, f"did not stop within 30 s of SIGTERM: {stuck}"


def post(base, account, path, body=None):
    return requests.post(f"{base}{path}", json=body, headers=account.headers, timeout=30)


def wait_all_ended(cluster, account, timeout=60):
    def all_ended():
        jobs = requests.get(f"{cluster.bases[0]}/api/jobs", headers=account.headers, timeout=10)
        return all(job["status"] in TERMINAL for job in jobs.json()["jobs"])

    wait_until(all_ended, timeout)


def test_the_per_user_limit_holds_across_web_processes(cluster, accounts, app):
    alice = accounts.create()
    limit = app.config["MAX_ACTIVE_JOBS_PER_USER"]
    body = {"kind": "process_run", "params": {"steps": 30, "step_seconds": 0.1}}
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda i: post(cluster.bases[i % 2], alice, "/api/jobs", body),
                range(limit + 4),
            )
        )
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [202] * limit + [429] * 4
    for i, answer in enumerate(a for a in answers if a.status_code == 202):
        post(cluster.bases[i % 2], alice, f"/api/jobs/{answer.json()['id']}/cancel")
    wait_all_ended(cluster, alice)


def test_a_stream_resumes_on_the_other_web_process_with_nothing_missed(cluster, accounts):
    alice = accounts.create()
    first, second = cluster.bases
    whole = Stream(f"{first}/stream", alice.headers)  # never interrupted: the reference
    cut = Stream(f"{first}/stream", alice.headers)
    try:
        whole.wait_for(snapshot_sent, timeout=5)
        cut.wait_for(snapshot_sent, timeout=5)
        body = {"kind": "process_run", "params": {"steps": 15, "step_seconds": 0.05}}
        jobs = [post(cluster.bases[i % 2], alice, "/api/jobs", body).json() for i in range(4)]
        cut.wait_for(lambda events: sum(e.type == "job" for e in events) >= 3)
        cut.close()
        seen = [e.id for e in cut.events if e.type == "job"]
        for job in jobs:
            whole.wait_for(ended(whole, job["id"]), timeout=60)
        resumed = Stream(f"{second}/stream", {**alice.headers, "Last-Event-ID": seen[-1]})
        expected = [e.id for e in whole.events if e.type == "job"]
        after = expected[expected.index(seen[-1]) + 1 :]
        resumed.wait_for(lambda events: len([e for e in events if e.type == "job"]) >= len(after))
        time.sleep(0.3)  # nothing more may come: every job has ended
        resumed.close()
    finally:
        whole.close()
    assert [e.type for e in resumed.events if e.type == "snapshot"] == []
    assert [e.id for e in resumed.events if e.type == "job"] == after


def test_coalescing_and_cancel_hold_across_workers(cluster, accounts, app):
    alice = accounts.create()
    first, second = cluster.bases
    stream = Stream(f"{second}/stream", alice.headers)
    try:
        stream.wait_for(snapshot_sent, timeout=5)
        batch = submit(first, alice, "publish_album", album(30, latency_ms=150))
        long = post(second, alice, "/api/jobs", {"kind": "process_run", "params": {
            "steps": 300, "step_seconds": 0.1}}).json()  # fmt: skip
        stream.wait_for(
            lambda _: any(e["status"] == "started" for e in stream.job_events(long["id"]))
        )
        assert post(first, alice, f"/api/jobs/{long['id']}/cancel").status_code == 202
        stream.wait_for(ended(stream, long["id"]), timeout=5)
        stream.wait_for(ended(stream, batch["id"]), timeout=90)
    finally:
        stream.close()

    assert last(stream, long["id"])["status"] == "canceled"
    parent = stream.job_events(batch["id"])
    assert parent[-1]["status"] == "finished"
    assert parent[-1]["counts"]["finished"] == 30
    percents = [e["progress"]["percent"] for e in parent]
    assert percents == sorted(percents)
    seconds = seconds_between(parent[-1]["ended_at"], parent[0]["created_at"])
    assert len(parent) <= app.config["PROGRESS_MAX_RATE"] * seconds + 4
    # The pieces ran on every kind of worker, the pool's included.
    ran_on = {
        Job.fetch(child, connection=cluster.redis, serializer=JSONSerializer).worker_name
        for child in batch["children"]
    }
    assert ran_on & cluster.pool_workers()
    assert ran_on - cluster.pool_workers()
