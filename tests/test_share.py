"""Share links over real HTTP: a signed, expiring, revocable view of one job, for anyone
with the link, that shows nothing else of its owner's and lets nobody act."""

from __future__ import annotations

import time

import pytest
import requests

from myapp import job_json
from tests.conftest import wait_until
from tests.jobs import album, start, submit
from tests.records import state_of
from tests.sse_client import Stream, ended, snapshot_sent


def share(server, account, job_id, **body) -> requests.Response:
    return requests.post(
        f"{server}/api/jobs/{job_id}/share", json=body, headers=account.headers, timeout=10
    )


def link_to(server, account, job_id, **body) -> str:
    answer = share(server, account, job_id, **body)
    assert answer.status_code == 201, answer.text
    return answer.json()["url"]


def anonymous_stream(url: str) -> Stream:
    return Stream(f"{url}/stream", {})


def test_a_link_shows_the_job_live_to_anyone_until_its_end(server, alice):
    job = start(server, alice, steps=5, step_seconds=0.1)
    answer = share(server, alice, job["id"])
    assert answer.status_code == 201
    url, expires_at = answer.json()["url"], answer.json()["expires_at"]
    assert url.startswith(f"{server}/watch/")
    hour = (job_json.parse_time(expires_at) - job_json.utcnow()).total_seconds()
    assert 3590 < hour <= 3600
    watch = anonymous_stream(url)
    try:
        watch.wait_for(ended(watch, job["id"]), timeout=30)
        (snapshot,) = [e.json() for e in watch.events if e.type == "snapshot"]
        assert [j["id"] for j in snapshot["jobs"]] == [job["id"]]
        record = requests.get(f"{server}/api/jobs/{job['id']}", headers=alice.headers).json()
        assert watch.job_events(job["id"])[-1] == state_of(record)
    finally:
        watch.close()
    page = requests.get(url, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and "A job shared with you" in page.text
    assert alice.name not in page.text and alice.token not in page.text


def test_a_batch_link_shows_its_pieces_and_nothing_else_of_the_owners(server, alice):
    batch = submit(server, alice, "publish_album", album(4, latency_ms=150))
    other = start(server, alice, steps=10, step_seconds=0.1)  # hers, not shared
    watch = anonymous_stream(link_to(server, alice, batch["id"]))
    try:
        watch.wait_for(ended(watch, batch["id"]), timeout=60)
        seen = {e.json()["id"] for e in watch.events if e.type == "job"}
        for snapshot in (e.json() for e in watch.events if e.type == "snapshot"):
            seen |= {j["id"] for j in snapshot["jobs"]}
        assert seen == {batch["id"], *batch["children"]}
        assert other["id"] not in "\n".join(watch.lines)
    finally:
        watch.close()


def test_a_tampered_or_foreign_token_gets_no_event_bytes(server, alice, accounts):
    job = start(server, alice, steps=3, step_seconds=0.1)
    url = link_to(server, alice, job["id"])
    token = url.rsplit("/", 1)[1]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for bad in (flipped, token[:-1], "x" * len(token), token.upper()):
        answer = requests.get(f"{server}/watch/{bad}/stream", timeout=10)
        assert answer.status_code == 404, bad
        assert answer.json()["error"] == "no such link"
        assert "data:" not in answer.text and "event:" not in answer.text
    # A link names its job inside the signature: asking for another job changes nothing.
    bob = accounts.create()
    bobs = start(server, bob, steps=20, step_seconds=0.1)
    watch = Stream(f"{url}/stream?job={bobs['id']}", {})
    try:
        watch.wait_for(snapshot_sent, timeout=5)
        assert bobs["id"] not in "\n".join(watch.lines)
    finally:
        watch.close()
    assert share(server, bob, job["id"]).status_code == 404  # not his to share


@pytest.mark.parametrize("expires_in", [0, -5, 86401, "60", 1.5, True, None])
def test_a_bad_expiry_is_refused(server, alice, expires_in):
    job = start(server, alice, steps=1, step_seconds=0)
    body = {"expires_in": expires_in}
    answer = requests.post(
        f"{server}/api/jobs/{job['id']}/share", json=body, headers=alice.headers, timeout=10
    )
    if expires_in is None:
        assert answer.status_code == 201  # the default: an hour
    else:
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("expires_in")


def test_an_expired_link_answers_410_and_no_event_bytes(server, alice):
    job = start(server, alice, steps=1, step_seconds=0)
    url = link_to(server, alice, job["id"], expires_in=1)
    time.sleep(1.5)
    stream = requests.get(f"{url}/stream", timeout=10)
    assert stream.status_code == 410
    assert stream.json()["error"] == "this link has expired"
    assert "data:" not in stream.text
    script = requests.get(url, headers={"Accept": "application/json"}, timeout=10)
    assert script.status_code == 410 and script.json()["error"] == "this link has expired"
    browser = requests.get(url, headers={"Accept": "text/html"}, timeout=10)
    assert browser.status_code == 410
    assert "This link no longer works" in browser.text and "expired" in browser.text


def test_revoking_ends_every_link_and_open_views_within_a_heartbeat(server, alice):
    job = start(server, alice, steps=200, step_seconds=0.1)
    urls = [link_to(server, alice, job["id"]) for _ in range(2)]
    watches = [anonymous_stream(url) for url in urls]
    try:
        for watch in watches:
            watch.wait_for(lambda events: any(e.type == "job" for e in events), timeout=15)
        revoked = requests.delete(
            f"{server}/api/jobs/{job['id']}/share", headers=alice.headers, timeout=10
        )
        assert revoked.status_code == 204
        # STREAM_HEARTBEAT_SECONDS is 1 in the tests: each view ends at its next one.
        wait_until(lambda: all(not w._thread.is_alive() for w in watches), timeout=5)
    finally:
        for watch in watches:
            watch.close()
    for url in urls:
        again = requests.get(f"{url}/stream", timeout=10)
        assert again.status_code == 410
        assert again.json()["error"] == "this link was revoked by its owner"
    fresh = anonymous_stream(link_to(server, alice, job["id"]))  # a new link works
    try:
        fresh.wait_for(snapshot_sent, timeout=5)
    finally:
        fresh.close()
    requests.post(f"{server}/api/jobs/{job['id']}/cancel", headers=alice.headers, timeout=10)


def test_a_watcher_cannot_act_on_the_job(server, alice):
    job = start(server, alice, steps=50, step_seconds=0.1)
    link_to(server, alice, job["id"])
    for action in ("cancel", "retry", "share"):
        answer = requests.post(f"{server}/api/jobs/{job['id']}/{action}", timeout=10)
        assert answer.status_code == 401
    assert requests.delete(f"{server}/api/jobs/{job['id']}/share", timeout=10).status_code == 401
    requests.post(f"{server}/api/jobs/{job['id']}/cancel", headers=alice.headers, timeout=10)
