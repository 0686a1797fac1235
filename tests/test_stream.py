"""The stream over real HTTP: gunicorn with gevent, a real worker, real Redis."""

import json

import requests
from redis import Redis

from myapp.db import db
from myapp.keys import active_key, channel_for
from myapp.models import User
from tests.jobs import start
from tests.records import state_of
from tests.sse_client import Stream, ended, snapshot_sent


def test_stream_needs_a_user(server):
    response = requests.get(f"{server}/stream", timeout=5)
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}
    bad = requests.get(f"{server}/stream", headers={"Authorization": "Bearer x"}, timeout=5)
    assert bad.status_code == 401


def test_stream_opens_with_retry_and_a_snapshot(server, alice):
    stream = Stream(f"{server}/stream", alice.headers)
    try:
        assert stream.response.headers["Content-Type"].startswith("text/event-stream")
        assert stream.response.headers["Cache-Control"] == "no-cache"
        assert stream.response.headers["X-Accel-Buffering"] == "no"
        events = stream.wait_for(lambda events: events, timeout=5)
        assert stream.lines[:2] == [": connected", "retry: 2000"]
        assert events[0].type == "snapshot"
        assert events[0].json() == {"jobs": [], "next_before": None}
        assert events[0].id
    finally:
        stream.close()


def test_a_job_is_watched_to_the_end_by_its_owner_only(server, accounts, alice):
    bob = accounts.create()
    mine, theirs = (
        Stream(f"{server}/stream", alice.headers),
        Stream(f"{server}/stream", bob.headers),
    )
    try:
        mine.wait_for(snapshot_sent, timeout=5)
        theirs.wait_for(snapshot_sent, timeout=5)
        job = start(server, alice, steps=20)
        mine.wait_for(ended(mine, job["id"]))
        events = mine.job_events(job["id"])
    finally:
        mine.close()
        theirs.close()

    statuses = [event["status"] for event in events]
    assert statuses[0] == "queued"
    assert statuses[1] == "started"
    assert statuses[-1] == "finished"
    assert set(statuses[1:-1]) == {"started"}
    done = [event["progress"]["done"] for event in events if event["progress"]["done"] is not None]
    assert done == sorted(done) and done[-1] == 20
    versions = [event["version"] for event in events]
    assert versions == sorted(set(versions)), "each state newer than the one before"
    updated = [event["updated_at"] for event in events]
    assert updated == sorted(updated)
    last = events[-1]
    assert last["progress"]["percent"] == 100.0
    assert last["result"] == {"steps": 20}
    assert last["ended_at"] is not None
    assert [event.type for event in theirs.events] == ["snapshot"]
    assert theirs.events[0].json() == {"jobs": [], "next_before": None}

    api = requests.get(f"{server}/api/jobs/{job['id']}", headers=alice.headers, timeout=5).json()
    assert state_of(api) == last, "the database record and the last event agree"


def test_reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing(server, alice):
    witness = Stream(f"{server}/stream", alice.headers)  # stays open throughout
    first = Stream(f"{server}/stream", alice.headers)
    try:
        witness.wait_for(snapshot_sent, timeout=5)
        first.wait_for(snapshot_sent, timeout=5)
        job = start(server, alice, steps=30, step_seconds=0.05)
        first.wait_for(lambda _: len(first.job_events(job["id"])) >= 5)
        first.close()
        seen = [e for e in first.events if e.type in ("job", "output")]
        second = Stream(f"{server}/stream", {**alice.headers, "Last-Event-ID": seen[-1].id})
        try:
            second.wait_for(ended(second, job["id"]))
        finally:
            second.close()
        witness.wait_for(ended(witness, job["id"]))
    finally:
        witness.close()
    resumed = second.events
    assert all(e.type in ("job", "output") for e in resumed), "a replay, not a snapshot"
    union = [e.id for e in seen] + [e.id for e in resumed]
    assert union == [e.id for e in witness.events if e.type in ("job", "output")]
    assert len(set(union)) == len(union)


def test_an_id_older_than_what_is_kept_gets_a_snapshot(server, alice):
    job = start(server, alice, steps=1, step_seconds=0)
    for old in ("1-0", "garbage"):
        stream = Stream(f"{server}/stream", {**alice.headers, "Last-Event-ID": old})
        try:
            events = stream.wait_for(lambda events: events, timeout=5)
        finally:
            stream.close()
        assert events[0].type == "snapshot"
        assert job["id"] in [j["id"] for j in events[0].json()["jobs"]]


def test_snapshot_holds_the_current_state_of_running_jobs(server, alice):
    job = start(server, alice, steps=40, step_seconds=0.05)
    watcher = Stream(f"{server}/stream?job={job['id']}", alice.headers)
    try:
        watcher.wait_for(
            lambda _: any(e["progress"]["done"] for e in watcher.job_events(job["id"]))
        )
        stream = Stream(f"{server}/stream", alice.headers)
        try:
            (snapshot,) = stream.wait_for(lambda events: events, timeout=5)[:1]
        finally:
            stream.close()
    finally:
        watcher.close()
    (state,) = [j for j in snapshot.json()["jobs"] if j["id"] == job["id"]]
    assert state["status"] in ("started", "finished")
    assert state["progress"]["done"] >= 1


def test_quiet_streams_get_heartbeats(server, alice):
    stream = Stream(f"{server}/stream", alice.headers)  # the test server beats every second
    try:
        stream.wait_for(lambda _: stream.lines.count(": keepalive") >= 2, timeout=5)
    finally:
        stream.close()


def test_one_job_stream_ends_after_its_terminal_event(server, accounts, alice):
    other = start(server, alice, steps=30, step_seconds=0.05)
    job = start(server, alice, steps=5, step_seconds=0.05)
    response = requests.get(
        f"{server}/stream?job={job['id']}", headers=alice.headers, stream=True, timeout=30
    )
    body = response.text  # returns only because the server ends the response
    assert other["id"] not in body
    statuses = [line for line in body.splitlines() if line.startswith("data:")]
    assert '"finished"' in statuses[-1]
    again = requests.get(f"{server}/stream?job={job['id']}", headers=alice.headers, timeout=10)
    assert again.text.count("event:snapshot") == 1 and '"finished"' in again.text
    assert (
        requests.get(
            f"{server}/stream?job={job['id']}", headers=accounts.create().headers, timeout=5
        ).status_code
        == 404
    )


def test_a_numerically_valid_but_unusable_id_gets_a_snapshot(server, alice):
    job = start(server, alice, steps=1, step_seconds=0)
    huge = f"{2**64}-0"  # beyond what Redis takes
    for last in ("99999999999999-0", huge, f"1-{2**70}", f"{10**30}"):
        stream = Stream(f"{server}/stream", {**alice.headers, "Last-Event-ID": last})
        try:
            assert stream.response.status_code == 200, (last, stream.response.text)
            events = stream.wait_for(lambda events: events, timeout=5)
        finally:
            stream.close()
        assert events[0].type == "snapshot", last
        assert job["id"] in [j["id"] for j in events[0].json()["jobs"]]


def test_a_reconnect_to_an_ended_job_answers_204(server, alice):
    job = start(server, alice, steps=3, step_seconds=0.01)
    body = requests.get(
        f"{server}/stream?job={job['id']}", headers=alice.headers, stream=True, timeout=30
    ).text
    last_id = [line for line in body.splitlines() if line.startswith("id:")][-1][3:]
    again = requests.get(
        f"{server}/stream?job={job['id']}",
        headers={**alice.headers, "Last-Event-ID": last_id.strip()},
        stream=True,  # a stream held open must fail the test, not hang it
        timeout=5,
    )
    with again:
        assert again.status_code == 204
        assert again.raw.read(100) == b""


def test_a_reconnect_is_told_to_stop_only_once_the_end_is_out(app, server, alice):
    job = start(server, alice, steps=2, step_seconds=0.01)
    url = f"{server}/stream?job={job['id']}"
    body = requests.get(url, headers=alice.headers, timeout=30).text
    last_id = [line for line in body.splitlines() if line.startswith("id:")][-1][3:].strip()
    # As between writing the end to the record and publishing it: still an active job.
    with app.app_context():
        channel = channel_for(db.session.scalar(db.select(User.id).filter_by(name=alice.name)))
    redis = Redis.from_url(app.config["REDIS_URL"])
    redis.hset(active_key(channel), job["id"], json.dumps({**job, "status": "started"}))
    try:
        for sent in (last_id, "18446744073709551615-5"):  # its own id; one it never got
            headers = {**alice.headers, "Last-Event-ID": sent}
            # (the first waits for the end: read no more than the answer's status)
            with requests.get(url, headers=headers, timeout=10, stream=True) as again:
                assert again.status_code == 200, sent
    finally:
        redis.hdel(active_key(channel), job["id"])
    # Once the end is out, a client with an id it was never sent is still sent the end.
    future = {**alice.headers, "Last-Event-ID": "18446744073709551615-5"}
    assert requests.get(url, headers=future, timeout=10).status_code == 200
