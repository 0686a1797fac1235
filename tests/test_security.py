"""Headers, cookies, sign-in throttling, stream limits and tampered credentials."""

import re
import time

import pytest
import requests

from myapp import security
from myapp.db import db
from myapp.models import User
from tests.conftest import wait_until
from tests.sse_client import Stream
from tests.test_auth import csrf_token
from tests.test_stream import snapshot_sent


@pytest.fixture
def alice(accounts):
    return accounts.create()


def test_every_answer_carries_a_strict_policy_and_no_framing(client, alice):
    for path, headers in [("/", {}), ("/api/jobs", alice.headers), ("/stream", {})]:
        response = client.get(path, headers=headers, buffered=True)
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"


def test_rq_dashboard_runs_its_own_inline_script_by_a_nonce_only(client, accounts):
    admin = accounts.create(admin=True)
    nonces = []
    for _ in range(2):
        response = client.get("/rq/", headers=admin.headers)
        assert response.status_code == 200
        policy = response.headers["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]*);", policy).group(1).split()
        assert "'unsafe-inline'" not in script_src
        (nonce,) = [source for source in script_src if source.startswith("'nonce-")]
        html = response.get_data(as_text=True)
        tags = re.findall(r"<script\b[^>]*>", html)
        inline = [tag for tag in tags if " src=" not in tag and "text/template" not in tag]
        assert inline == [f'<script type="text/javascript" nonce="{nonce[7:-1]}">']
        nonces.append(nonce)
        assert response.headers["X-Frame-Options"] == "DENY"
    assert nonces[0] != nonces[1]


def test_the_page_has_no_inline_script_or_handlers(client, alice):
    form = {"name": alice.name, "password": alice.password, "csrf_token": csrf_token(client)}
    assert client.post("/login", data=form).status_code == 302
    html = client.get("/").get_data(as_text=True)
    assert "Start 10 processes" in html
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(" src=" in tag for tag in scripts)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert " style=" not in html


def test_session_cookies_are_httponly_samesite_and_secure_when_asked(make_app, accounts):
    for secure in (False, True):
        app = make_app(SESSION_COOKIE_SECURE=secure)
        account = accounts.create()
        client = app.test_client()
        form = {"name": account.name, "password": account.password}
        response = client.post("/login", data={**form, "csrf_token": csrf_token(client)})
        assert response.status_code == 302
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


def test_guessing_a_password_is_stopped_after_a_few_tries(client, alice):
    wrong = {"name": alice.name, "password": "nope", "csrf_token": csrf_token(client)}
    for _ in range(security.LOGIN_ATTEMPTS_PER_NAME):
        assert client.post("/login", data=wrong).status_code == 401
    right = {**wrong, "password": alice.password}
    response = client.post("/login", data=right)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.get_data(as_text=True)


def test_trying_many_names_from_one_address_is_stopped(client, accounts):
    address = {"REMOTE_ADDR": "198.51.100.7"}
    token = csrf_token(client)
    for i in range(security.LOGIN_ATTEMPTS_PER_ADDRESS):
        form = {"name": f"nobody-{i}", "password": "x", "csrf_token": token}
        assert client.post("/login", data=form, environ_overrides=address).status_code == 401
    bob = accounts.create()
    form = {"name": bob.name, "password": bob.password, "csrf_token": token}
    assert client.post("/login", data=form, environ_overrides=address).status_code == 429
    assert client.post("/login", data=form).status_code == 302  # another address


def test_open_streams_per_user_are_capped(server, accounts, service_env):
    limit = int(service_env["MAX_STREAMS_PER_USER"])
    alice, bob = accounts.create(), accounts.create()
    streams = [Stream(f"{server}/stream", alice.headers) for _ in range(limit)]
    try:
        for stream in streams:
            stream.wait_for(snapshot_sent, timeout=5)
        refused = requests.get(f"{server}/stream", headers=alice.headers, timeout=5)
        assert refused.status_code == 429
        assert f"{limit} open streams" in refused.json()["error"]
        other = Stream(f"{server}/stream", bob.headers)  # others are not affected
        other.wait_for(snapshot_sent, timeout=5)
        other.close()
        streams.pop().close()  # a closed stream frees its place, once the server sees it

        def reopened():
            stream = Stream(f"{server}/stream", alice.headers)
            if stream.response.status_code == 200:
                return stream
            stream.close()
            return None

        streams.append(wait_until(reopened, timeout=10))
        streams[-1].wait_for(snapshot_sent, timeout=5)
    finally:
        for stream in streams:
            stream.close()


def test_open_streams_keep_their_places_past_one_lease(server, accounts, service_env):
    """Leases last three heartbeats and a few seconds; open streams keep renewing them."""
    limit = int(service_env["MAX_STREAMS_PER_USER"])
    lease = 3 * float(service_env["STREAM_HEARTBEAT_SECONDS"]) + 5
    alice = accounts.create()
    streams = [Stream(f"{server}/stream", alice.headers) for _ in range(limit)]
    try:
        for stream in streams:
            stream.wait_for(snapshot_sent, timeout=5)
        time.sleep(lease + 2)
        refused = requests.get(f"{server}/stream", headers=alice.headers, timeout=5, stream=True)
        refused.close()
        assert refused.status_code == 429
    finally:
        for stream in streams:
            stream.close()


def assert_refused(response):
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/json")
    assert b"event:" not in response.content and b"data:" not in response.content


def test_forged_and_revoked_credentials_get_no_event_bytes(server, app, runner, alice, accounts):
    stream = f"{server}/stream"
    flipped = alice.token[:-1] + ("A" if alice.token[-1] != "A" else "B")
    for token in ("", "x", "0" * 43, flipped, alice.token.upper()):
        headers = {"Authorization": f"Bearer {token}"}
        assert_refused(requests.get(stream, headers=headers, timeout=5))

    # A session cookie with one character changed is no session at all.
    session = requests.Session()
    page = session.get(f"{server}/", timeout=5).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"name": alice.name, "password": alice.password, "csrf_token": csrf}
    assert session.post(f"{server}/login", data=form, timeout=5).ok
    cookie = session.cookies["session"]
    assert session.get(f"{server}/api/jobs", timeout=5).status_code == 200
    middle = len(cookie) // 2
    tampered = cookie[:middle] + ("a" if cookie[middle] != "a" else "b") + cookie[middle + 1 :]
    forged = {"Cookie": f"session={tampered}", "Accept": "application/json"}
    assert_refused(requests.get(stream, headers=forged, timeout=5))

    # Revoked tokens, and the tokens of a deleted user, stop working at once.
    result = runner.invoke(args=["user", "revoke", alice.name])
    assert result.exit_code == 0 and "revoked 1 token" in result.output
    assert_refused(requests.get(stream, headers=alice.headers, timeout=5))
    carol = accounts.create()
    with app.app_context():
        db.session.delete(db.session.scalar(db.select(User).filter_by(name=carol.name)))
        db.session.commit()
    assert_refused(requests.get(stream, headers=carol.headers, timeout=5))
    assert_refused(requests.get(f"{server}/api/jobs", headers=carol.headers, timeout=5))


#: Every way to name a job or a profile, as (method, path, query); ``{job}`` and
#: ``{profile}`` are filled in. The test fails when a route that takes an id is added
#: without being listed here.
BY_ID = [
    ("GET", "/api/jobs/{job}", ""),
    ("POST", "/api/jobs/{job}/cancel", ""),
    ("POST", "/api/jobs/{job}/retry", ""),
    ("GET", "/api/jobs", "?parent={job}"),
    ("GET", "/stream", "?job={job}"),
    ("GET", "/api/profiles/{profile}", ""),
    ("GET", "/profiles/{profile}", ""),
]


def test_another_users_ids_read_exactly_like_unknown_ones(app, server, accounts, alice):
    rules = [rule.rule for rule in app.url_map.iter_rules() if not rule.rule.startswith("/rq")]
    with_ids = {rule for rule in rules if "_id>" in rule}
    listed = {path.replace("{job}", "<job_id>").replace("{profile}", "<int:profile_id>")
              for _, path, _ in BY_ID}  # fmt: skip
    assert with_ids <= listed

    bob = accounts.create()
    body = {"kind": "generate_profile", "params": {"stage_seconds": 0}}
    parent = requests.post(f"{server}/api/jobs", json=body, headers=bob.headers, timeout=10).json()
    wait_until(lambda: requests.get(f"{server}/api/jobs/{parent['id']}", headers=bob.headers,
                                    timeout=5).json()["status"] == "finished", 60)  # fmt: skip
    done = requests.get(f"{server}/api/jobs/{parent['id']}", headers=bob.headers, timeout=5).json()
    profile = done["result"]["profile_id"]
    piece = done["children"][0]

    def ask(method, path, query, job, profile_id, headers):
        url = server + (path + query).format(job=job, profile=profile_id)
        answer = requests.request(method, url, headers={**headers, "Accept": "application/json"},
                                  timeout=5, stream=True)  # fmt: skip
        try:  # an owner's stream stays open: read only what a refusal says
            said = answer.raw.read(2000) if answer.status_code >= 400 else b""
            return answer.status_code, answer.headers["Content-Type"], said
        finally:
            answer.close()

    for method, path, query in BY_ID:
        for job in (parent["id"], piece):
            theirs = ask(method, path, query, job, profile, alice.headers)
            unknown = ask(method, path, query, "0" * 8, 2**31 - 1, alice.headers)
            assert theirs[0] == 404, (method, path, query, theirs)
            assert theirs == unknown, (method, path, query)
            # ... while their owner is answered (a 409 for what cannot be done).
            assert ask(method, path, query, job, profile, bob.headers)[0] in (200, 409)
