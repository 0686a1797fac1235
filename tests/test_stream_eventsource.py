"""The stream against a third-party client: the npm ``eventsource`` package."""

import json
import subprocess
from pathlib import Path

import pytest
import requests
from redis import Redis

from myapp.db import db
from myapp.keys import channel_for
from myapp.models import User
from tests.node_packages import npm_module

CLIENT = Path(__file__).parent / "node" / "eventsource_client.js"


@pytest.fixture(scope="session")
def eventsource_module():
    """``eventsource`` version 2 (its ``node_modules``, for ``NODE_PATH``)."""
    return npm_module("eventsource", "eventsource@2").parent


def test_an_eventsource_stops_after_its_job_ends(
    server, app, accounts, service_env, eventsource_module
):
    alice = accounts.create()
    body = {"kind": "process_run", "params": {"steps": 3, "step_seconds": 0.05}}
    job = requests.post(f"{server}/api/jobs", json=body, headers=alice.headers, timeout=10).json()
    # Three reconnects would take 6 s (retry: 2000); the client must stop well before.
    done = subprocess.run(
        ["node", str(CLIENT), f"{server}/stream?job={job['id']}", alice.token, "15000"],
        env={"NODE_PATH": str(eventsource_module), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    seen = json.loads(done.stdout)
    assert seen["readyState"] == 2, seen  # CLOSED: it stopped by itself
    assert seen["closedAfterMs"] < 10_000, seen
    assert seen["events"][-1]["type"] == "job", seen
    with app.app_context():
        user_id = db.session.scalar(db.select(User.id).filter_by(name=alice.name))
    redis = Redis.from_url(service_env["REDIS_URL"])
    assert redis.zcard(f"{channel_for(user_id)}:streams") == 0, "the server holds no stream"
