"""A queued job's place in line: counted from RQ's queue and the user's running limit,
estimated from the workers' recent starts, and sent as the line moves, once a second
at most."""

from __future__ import annotations

import json
import uuid

import pytest
from redis import Redis
from rq.job import JobStatus
from rq.rate_limit import RateLimitRegistry

from myapp.connections import get_queue
from myapp.keys import channel_for, line_lock_key, log_key, running_limit_key
from myapp.pipeline import line
from myapp.pipeline.line import Line
from myapp.worker import reaper
from tests.jobs import PROCESS
from tests.records import id_of


@pytest.fixture
def idle(make_app):
    """An app whose jobs go to a queue of their own that no worker takes from."""
    return make_app(
        RQ_QUEUE=f"line-{uuid.uuid4().hex[:8]}",
        MAX_RUNNING_JOBS_PER_USER=4,
        MAX_ACTIVE_JOBS_PER_USER=20,
    )


def post(client, account) -> str:
    answer = client.post("/api/jobs", json=PROCESS, headers=account.headers)
    assert answer.status_code == 202, answer.json
    return answer.json["id"]


def places(client, account) -> dict[str, dict | None]:
    answer = client.get("/api/jobs", headers=account.headers)
    assert answer.status_code == 200
    return {job["id"]: job["queue"] for job in answer.json["jobs"]}


def held_order(app, account) -> list[str]:
    """The account's jobs its running limit holds back, in the order RQ lets them go."""
    with app.app_context():
        limit = running_limit_key(id_of(account))
        return RateLimitRegistry(
            limit, connection=get_queue().connection
        ).get_rate_limited_job_ids()


def line_events(app, account) -> list[dict]:
    """The ``event: queue`` data in the account's event log, oldest first."""
    with app.app_context():
        key = log_key(channel_for(id_of(account)))
    entries = Redis.from_url(app.config["REDIS_URL"]).xrange(key)
    messages = [json.loads(fields[b"m"]) for _, fields in entries]
    return [m["data"] for m in messages if m.get("type") == "queue"]


def test_a_place_counts_the_jobs_ahead_and_the_users_running_limit(idle, accounts, alice):
    client, bob = idle.test_client(), accounts.create()
    ids = [post(client, alice) for _ in range(10)]  # past the limit of 4, six are held back
    bobs = post(client, bob)  # the fifth in the queue, ahead of alice's held ones
    found = places(client, alice)
    assert [found[job_id]["position"] for job_id in ids[:4]] == [1, 2, 3, 4]
    # RQ lets the held ones go oldest first, and those of one second by their ids.
    assert [found[job_id]["position"] for job_id in held_order(idle, alice)] == [6, 7, 8, 9, 10, 11]
    assert all(found[job_id]["eta_seconds"] is None for job_id in ids)  # nothing started yet
    answer = client.get(f"/api/jobs/{bobs}", headers=bob.headers).json  # one looked for alone
    assert answer["queue"] == {"position": 5, "eta_seconds": None}

    # Canceling the first frees a place under the limit: the oldest held job goes to
    # the end of the queue, the other one waits behind it.
    assert client.post(f"/api/jobs/{ids[0]}/cancel", headers=alice.headers).status_code == 202
    found = places(client, alice)
    assert found[ids[0]] is None  # an ended job has no place
    assert [found[job_id]["position"] for job_id in ids[1:4]] == [1, 2, 3]
    with idle.app_context():
        released = get_queue().get_job_ids()[-1]
    assert found[released]["position"] == 5
    assert [found[job_id]["position"] for job_id in held_order(idle, alice)] == [6, 7, 8, 9, 10]


def test_the_estimate_comes_from_the_workers_recent_starts(idle, alice):
    client, redis = idle.test_client(), Redis.from_url(idle.config["REDIS_URL"])
    queue = idle.config["RQ_QUEUE"]
    with redis.pipeline(transaction=False) as pipe:
        for n in range(2):  # two starts just now: taken over the shortest span, 10 s
            line.count_start(pipe, queue, f"started-{n}")
        pipe.execute()
    ids = [post(client, alice) for _ in range(3)]
    found = places(client, alice)
    assert [found[job_id] for job_id in ids] == [
        {"position": 1, "eta_seconds": 5},
        {"position": 2, "eta_seconds": 10},
        {"position": 3, "eta_seconds": 15},
    ]
    # Far back, the estimate is in whole minutes.
    assert line.place(100, 0.2) == {"position": 100, "eta_seconds": 540}


def test_the_line_is_sent_when_it_moves_by_one_process_a_second(idle, alice):
    client, redis = idle.test_client(), Redis.from_url(idle.config["REDIS_URL"])
    queue = idle.config["RQ_QUEUE"]
    mover = Line(redis, queue, retention_seconds=600)
    other = Line(redis, queue, retention_seconds=600)  # another web process's
    ids = [post(client, alice) for _ in range(3)]

    assert mover.tick() == 1
    unplaced = {"eta_seconds": None}
    assert line_events(idle, alice) == [
        {"jobs": {job_id: {"position": n, **unplaced} for n, job_id in enumerate(ids, 1)}}
    ]
    newer = post(client, alice)
    assert other.tick() == 0  # this second is the first process's
    redis.delete(line_lock_key(queue))  # the next second
    assert other.tick() == 1
    assert line_events(idle, alice)[-1]["jobs"][newer] == {"position": 4, **unplaced}

    redis.delete(line_lock_key(queue))
    assert mover.tick() == 0  # nothing moved: nothing sent

    assert client.post(f"/api/jobs/{ids[0]}/cancel", headers=alice.headers).status_code == 202
    redis.delete(line_lock_key(queue))
    assert mover.tick() == 1
    waiting = [*ids[1:], newer]
    assert line_events(idle, alice)[-1] == {
        "jobs": {job_id: {"position": n, **unplaced} for n, job_id in enumerate(waiting, 1)}
    }
    assert len(line_events(idle, alice)) == 3


def test_a_place_an_ended_job_kept_under_the_limit_is_freed_by_the_reaper(make_app, alice):
    """What a failover can leave: a job ended in RQ, its release of its place under
    the user's running limit lost. The held job goes to the queue at the next reaping,
    not at RQ's maintenance."""
    app = make_app(RQ_QUEUE=f"line-{uuid.uuid4().hex[:8]}", MAX_RUNNING_JOBS_PER_USER=1)
    client = app.test_client()
    first, held = post(client, alice), post(client, alice)
    assert [places(client, alice)[job_id]["position"] for job_id in (first, held)] == [1, 2]
    with app.app_context():
        queue = get_queue()
        job = queue.fetch_job(first)
        queue.remove(first)  # a worker took it and ran it to the end ...
        job.set_status(JobStatus.FINISHED)  # ... and the release after it was lost
        registry = RateLimitRegistry(running_limit_key(id_of(alice)), connection=queue.connection)
        assert registry.get_allowed_job_ids() == [first]
        reaper.free_kept_places(queue.connection)
        assert registry.get_allowed_job_ids() == [held]
        assert queue.get_job_ids() == [held]
    assert places(client, alice)[held] == {"position": 1, "eta_seconds": None}
