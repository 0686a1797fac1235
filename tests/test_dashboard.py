import re


def sign_in(client, account):
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    client.post(
        "/login", data={"name": account.name, "password": account.password, "csrf_token": token}
    )


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
    job = client.post(
        "/api/jobs",
        json={"kind": "process_run", "params": {"steps": 1, "step_seconds": 0}},
        headers=admin.headers,
    ).json
    page = client.get(f"/rq/0/view/job/{job['id']}", headers=admin.headers)
    assert page.status_code == 200
    data = client.get(f"/rq/0/data/job/{job['id']}.json", headers=admin.headers)
    assert data.status_code == 200
    assert data.json["id"] == job["id"]
    assert "process_run" in data.json["description"]


def test_requeue_and_delete_there_show_in_our_records_and_streams(app, client, server, accounts):
    from tests.sse_client import Stream
    from tests.test_stream import finished, snapshot_sent
    from tests.test_worker import enqueue_test_job

    admin = accounts.create(admin=True)
    sign_in(client, admin)
    client.get("/rq/")
    token = csrf_cookie(client)
    stream = Stream(f"{server}/stream", admin.headers)
    try:
        stream.wait_for(snapshot_sent, timeout=5)
        job_id = enqueue_test_job(app, admin, "tests.job_bodies.boom", rows=2)
        stream.wait_for(finished(stream, job_id))
        response = client.post(f"/rq/job/{job_id}/requeue", headers={"X-CSRFToken": token})
        assert response.status_code == 200
        stream.wait_for(
            lambda _: [e["status"] for e in stream.job_events(job_id)].count("failed") == 2
        )
        statuses = [e["status"] for e in stream.job_events(job_id)]
        assert statuses[statuses.index("failed") + 1] == "queued"

        running = client.post(
            "/api/jobs",
            json={"kind": "process_run", "params": {"steps": 300, "step_seconds": 0.05}},
            headers=admin.headers,
        ).json
        stream.wait_for(
            lambda _: "started" in [e["status"] for e in stream.job_events(running["id"])]
        )
        response = client.post(f"/rq/job/{running['id']}/delete", headers={"X-CSRFToken": token})
        assert response.status_code == 200
        record = client.get(f"/api/jobs/{running['id']}", headers=admin.headers).json
        assert (record["status"], record["error"]) == ("canceled", "deleted in rq-dashboard")
    finally:
        stream.close()
