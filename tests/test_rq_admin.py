import time

import requests
from playwright.sync_api import expect

from myapp.connections import get_queue
from tests.conftest import wait_until
from tests.jobs import enqueue_test_job, submit
from tests.sessions import sign_in
from tests.sse_client import Stream, ended, snapshot_sent


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/rq/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_bad_token_is_401(client):
    assert client.get("/rq/", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_normal_user_is_403(client, accounts):
    user = accounts.create()
    assert client.get("/rq/", headers=user.headers).status_code == 403
    sign_in(client, user)
    assert client.get("/rq/").status_code == 403


def test_admin_sees_the_dashboard(client, accounts):
    admin = accounts.create(admin=True)
    response = client.get("/rq/", headers=admin.headers)
    assert response.status_code == 200
    assert "RQ dashboard" in response.get_data(as_text=True)
    sign_in(client, admin)
    assert client.get("/rq/").status_code == 200


def csrf_cookie(client) -> str:
    return client.get_cookie("_csrf_token", path="/rq").value


def start_process(client, account, steps: int, step_seconds: float) -> dict:
    """Start a process_run through the app with ``account``'s token; the job as answered."""
    body = {"kind": "process_run", "params": {"steps": steps, "step_seconds": step_seconds}}
    response = client.post("/api/jobs", json=body, headers=account.headers)
    assert response.status_code == 202, response.json
    return response.json


def test_dashboard_posts_need_the_csrf_token(client, accounts):
    admin = accounts.create(admin=True)
    sign_in(client, admin)
    assert client.get("/rq/").status_code == 200
    refused = client.post("/rq/queue/nothing-here/failed/empty")
    assert refused.status_code == 400
    accepted = client.post(
        "/rq/queue/nothing-here/failed/empty", headers={"X-CSRFToken": csrf_cookie(client)}
    )
    assert accepted.status_code == 200


def test_admin_opens_one_of_our_jobs_there(app, client, accounts):
    admin = accounts.create(admin=True)
    job = start_process(client, admin, steps=1, step_seconds=0)
    page = client.get(f"/rq/0/view/job/{job['id']}", headers=admin.headers)
    assert page.status_code == 200
    data = client.get(f"/rq/0/data/job/{job['id']}.json", headers=admin.headers)
    assert data.status_code == 200
    assert data.json["id"] == job["id"]
    assert "process_run" in data.json["description"]


def test_requeue_and_delete_there_show_in_our_records_and_streams(app, client, server, accounts):
    admin = accounts.create(admin=True)
    sign_in(client, admin)
    client.get("/rq/")
    token = csrf_cookie(client)
    stream = Stream(f"{server}/stream", admin.headers)
    try:
        stream.wait_for(snapshot_sent, timeout=5)
        job_id = enqueue_test_job(app, admin, "tests.job_bodies.boom", rows=2)
        stream.wait_for(ended(stream, job_id))
        response = client.post(f"/rq/job/{job_id}/requeue", headers={"X-CSRFToken": token})
        assert response.status_code == 200
        stream.wait_for(
            lambda _: [e["status"] for e in stream.job_events(job_id)].count("failed") == 2
        )
        statuses = [e["status"] for e in stream.job_events(job_id)]
        assert statuses[statuses.index("failed") + 1] == "queued"

        running = start_process(client, admin, steps=300, step_seconds=0.05)
        stream.wait_for(
            lambda _: "started" in [e["status"] for e in stream.job_events(running["id"])]
        )
        response = client.post(f"/rq/job/{running['id']}/delete", headers={"X-CSRFToken": token})
        assert response.status_code == 200
        # A running job is asked to stop, as the API's cancel does, and stays stopped.
        stream.wait_for(
            lambda _: "canceled" in [e["status"] for e in stream.job_events(running["id"])]
        )
        time.sleep(3)  # what used to follow: "started" again, then "finished"
        statuses = [e["status"] for e in stream.job_events(running["id"])]
        assert statuses[statuses.index("canceled") :] == ["canceled"]
        record = client.get(f"/api/jobs/{running['id']}", headers=admin.headers).json
        assert record["status"] == "canceled"
        assert record["ended_at"] is not None

    finally:
        stream.close()


def test_requeue_all_refuses_a_get_from_another_site(app, client, accounts, worker):
    admin = accounts.create(admin=True)
    sign_in(client, admin)
    job_id = enqueue_test_job(app, admin, "tests.job_bodies.boom", rows=2)
    wait_until(lambda: client.get(f"/api/jobs/{job_id}").json["status"] == "failed")
    # A link followed from another site: a top-level GET, which SameSite=Lax lets through.
    response = client.get("/rq/requeue/default", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 405
    assert "POST" in response.json["error"]
    time.sleep(1)
    assert client.get(f"/api/jobs/{job_id}").json["status"] == "failed"
    with app.app_context():
        assert job_id in get_queue().failed_job_registry.get_job_ids()


def test_requeue_all_by_post_shows_in_our_records_and_streams(app, client, server, accounts):
    admin = accounts.create(admin=True)
    sign_in(client, admin)
    client.get("/rq/")
    stream = Stream(f"{server}/stream", admin.headers)
    try:
        stream.wait_for(snapshot_sent, timeout=5)
        job_id = enqueue_test_job(app, admin, "tests.job_bodies.boom", rows=2)
        stream.wait_for(ended(stream, job_id))
        response = client.post("/rq/requeue/default", headers={"X-CSRFToken": csrf_cookie(client)})
        assert response.status_code == 200
        stream.wait_for(
            lambda _: [e["status"] for e in stream.job_events(job_id)].count("failed") == 2
        )
        statuses = [e["status"] for e in stream.job_events(job_id)]
        # (its worker may take it before the sync is told: then "started" comes first)
        assert statuses[statuses.index("failed") + 1] in ("queued", "started")
    finally:
        stream.close()


def test_a_stranger_on_another_instance_is_sent_to_sign_in(client, accounts):
    assert client.get("/rq/1/view").status_code == 302
    assert client.get("/rq/7/data/queues.json").status_code == 302
    admin = accounts.create(admin=True)
    unknown = client.get("/rq/1/view", headers=admin.headers)
    assert unknown.status_code == 404


def test_the_workers_page_reads_a_busy_worker(app, server, client, accounts):
    admin = accounts.create(admin=True)
    job = start_process(client, admin, steps=60, step_seconds=0.05)

    def busy():
        workers = client.get("/rq/0/data/workers.json", headers=admin.headers)
        assert workers.status_code == 200
        jobs = [w["current_job"] for w in workers.json["workers"]]
        return [j for j in jobs if isinstance(j, dict) and j["job_id"] == job["id"]]

    (current,) = wait_until(busy, timeout=15)
    assert current["call_string"].startswith("myapp.jobs.process_run.run(")
    assert client.get("/rq/0/view/workers", headers=admin.headers).status_code == 200


#: What every user-chosen string carries: an element, and a handler that would run.
MARKUP = '<img class="pwned" src="x:" onerror="window.__pwned=1"><b class="pwned">b</b>'


def test_markup_in_users_strings_stays_text_on_every_dashboard_page(
    server, accounts, new_dashboard
):
    admin = accounts.create(admin=True)

    items = [
        {"name": f"{MARKUP} refused", "size_kb": 10, "reject": True},
        {"name": f"{MARKUP} done", "size_kb": 10},
    ]
    album = submit(server, admin, "publish_album", {"items": items, "latency_ms": 100})
    busy = submit(
        server,
        admin,
        "publish_album",
        {"items": [{"name": MARKUP, "size_kb": 10}], "latency_ms": 30_000},
    )
    profile = submit(server, admin, "generate_profile", {"name": MARKUP[:80], "stage_seconds": 0})
    refused, done = album["children"]
    (slow,) = busy["children"]
    wait_until(lambda: requests.get(
        f"{server}/api/jobs/{profile['id']}", headers=admin.headers, timeout=5
    ).json()["status"] == "finished", timeout=30)  # fmt: skip

    dashboard = new_dashboard().sign_in(admin)
    page = dashboard.page
    pages = [
        (f"/rq/0/view/job/{job_id}", "#job-data p")
        for job_id in (slow, refused, done, profile["children"][0])
    ]
    pages += [
        ("/rq/0/view/jobs/default/started/8/asc/1", "[data-role=job]"),
        ("/rq/0/view/workers", "[data-role=worker] a"),  # the busy worker's job
    ]
    for path, loaded in pages:
        page.goto(path)
        expect(page.locator(loaded).first).to_be_attached(timeout=15_000)
        page.wait_for_timeout(300)  # its polling renders again
        assert page.locator(".pwned").count() == 0, path
        assert page.evaluate("window.__pwned") is None, path
    page.goto(f"/rq/0/view/job/{profile['children'][0]}")
    expect(page.locator("#job-data")).to_contain_text("<b class=")  # as text
    assert dashboard.errors == []
    requests.post(f"{server}/api/jobs/{busy['id']}/cancel", headers=admin.headers, timeout=5)
