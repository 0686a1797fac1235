import re

import pytest


def csrf_token(client) -> str:
    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)


@pytest.fixture
def alice(accounts):
    return accounts.create()


def test_signed_out_page_shows_the_sign_in_form(client):
    page = client.get("/").get_data(as_text=True)
    assert 'action="/login"' in page
    assert 'id="jobs"' not in page


def test_sign_in_and_out(client, alice):
    token = csrf_token(client)
    response = client.post(
        "/login", data={"name": alice.name, "password": alice.password, "csrf_token": token}
    )
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert alice.name in page
    assert 'id="jobs"' in page
    assert client.get("/api/jobs").status_code == 200

    client.post("/logout", data={"csrf_token": csrf_token(client)})
    assert client.get("/api/jobs").status_code == 401


def test_wrong_password_is_refused(client, alice):
    response = client.post(
        "/login", data={"name": alice.name, "password": "wrong", "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 401
    assert "Wrong name or password" in response.get_data(as_text=True)


def test_forms_need_the_csrf_token(client, alice):
    response = client.post("/login", data={"name": alice.name, "password": alice.password})
    assert response.status_code == 400
    assert client.get("/api/jobs").status_code == 401


def test_page_api_calls_need_the_csrf_header(client, alice):
    token = csrf_token(client)
    client.post(
        "/login", data={"name": alice.name, "password": alice.password, "csrf_token": token}
    )
    body = {"kind": "process_run", "params": {"steps": 1, "step_seconds": 0}}
    refused = client.post("/api/jobs", json=body)
    assert refused.status_code == 400
    assert "CSRF" in refused.json["error"]
    accepted = client.post("/api/jobs", json=body, headers={"X-CSRFToken": token})
    assert accepted.status_code == 202


def test_bearer_requests_need_no_csrf(client, alice):
    body = {"kind": "process_run", "params": {"steps": 1, "step_seconds": 0}}
    assert client.post("/api/jobs", json=body, headers=alice.headers).status_code == 202
