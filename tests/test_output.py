"""A job's output on the real stack: live on the stream in order and once, across a
reconnect too, batched, kept after the end, bounded, and safe whatever the text."""

from __future__ import annotations

import json

import requests

from myapp.db import db
from myapp.models import TrackedJob
from myapp.pipeline.output import MARKER
from tests.conftest import wait_until
from tests.jobs import enqueue_test_job
from tests.sse_client import Stream, ended

TOKENS = "".join(f"tok{n} " for n in range(300))


def outputs(stream, job_id) -> list[dict]:
    return [e.json() for e in stream.events if e.type == "output" and e.json()["job"] == job_id]


def joined(events) -> str:
    """The text of output events, checked to follow one another without a gap or overlap."""
    text = ""
    for event in events:
        assert event["offset"] == len(text), (event["offset"], len(text))
        text += event["text"]
    return text


def get_output(server, account, job_id, after=None) -> dict:
    query = f"?after={after}" if after is not None else ""
    answer = requests.get(
        f"{server}/api/jobs/{job_id}/output{query}", headers=account.headers, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_tokens_arrive_in_order_once_and_batched_and_stay_readable(app, server, alice, stream):
    job_id = enqueue_test_job(app, alice, "tests.job_bodies.tokens", count=300, seconds=1.5)
    stream.wait_for(ended(stream, job_id), timeout=30)
    events = outputs(stream, job_id)
    assert joined(events) == TOKENS
    # One token at a time for 1.5 s, at most PROGRESS_MAX_RATE (10) events a second.
    assert 2 <= len(events) <= 1.5 * 10 + 3, len(events)
    whole = get_output(server, alice, job_id)
    assert whole == {"text": TOKENS, "offset": len(TOKENS), "truncated": False}
    assert get_output(server, alice, job_id, after=100)["text"] == TOKENS[100:]
    assert get_output(server, alice, job_id, after=10**6)["text"] == ""
    with app.app_context():
        assert db.session.get(TrackedJob, job_id).output == TOKENS  # survives Redis


def test_a_reconnect_replays_the_output_exactly(app, server, alice, stream):
    job_id = enqueue_test_job(app, alice, "tests.job_bodies.tokens", count=300, seconds=2.0)
    stream.wait_for(lambda _: len(outputs(stream, job_id)) >= 3, timeout=20)
    stream.close()
    seen = [e for e in stream.events if e.type == "output" and e.json()["job"] == job_id]
    resumed = Stream(f"{server}/stream", {**alice.headers, "Last-Event-ID": seen[-1].id})
    try:
        resumed.wait_for(ended(resumed, job_id), timeout=30)
        assert not any(e.type == "snapshot" for e in resumed.events)
        assert joined([e.json() for e in seen] + outputs(resumed, job_id)) == TOKENS
    finally:
        resumed.close()


def test_hostile_text_never_breaks_the_framing_and_is_cut_at_the_bound(app, server, alice):
    job_id = enqueue_test_job(app, alice, "tests.job_bodies.hostile_output", megabytes=10)
    watch = Stream(f"{server}/stream?job={job_id}", alice.headers)
    try:
        watch.wait_for(ended(watch, job_id), timeout=60)
    finally:
        watch.close()
    for line in watch.lines:  # every line of the stream is a field, a comment or blank
        assert line == "" or line.startswith((":", "id:", "event:", "data:", "retry:")), line[:80]
    for event in watch.events:
        json.loads(event.data)
    assert watch.job_events(job_id)[-1]["status"] == "finished"
    text = joined(outputs(watch, job_id))
    assert text.startswith("a\rbc\nd\r\ne\ufffdfg?hdata: x\n\nevent: job\nid: 1\n\n")
    assert text.endswith(MARKER)
    assert len(text.encode()) <= 1024 * 1024 + len(MARKER)
    kept = get_output(server, alice, job_id)
    assert kept["truncated"] is True and kept["text"] == text
    with app.app_context():
        row = db.session.get(TrackedJob, job_id)
        assert row.output == text and row.output_truncated is True


def test_bad_offsets_and_other_users_get_clear_answers(app, server, alice, accounts):
    job_id = enqueue_test_job(app, alice, "tests.job_bodies.tokens", count=5, seconds=0)
    wait_until(lambda: get_output(server, alice, job_id)["text"] == "".join(
        f"tok{n} " for n in range(5)))  # fmt: skip
    for bad in ("-1", "x", "1.5"):
        answer = requests.get(
            f"{server}/api/jobs/{job_id}/output?after={bad}", headers=alice.headers, timeout=10
        )
        assert answer.status_code == 400 and answer.json()["error"].startswith("after")
    bob = accounts.create()
    answer = requests.get(f"{server}/api/jobs/{job_id}/output", headers=bob.headers, timeout=10)
    assert answer.status_code == 404
