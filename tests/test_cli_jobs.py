"""``flask jobs``, run as a real command against the test services."""

import subprocess
import sys

from tests.conftest import ROOT, wait_until
from tests.jobs import start


def flask(service_env, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "jobs", *args],
        cwd=ROOT, env={**service_env, "COLUMNS": "200"}, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def test_watch_follows_a_job_and_exits_0_when_it_finishes(server, service_env, alice):
    job = start(server, alice, steps=20, step_seconds=0.1)
    result = flask(service_env, "watch", job["id"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{job['id']}: finished"
    assert "100.0%" in result.stdout


def test_watch_exits_1_when_the_job_is_canceled(server, service_env, alice):
    job = start(server, alice, steps=200, step_seconds=0.05)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "jobs", "watch", job["id"]],
        cwd=ROOT, env=service_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: flask(service_env, "cancel", job["id"]).returncode == 0, timeout=10)
        out, err = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
    assert watcher.returncode == 1, err
    assert out.strip().splitlines()[-1] == f"{job['id']}: canceled"


def test_list_shows_jobs_and_user_narrows_it(server, service_env, accounts, alice):
    job = start(server, alice, steps=1, step_seconds=0)
    bob = accounts.create()
    listed = flask(service_env, "list", "--user", alice.name)
    assert listed.returncode == 0, listed.stderr
    assert job["id"] in listed.stdout and alice.name in listed.stdout
    assert job["id"] not in flask(service_env, "list", "--user", bob.name).stdout
    unknown = flask(service_env, "list", "--user", "nobody-at-all")
    assert unknown.returncode != 0 and "no user 'nobody-at-all'" in unknown.stderr


def test_cancel_and_retry_mirror_the_api(server, service_env, alice):
    job = start(server, alice, steps=1, step_seconds=0)
    wait_until(lambda: "finished" in flask(service_env, "list", "--user", alice.name).stdout)
    refused = flask(service_env, "cancel", job["id"])
    assert refused.returncode != 0 and "already ended" in refused.stderr
    refused = flask(service_env, "retry", job["id"])
    assert refused.returncode != 0 and "only a failed or canceled job" in refused.stderr
    assert "no job 'nope'" in flask(service_env, "retry", "nope").stderr
