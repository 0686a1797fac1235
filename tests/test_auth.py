from redis import Redis

from myapp.db import db
from myapp.keys import TOKENS
from myapp.models import User
from tests.sessions import csrf_token, session_cookie, sign_in


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
    sign_in(client, alice)
    token = csrf_token(client)  # the page's, after sign-in
    body = {"kind": "process_run", "params": {"steps": 1, "step_seconds": 0}}
    refused = client.post("/api/jobs", json=body)
    assert refused.status_code == 400
    assert "CSRF" in refused.json["error"]
    accepted = client.post("/api/jobs", json=body, headers={"X-CSRFToken": token})
    assert accepted.status_code == 202


def test_bearer_requests_need_no_csrf(client, alice):
    body = {"kind": "process_run", "params": {"steps": 1, "step_seconds": 0}}
    assert client.post("/api/jobs", json=body, headers=alice.headers).status_code == 202


def test_a_cookie_copied_before_sign_out_no_longer_works(app, client, alice):
    sign_in(client, alice)
    copied = session_cookie(client)
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/api/jobs").status_code == 401
    assert 'action="/login"' in thief.get("/").get_data(as_text=True)


def test_signing_out_one_session_leaves_the_user_able_to_sign_in_again(client, alice):
    sign_in(client, alice)
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    sign_in(client, alice)
    assert client.get("/api/jobs").status_code == 200


def test_a_csrf_token_from_before_sign_in_is_refused_after_it(client, alice):
    before = csrf_token(client)
    sign_in(client, alice, token=before)
    response = client.post("/logout", data={"csrf_token": before})
    assert response.status_code == 400
    assert client.get("/api/jobs").status_code == 200  # still signed in
    assert client.post("/logout", data={"csrf_token": csrf_token(client)}).status_code == 302


def test_a_refused_cross_site_post_leaves_the_session_alone(app, client, alice):
    sign_in(client, alice)
    # A cross-site form post carries no SameSite=Lax cookie and no CSRF token.
    for path in ("/logout", "/login", "/anywhere"):
        refused = app.test_client().post(path, data={"name": "x"})
        assert refused.status_code == 400, path
        cookies = refused.headers.getlist("Set-Cookie")
        assert not [c for c in cookies if c.startswith("session=")], cookies
        for cookie in cookies:  # what the visitor's browser would keep
            name, _, rest = cookie.partition("=")
            client.set_cookie(name, rest.split(";")[0])
    assert client.get("/api/jobs").status_code == 200


def test_a_token_seen_before_stops_working_at_once_when_revoked(app, client, runner, accounts):
    carol = accounts.create()
    for _ in range(2):  # the second answer comes from the process's memory of the token
        assert client.get("/api/jobs", headers=carol.headers).status_code == 200
    assert runner.invoke(args=["user", "revoke", carol.name]).exit_code == 0
    assert client.get("/api/jobs", headers=carol.headers).status_code == 401


def test_a_token_seen_before_stops_working_when_its_user_is_deleted(app, client, accounts):
    dan = accounts.create()
    assert client.get("/api/jobs", headers=dan.headers).status_code == 200
    with app.app_context():
        db.session.delete(db.session.scalar(db.select(User).filter_by(name=dan.name)))
        db.session.commit()
    assert client.get("/api/jobs", headers=dan.headers).status_code == 401


def test_tokens_are_judged_by_the_database_when_redis_lost_their_generation(app, client, accounts):
    erin = accounts.create()
    assert client.get("/api/jobs", headers=erin.headers).status_code == 200
    redis = Redis.from_url(app.config["REDIS_URL"])
    redis.delete(TOKENS)  # as after a restart or a failover that lost it
    with app.app_context():
        db.session.delete(db.session.scalar(db.select(User).filter_by(name=erin.name)))
        db.session.commit()
    redis.delete(TOKENS)  # and once more after the deletion's new one
    assert client.get("/api/jobs", headers=erin.headers).status_code == 401
