"""Headers, cookies, sign-in throttling, stream limits and tampered credentials."""

import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time

import pytest
import requests

from myapp.config import from_environment
from myapp.db import db
from myapp.models import User
from myapp.web import throttle
from tests.conftest import ROOT, wait_until
from tests.sessions import csrf_token
from tests.sse_client import Stream, snapshot_sent


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
    for _ in range(throttle.LOGIN_ATTEMPTS_PER_NAME):
        assert client.post("/login", data=wrong).status_code == 401
    right = {**wrong, "password": alice.password}
    response = client.post("/login", data=right)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.get_data(as_text=True)


def test_trying_many_names_from_one_address_is_stopped(client, accounts):
    address = {"REMOTE_ADDR": "198.51.100.7"}
    token = csrf_token(client)
    for i in range(throttle.LOGIN_ATTEMPTS_PER_ADDRESS):
        form = {"name": f"nobody-{i}", "password": "x", "csrf_token": token}
        assert client.post("/login", data=form, environ_overrides=address).status_code == 401
    bob = accounts.create()
    form = {"name": bob.name, "password": bob.password, "csrf_token": token}
    assert client.post("/login", data=form, environ_overrides=address).status_code == 429
    assert client.post("/login", data=form).status_code == 302  # another address


def fresh_address() -> str:
    """An address no earlier test signed in from: the throttle's counters outlive tests."""
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(256)}"


def test_failures_from_one_address_never_block_the_right_password_from_another(make_app, accounts):
    app = make_app(PROXY_COUNT=1)  # behind nginx: every request comes from the proxy
    client = app.test_client()
    alice = accounts.create()
    token = csrf_token(client)
    attacker = {"X-Forwarded-For": fresh_address()}
    for i in range(throttle.LOGIN_ATTEMPTS_PER_ADDRESS):
        name = alice.name if i < throttle.LOGIN_ATTEMPTS_PER_NAME else f"made-up-{i}"
        form = {"name": name, "password": "guess", "csrf_token": token}
        assert client.post("/login", data=form, headers=attacker).status_code == 401
    right = {"name": alice.name, "password": alice.password, "csrf_token": token}
    assert client.post("/login", data=right, headers=attacker).status_code == 429
    bob = accounts.create()
    for user in (alice, bob):
        form = {"name": user.name, "password": user.password, "csrf_token": csrf_token(client)}
        elsewhere = {"X-Forwarded-For": fresh_address()}
        assert client.post("/login", data=form, headers=elsewhere).status_code == 302


def test_guessing_one_name_from_many_addresses_is_bounded(client, alice, monkeypatch):
    monkeypatch.setattr(throttle, "LOGIN_ATTEMPTS_PER_NAME_ANYWHERE", 6, raising=False)
    token = csrf_token(client)
    wrong = {"name": alice.name, "password": "guess", "csrf_token": token}
    addresses = [{"REMOTE_ADDR": fresh_address()} for _ in range(6)]
    for address in addresses:
        assert client.post("/login", data=wrong, environ_overrides=address).status_code == 401
    # Past the bound, addresses that failed get no more guesses at this name...
    again = addresses[0]
    assert client.post("/login", data=wrong, environ_overrides=again).status_code == 429
    # ...and an address with no failures still signs in with the right password.
    right = {**wrong, "password": alice.password}
    fresh = {"REMOTE_ADDR": fresh_address()}
    assert client.post("/login", data=right, environ_overrides=fresh).status_code == 302


def test_a_burst_of_guesses_gets_only_the_allowed_number_checked(app, alice):
    burst = 4 * throttle.LOGIN_ATTEMPTS_PER_NAME
    clients = [app.test_client() for _ in range(burst)]
    wrong = {"name": alice.name, "password": "guess"}
    forms = [{**wrong, "csrf_token": csrf_token(client)} for client in clients]
    start = threading.Barrier(burst)
    statuses = []

    address = {"REMOTE_ADDR": fresh_address()}

    def guess(client, form):
        start.wait()
        statuses.append(client.post("/login", data=form, environ_overrides=address).status_code)

    pairs = zip(clients, forms, strict=True)
    threads = [threading.Thread(target=guess, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) == throttle.LOGIN_ATTEMPTS_PER_NAME


def test_unknown_names_cost_a_password_hash_like_known_ones(client, accounts):
    """Timed as a ratio of medians, interleaved, so a busy machine slows both alike."""
    token = csrf_token(client)
    known = [accounts.create().name for _ in range(10)]  # none of them near its limit
    took: dict[str, list[float]] = {"known": [], "unknown": []}
    for name in known:
        for kind, tried in (("known", name), ("unknown", f"nobody-{name}")):
            form = {"name": tried, "password": "guess", "csrf_token": token}
            address = {"REMOTE_ADDR": fresh_address()}
            begin = time.perf_counter()
            assert client.post("/login", data=form, environ_overrides=address).status_code == 401
            took[kind].append(time.perf_counter() - begin)
    median = {kind: statistics.median(times) for kind, times in took.items()}
    assert median["unknown"] >= 0.5 * median["known"], median


def test_a_short_secret_key_is_refused_outside_debugging_and_tests(make_app):
    with pytest.raises(RuntimeError, match="SECRET_KEY must be at least 32 bytes"):
        make_app(TESTING=False, SECRET_KEY="test-secret")
    assert make_app(SECRET_KEY="test-secret").testing  # tests may
    assert make_app(TESTING=False, DEBUG=True, SECRET_KEY="dev").debug  # so may debugging
    assert not make_app(TESTING=False, SECRET_KEY="k" * 32).testing


def test_the_instance_folder_and_its_secret_are_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    instance = tmp_path / "instance"
    from_environment(str(instance))
    assert instance.stat().st_mode & 0o777 == 0o700
    assert (instance / "secret_key").stat().st_mode & 0o777 == 0o600
    instance.chmod(0o755)  # made by an older version
    (instance / "secret_key").unlink()
    from_environment(str(instance))
    assert instance.stat().st_mode & 0o777 == 0o700


def test_the_dev_server_creates_private_files(tmp_path):
    """What ``python3 app.py`` creates (the database, Redis' dump and log) is 0600."""
    script = (
        "import sqlite3, sys; from myapp import devserver; devserver.private_files(); "
        "sqlite3.connect(sys.argv[1]).execute('create table t (a)')"
    )
    database = tmp_path / "myapp.db"
    env = {**os.environ, "SECRET_KEY": "k" * 32}
    subprocess.run([sys.executable, "-c", script, str(database)], cwd=ROOT, env=env, check=True)
    assert database.stat().st_mode & 0o777 == 0o600
    assert (ROOT / "instance").stat().st_mode & 0o777 == 0o700


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
    ("GET", "/api/jobs/{job}/output", ""),
    ("POST", "/api/jobs/{job}/cancel", ""),
    ("POST", "/api/jobs/{job}/retry", ""),
    ("POST", "/api/jobs/{job}/share", ""),
    ("DELETE", "/api/jobs/{job}/share", ""),
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
            assert ask(method, path, query, job, profile, bob.headers)[0] in (200, 201, 204, 409)
