"""Jobs for tests: started over HTTP as a client starts them, or enqueued straight into
RQ with a body of :mod:`tests.job_bodies`; and what to start them with."""

from __future__ import annotations

import uuid

import requests

from myapp import job_json
from myapp.connections import get_queue
from myapp.db import db
from myapp.job_json import TERMINAL, parse_time
from myapp.models import TrackedJob, User

#: The smallest process_run: two steps, no wait.
PROCESS = {"kind": "process_run", "params": {"steps": 2, "step_seconds": 0}}


def submit(base, account, kind, params) -> dict:
    """Start a job of ``kind`` over HTTP with ``account``'s token; the job as answered."""
    body = {"kind": kind, "params": params}
    response = requests.post(f"{base}/api/jobs", json=body, headers=account.headers, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def start(base, account, steps=20, step_seconds=0.05) -> dict:
    """Start a process_run over HTTP, as a script would; the job as answered."""
    return submit(base, account, "process_run", {"steps": steps, "step_seconds": step_seconds})


def album(count, *, rejected=(), failure_rate=0.0, latency_ms=20, size_kb=100) -> dict:
    """The params of a publish_album of ``count`` photos; those in ``rejected`` are refused."""
    items = [
        {"name": f"photo-{i:03}.jpg", "size_kb": size_kb, "reject": i in rejected}
        for i in range(count)
    ]
    return {"items": items, "failure_rate": failure_rate, "latency_ms": latency_ms}


def cancel_all(base, account) -> None:
    """Ask to cancel every job of ``account`` that has not ended (without waiting)."""
    jobs = requests.get(f"{base}/api/jobs", headers=account.headers, timeout=10).json()["jobs"]
    for job in jobs:
        if job["status"] not in TERMINAL:
            requests.post(
                f"{base}/api/jobs/{job['id']}/cancel", headers=account.headers, timeout=10
            )


def enqueue_test_job(app, account, func: str, retry=None, timeout=None, **kwargs) -> str:
    """Enqueue one of :mod:`tests.job_bodies` the way :func:`myapp.jobs.submit` does."""
    with app.app_context():
        user = db.session.scalar(db.select(User).filter_by(name=account.name))
        now = job_json.utcnow()
        job_id = str(uuid.uuid4())
        db.session.add(
            TrackedJob(id=job_id, user_id=user.id, kind="test", params=kwargs,
                       status="queued", created_at=now, updated_at=now, queue=get_queue().name)
        )  # fmt: skip
        db.session.commit()
        get_queue().enqueue_call(
            func, kwargs=kwargs, job_id=job_id, retry=retry, timeout=timeout,
            meta={"user_id": user.id, "kind": "test", "created_at": job_json.iso(now),
                  "max_attempts": 1 + (retry.max if retry else 0)},
        )  # fmt: skip
    return job_id


def seconds_between(later: str, earlier: str) -> float:
    """The seconds between two of a job's times, as the API writes them."""
    return (parse_time(later) - parse_time(earlier)).total_seconds()
