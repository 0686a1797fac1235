"""Jobs in pieces on real workers: batches, sequences, their counts, cancel and retry."""

import uuid

import pytest
import requests
from redis import Redis

from myapp.jobs.publish_album import RETRIES
from tests.jobs import album, seconds_between, submit
from tests.records import rows_of, rq_jobs_of
from tests.sse_client import ended, last


def post(server, account, path):
    return requests.post(f"{server}{path}", headers=account.headers, timeout=30)


def get(server, account, path):
    return requests.get(f"{server}{path}", headers=account.headers, timeout=30)


def runs(stream, job_id, after=0) -> int:
    """How many times the job started (each attempt is one move into ``started``)."""
    count, previous = 0, None
    for event in stream.job_events(job_id)[after:]:
        if event["status"] == "started" and previous != "started":
            count += 1
        previous = event["status"]
    return count


def test_a_batch_ends_with_its_counts_and_a_retry_runs_only_what_failed(server, alice, stream):
    batch = submit(server, alice, "publish_album", album(20, rejected={3, 11}, failure_rate=0.1))
    children = batch["children"]
    assert len(children) == 20
    assert batch["counts"] == {
        "total": 20, "queued": 20, "started": 0, "finished": 0,
        "failed": 0, "canceled": 0, "skipped": 0,
    }  # fmt: skip
    stream.wait_for(ended(stream, batch["id"]), timeout=90)

    done = last(stream, batch["id"])
    assert done["status"] == "failed"
    assert done["error"] == "2 of 20 failed"
    assert done["counts"]["finished"] == 18 and done["counts"]["failed"] == 2
    assert [f["name"] for f in done["result"]["failed"]] == ["photo-003.jpg", "photo-011.jpg"]
    assert all("refused" in f["error"] for f in done["result"]["failed"])
    assert get(server, alice, f"/api/jobs/{batch['id']}").json()["counts"] == done["counts"]
    rejected = {children[3], children[11]}
    for child_id in children:
        child = get(server, alice, f"/api/jobs/{child_id}").json()
        assert child["parent"] == batch["id"]
        assert child["status"] == ("failed" if child_id in rejected else "finished")
        # A refusal is permanent: tried once. Transient errors were retried.
        assert runs(stream, child_id) == 1 if child_id in rejected else runs(stream, child_id) >= 1

    marks = {child_id: len(stream.job_events(child_id)) for child_id in children}
    mark = len(stream.job_events(batch["id"]))
    response = post(server, alice, f"/api/jobs/{batch['id']}/retry")
    assert response.status_code == 202, response.text
    stream.wait_for(ended(stream, batch["id"], after=mark), timeout=60)

    assert last(stream, batch["id"])["error"] == "2 of 20 failed"
    again = {child_id for child_id in children if runs(stream, child_id, marks[child_id])}
    assert again == rejected


def test_a_transient_error_is_retried_up_to_the_limit(server, alice, stream):
    batch = submit(server, alice, "publish_album", album(1, failure_rate=1.0, latency_ms=0))
    (child_id,) = batch["children"]
    stream.wait_for(ended(stream, batch["id"]), timeout=60)

    assert runs(stream, child_id) == 1 + RETRIES
    child = get(server, alice, f"/api/jobs/{child_id}").json()
    assert child["status"] == "failed"
    assert "timed out (simulated)" in child["error"]
    assert last(stream, batch["id"])["error"] == "1 of 1 failed"


def test_the_bar_of_a_batch_never_moves_back_and_ends_full(server, alice, stream):
    batch = submit(server, alice, "publish_album", album(10, failure_rate=0.15, latency_ms=100))
    stream.wait_for(ended(stream, batch["id"]), timeout=90)

    events = stream.job_events(batch["id"])
    percents = [e["progress"]["percent"] for e in events if e["progress"]["percent"] is not None]
    assert percents == sorted(percents)
    assert events[-1]["status"] == "finished"
    assert events[-1]["progress"]["percent"] == 100.0
    assert events[-1]["result"]["failed"] == []
    assert len(events[-1]["result"]["finished"]) == 10


def test_cancel_a_batch_midway_keeps_what_finished(server, alice, stream):
    batch = submit(server, alice, "publish_album", album(16, latency_ms=400))
    stream.wait_for(
        lambda _: any(e["counts"]["finished"] >= 2 for e in stream.job_events(batch["id"])),
        timeout=60,
    )
    response = post(server, alice, f"/api/jobs/{batch['id']}/cancel")
    assert response.status_code == 202, response.text
    stream.wait_for(ended(stream, batch["id"]), timeout=30)

    done = last(stream, batch["id"])
    assert done["status"] == "canceled"
    counts = done["counts"]
    assert counts["finished"] >= 2 and counts["canceled"] >= 1
    assert counts["finished"] + counts["canceled"] == 16
    assert counts["queued"] == counts["started"] == 0
    children = get(server, alice, f"/api/jobs?parent={batch['id']}").json()["jobs"]
    assert sorted({c["status"] for c in children}) == ["canceled", "finished"]
    assert post(server, alice, f"/api/jobs/{batch['id']}/cancel").status_code == 409


def test_a_sequence_whose_middle_stage_fails_skips_the_last(server, alice, stream):
    params = {"stage_seconds": 0.3, "fail_stage": "background"}
    sequence = submit(server, alice, "generate_profile", params)
    traits, background, summary = sequence["children"]
    stream.wait_for(ended(stream, sequence["id"]), timeout=60)

    done = last(stream, sequence["id"])
    assert done["status"] == "failed"
    assert done["error"].startswith("stage 2 of 3 (background) failed: ")
    assert done["counts"] == {
        "total": 3, "queued": 0, "started": 0, "finished": 1,
        "failed": 1, "canceled": 0, "skipped": 1,
    }  # fmt: skip
    assert get(server, alice, f"/api/jobs/{summary}").json()["status"] == "skipped"
    assert runs(stream, summary) == 0
    assert runs(stream, background) == 1  # a permanent error: not retried
    messages = [e["progress"]["message"] for e in stream.job_events(sequence["id"])]
    assert "2/3: background" in messages

    marks = {job_id: len(stream.job_events(job_id)) for job_id in sequence["children"]}
    mark = len(stream.job_events(sequence["id"]))
    assert post(server, alice, f"/api/jobs/{sequence['id']}/retry").status_code == 202
    stream.wait_for(ended(stream, sequence["id"], after=mark), timeout=60)
    assert runs(stream, traits, marks[traits]) == 0  # finished: not run again
    assert runs(stream, background, marks[background]) == 1
    assert runs(stream, summary, marks[summary]) == 0


def test_a_sequence_makes_a_profile_shown_at_its_link(server, alice, accounts, stream):
    sequence = submit(server, alice, "generate_profile", {"stage_seconds": 0.2, "name": "Wren"})
    stream.wait_for(ended(stream, sequence["id"]), timeout=60)

    done = last(stream, sequence["id"])
    assert done["status"] == "finished", done["error"]
    assert done["progress"]["percent"] == 100.0
    link = done["result"]["link"]
    assert link.startswith("/profiles/")
    page = get(server, alice, link)
    assert page.status_code == 200
    assert "Wren" in page.text
    profile = get(server, alice, f"/api/profiles/{done['result']['profile_id']}").json()
    assert profile["name"] == "Wren"
    assert profile["summary"] == done["result"]["summary"]
    assert "Wren" in profile["background"]
    # Each stage started only after the one before it had finished.
    stages = done["children"]
    for earlier, later in zip(stages, stages[1:], strict=False):
        finished_at = get(server, alice, f"/api/jobs/{earlier}").json()["ended_at"]
        started_at = get(server, alice, f"/api/jobs/{later}").json()["started_at"]
        assert finished_at <= started_at
    other = accounts.create()
    assert get(server, other, link).status_code == 404
    assert get(server, other, f"/api/jobs/{sequence['id']}").status_code == 404


def test_a_200_item_batch_stays_within_the_coalescing_limit(server, alice, stream, app):
    rate = app.config["PROGRESS_MAX_RATE"]
    batch = submit(server, alice, "publish_album", album(200, latency_ms=0, size_kb=10))
    stream.wait_for(ended(stream, batch["id"]), timeout=120)

    events = [e for e in stream.events if e.type == "job"]
    parent = [e.json() for e in events if e.json()["id"] == batch["id"]]
    assert parent[-1]["status"] == "finished"
    assert parent[-1]["counts"]["finished"] == 200
    seconds = seconds_between(parent[-1]["ended_at"], parent[0]["created_at"])
    # Each status change goes out at once, the rest at most `rate` a second.
    assert len(parent) <= rate * seconds + 4, (len(parent), seconds)
    for child_id in batch["children"]:
        child = stream.job_events(child_id)
        assert child[-1]["status"] == "finished"
        span = seconds_between(child[-1]["updated_at"], child[0]["updated_at"])
        assert len(child) <= rate * span + 3, (len(child), span)


# -- the API of a parent, without waiting for workers ---------------------------


def test_the_list_shows_parents_and_their_pieces_are_listed_by_parent(client, alice, accounts):
    body = {"kind": "publish_album", "params": album(3, latency_ms=0)}
    batch = client.post("/api/jobs", json=body, headers=alice.headers).json
    listed = client.get("/api/jobs", headers=alice.headers).json["jobs"]
    assert [job["id"] for job in listed] == [batch["id"]]
    assert listed[0]["children"] == batch["children"]
    assert listed[0]["counts"]["total"] == 3

    pieces = client.get(f"/api/jobs?parent={batch['id']}", headers=alice.headers).json["jobs"]
    assert [piece["id"] for piece in pieces] == batch["children"]
    assert [piece["name"] for piece in pieces] == [f"photo-00{i}.jpg" for i in range(3)]
    assert {piece["parent"] for piece in pieces} == {batch["id"]}
    assert {piece["kind"] for piece in pieces} == {"publish_album.upload"}

    bob = accounts.create()
    assert client.get(f"/api/jobs?parent={batch['id']}", headers=bob.headers).status_code == 404
    assert client.get(f"/api/jobs/{pieces[0]['id']}", headers=bob.headers).status_code == 404


def test_a_piece_is_canceled_and_retried_with_its_parent_only(client, alice):
    body = {"kind": "generate_profile", "params": {"stage_seconds": 0}}
    sequence = client.post("/api/jobs", json=body, headers=alice.headers).json
    for action in ("cancel", "retry"):
        response = client.post(
            f"/api/jobs/{sequence['children'][0]}/{action}", headers=alice.headers
        )
        assert response.status_code == 409
        assert "piece of another" in response.json["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "publish_album", "params": {"items": []}}, "params.items"),
        ({"kind": "publish_album", "params": album(1, failure_rate=2)}, "params.failure_rate"),
        ({"kind": "publish_album", "params": album(1001)}, "params.items"),
        ({"kind": "publish_album.upload", "params": {}}, "unknown kind"),
        ({"kind": "generate_profile", "params": {"fail_stage": "x"}}, "params.fail_stage"),
        ({"kind": "generate_profile", "params": {"mood": "sad"}}, "params.mood"),
    ],
)
def test_bad_pieces_requests_start_nothing(app, client, alice, body, message):
    keys, rows = rq_jobs_of(app, alice), rows_of(app, alice)
    response = client.post("/api/jobs", json=body, headers=alice.headers)
    assert response.status_code == 400
    assert message in response.json["error"]
    assert rq_jobs_of(app, alice) == keys
    assert rows_of(app, alice) == rows


def test_a_batchs_pieces_wait_their_turn_in_their_order(make_app, alice):
    """Past ``MAX_RUNNING_JOBS_PER_USER`` the pieces are held back, each in its place."""
    app = make_app(RQ_QUEUE=f"idle-{uuid.uuid4().hex[:8]}", MAX_RUNNING_JOBS_PER_USER=3)
    client = app.test_client()
    body = {"kind": "publish_album", "params": album(12, latency_ms=0)}
    batch = client.post("/api/jobs", json=body, headers=alice.headers).json
    pieces = client.get(f"/api/jobs?parent={batch['id']}", headers=alice.headers).json["jobs"]
    assert [piece["id"] for piece in pieces] == batch["children"]
    assert [piece["queue"]["position"] for piece in pieces] == list(range(1, 13))
    redis = Redis.from_url(app.config["REDIS_URL"])
    running = redis.lrange(f"rq:queue:{app.config['RQ_QUEUE']}", 0, -1)
    assert [job_id.decode() for job_id in running] == batch["children"][:3]
