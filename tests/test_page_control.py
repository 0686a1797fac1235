"""Cancel, retry, a dead worker and a restarted server, as a person sees them on the page.

Like ``test_page.py``: the real stack (gunicorn, workers, Redis, database) and Debian's
chromium; the assertions are about what the page shows (badges, bars, messages,
buttons, the connection indicator), never about the page's variables.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests
from playwright.sync_api import expect

from tests.browser import backwards_moves, some_bar_between
from tests.conftest import ROOT, free_port, wait_until, web_command
from tests.jobs import cancel_all, start
from tests.rq_state import worker_running

#: The README's picture of the page.
#: Copied by hand to docs/screenshot.png for the README when the page changes.
README_SCREENSHOT = ROOT / "test-artifacts" / "page-for-readme.png"
QUEUED_OR_STARTED = re.compile(r"^(queued|started)$")
RUNNING_WITH_ETA = re.compile(r"^step \d+ of \d+ · about \d+ s left$")


def test_only_a_retry_lets_a_bar_start_over():
    """The check the page tests use: a bar may only go back through a retry."""
    retried = [
        (None, "queued"),
        (40, "started"),
        (40, "failed"),
        (None, "started"),
        (10, "started"),
    ]
    assert backwards_moves(retried) == []  # queued and started drawn in one frame
    assert backwards_moves([(40, "started"), (None, "queued"), (5, "started")]) == []
    assert backwards_moves([(40, "started"), (30, "started")]) == ["40% -> 30% (started)"]
    assert backwards_moves([(40, "started"), (None, "started")]) == ["40% -> None% (started)"]
    assert backwards_moves([(40, "failed"), (20, "failed")]) == ["40% -> 20% (failed)"]


def bars_above(job_ids: list[str], percent: int) -> str:
    """JS for ``page.wait_for_function``: each of the jobs' bars shows more than ``percent``."""
    selectors = [f'#jobs li.job[data-job-id="{job_id}"] [role=progressbar]' for job_id in job_ids]
    return f"""() => {selectors!r}.every((selector) => {{
        const now = document.querySelector(selector)?.getAttribute('aria-valuenow');
        return now != null && Number(now) > {percent};
    }})"""


def bar_above(job_id: str, percent: int) -> str:
    return bars_above([job_id], percent)


def start_web(service_env, port: int) -> subprocess.Popen:
    """gunicorn exactly as the session ``server`` fixture runs it, on ``port``."""
    process = subprocess.Popen(web_command(port), cwd=ROOT, env=service_env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is None and requests.get(f"{base}/healthz", timeout=1).ok)
    except BaseException:
        stop_web(process)
        raise
    return process


def stop_web(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=30)


# ---------------------------------------------------------------- cancel and retry


def test_cancel_and_retry_from_the_page(new_dashboard, alice, server):
    """Cancel stops a running row at once and offers Retry; Retry runs it again."""
    dashboard = new_dashboard().sign_in(alice)
    page = dashboard.page
    try:
        job_id = start(server, alice, steps=200, step_seconds=0.05)["id"]
        page.wait_for_function(bar_above(job_id, 0), timeout=30_000, polling=20)
        expect(dashboard.badge(job_id)).to_have_text("started")
        expect(dashboard.retry_button(job_id)).to_be_hidden()
        cancel = dashboard.cancel_button(job_id)
        expect(cancel).to_be_visible()
        expect(cancel).to_have_text("Cancel")
        expect(cancel).to_have_accessible_name(f"Cancel Simulated process {job_id[:8]}")

        cancel.click()
        dashboard.expect_status(job_id, "canceled", timeout=3_000)
        expect(cancel).to_be_hidden()
        retry = dashboard.retry_button(job_id)
        expect(retry).to_be_visible()
        expect(retry).to_have_text("Retry")
        expect(dashboard.error(job_id)).to_be_hidden()
        expect(page.locator("#alert")).to_have_text("")
        announcement = f"Simulated process {job_id[:8]} canceled"
        expect(page.locator("#announcer")).to_contain_text(announcement)

        # The bar stopped where the work stopped, short of the end, and stays there.
        stopped_at = dashboard.percent(job_id)
        assert stopped_at is not None and stopped_at < 100, stopped_at
        canceled = {p for p, status in dashboard.history(job_id) if status == "canceled"}
        assert canceled == {stopped_at}, f"the bar moved after the cancel: {canceled}"

        retry.click()
        dashboard.expect_status(job_id, QUEUED_OR_STARTED, timeout=5_000)
        expect(retry).to_be_hidden()
        expect(cancel).to_be_visible()
        dashboard.expect_status(job_id, "started", timeout=15_000)
        # It runs again: the bar moves, past where it was canceled.
        page.wait_for_function(bar_above(job_id, stopped_at), timeout=30_000, polling=20)
        expect(dashboard.message(job_id)).to_have_text(RUNNING_WITH_ETA)
        expect(page.locator("#alert")).to_have_text("")

        cancel.click()  # and it can be canceled again, from the page
        dashboard.expect_status(job_id, "canceled", timeout=3_000)
        expect(retry).to_be_visible()
        statuses = [status for _, status in dashboard.history(job_id)]
        runs = [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]]
        assert runs[-4:] == ["started", "canceled", "started", "canceled"] or runs[-5:] == [
            "started",
            "canceled",
            "queued",
            "started",
            "canceled",
        ], runs
        assert backwards_moves(dashboard.history(job_id)) == []
        assert dashboard.errors == []
    finally:
        cancel_all(server, alice)


# ---------------------------------------------------------------- a dead worker


def test_a_job_whose_worker_died_shows_the_error_and_retry_runs_it_to_the_end(
    new_dashboard, alice, server, service_env, worker, redis_url
):
    """SIGKILL the worker under a running job: the row says why it failed; Retry
    runs it again, to a full bar."""
    dashboard = new_dashboard().sign_in(alice)
    page = dashboard.page
    try:
        job_id = start(server, alice, steps=40, step_seconds=0.1)["id"]
        page.wait_for_function(bar_above(job_id, 0), timeout=30_000, polling=20)
        victim = worker_running(redis_url, job_id)
        os.kill(victim.pid, signal.SIGKILL)
        # Keep two workers for the rest of the run: the fixture stops this one too.
        worker.append(subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=service_env))
        killed_at = dashboard.percent(job_id)

        dashboard.expect_status(job_id, "failed", timeout=20_000)  # WORKER_DEATH_SECONDS is 6
        expect(dashboard.error(job_id)).to_be_visible()
        expect(dashboard.error(job_id)).to_have_text("worker died")
        assert dashboard.percent(job_id) < 100, "the bar of a failed job is not full"
        expect(dashboard.cancel_button(job_id)).to_be_hidden()
        retry = dashboard.retry_button(job_id)
        expect(retry).to_be_visible()
        expect(retry).to_have_accessible_name(f"Retry Simulated process {job_id[:8]}")
        announcement = f"Simulated process {job_id[:8]} failed: worker died"
        expect(page.locator("#announcer")).to_contain_text(announcement)

        retry.click()
        dashboard.expect_status(job_id, QUEUED_OR_STARTED, timeout=5_000)
        expect(dashboard.error(job_id)).to_be_hidden()
        expect(retry).to_be_hidden()
        dashboard.expect_finished(job_id, timeout=30_000)
        expect(dashboard.message(job_id)).to_have_text("step 40 of 40")
        expect(dashboard.error(job_id)).to_be_hidden()
        expect(dashboard.cancel_button(job_id)).to_be_hidden()
        expect(retry).to_be_hidden()
        expect(page.locator("#alert")).to_have_text("")

        history = dashboard.history(job_id)
        statuses = [status for _, status in history]
        after_failure = statuses[statuses.index("failed") :]
        assert "started" in after_failure, f"the retry never showed as running: {history}"
        assert after_failure[-1] == "finished", history
        assert "canceled" not in statuses, history
        assert backwards_moves(history) == [], history
        assert killed_at is not None and killed_at < 100, killed_at
        assert dashboard.errors == []
    finally:
        cancel_all(server, alice)


# ---------------------------------------------------------------- the README's picture


def test_screenshot_of_the_page_mid_run_for_the_readme(new_dashboard, alice, server):
    """The README's picture: rows finished, canceled, running (bar and time left), queued."""
    dashboard = new_dashboard().sign_in(alice)
    page = dashboard.page
    try:
        done = [start(server, alice, steps=12, step_seconds=0.05)["id"] for _ in range(2)]
        for job_id in done:
            dashboard.expect_finished(job_id, timeout=30_000)
        stopped = start(server, alice, steps=200, step_seconds=0.05)["id"]
        page.wait_for_function(bar_above(stopped, 20), timeout=30_000, polling=20)
        dashboard.cancel_button(stopped).click()
        dashboard.expect_status(stopped, "canceled", timeout=3_000)
        # Two running bars at different places (one started a while after the other),
        # and a third job waiting for a worker.
        running = [start(server, alice, steps=80, step_seconds=0.1)["id"]]
        page.wait_for_function(bar_above(running[0], 25), timeout=30_000, polling=20)
        running.append(start(server, alice, steps=80, step_seconds=0.1)["id"])
        waiting = start(server, alice, steps=80, step_seconds=0.1)["id"]
        page.wait_for_function(bar_above(running[1], 20), timeout=30_000, polling=20)
        for job_id in running:
            dashboard.expect_status(job_id, "started")
            expect(dashboard.message(job_id)).to_have_text(RUNNING_WITH_ETA)
        dashboard.expect_status(waiting, "queued")
        dashboard.expect_status(stopped, "canceled")
        for job_id in done:
            dashboard.expect_status(job_id, "finished")
        expect(page.locator("#alert")).to_have_text("")
        path = dashboard.save_screenshot(README_SCREENSHOT)

        assert _png_width(path) == 1100
        assert all(1 <= dashboard.percent(job_id) <= 99 for job_id in running)
        assert dashboard.errors == []
    finally:
        cancel_all(server, alice)


# ---------------------------------------------------------------- the server goes away


def test_the_page_rides_out_a_restart_of_the_web_server(
    new_dashboard_at, alice, service_env, worker
):
    """Stop the web server mid-run: the page says so, polls, and when the server is
    back it is live again by itself, with every bar right and none ever going back.

    Two workers, three jobs of 60 steps at 0.15 s: the first two end while the server
    is down (the page learns it from the replay), the third runs on after it is back.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(service_env, port)
    try:
        dashboard = new_dashboard_at(base).sign_in(alice)
        page = dashboard.page
        failed_polls: list[str] = []

        def is_poll(request) -> bool:
            return request.url == f"{base}/api/jobs"

        page.on("requestfailed", lambda r: failed_polls.append(r.url) if is_poll(r) else None)
        jobs = [start(base, alice, steps=60, step_seconds=0.15)["id"] for _ in range(3)]
        expect(dashboard.rows).to_have_count(3)
        page.wait_for_function(some_bar_between(1, 99), timeout=30_000, polling=20)

        stop_web(web)
        expect(dashboard.connection).to_have_text("reconnecting…", timeout=5_000)
        expect(dashboard.connection).to_have_text("reconnecting… (polling)", timeout=8_000)
        expect(dashboard.connection).to_have_attribute("data-state", "polling")
        # Down for two polls (about 3 s more): each fails, and the page says so.
        while len(failed_polls) < 2:
            page.wait_for_event("requestfailed", predicate=is_poll, timeout=8_000)
        expect(page.locator("#alert")).to_contain_text("Could not load the jobs")

        web = start_web(service_env, port)
        dashboard.expect_live(timeout=15_000)
        for job_id in jobs:
            dashboard.expect_finished(job_id, timeout=45_000)
            expect(dashboard.message(job_id)).to_have_text("step 60 of 60")
            expect(dashboard.bar(job_id)).to_have_attribute(
                "aria-valuetext", "100% — step 60 of 60"
            )
        expect(dashboard.connection).to_have_text("live")

        connection = dashboard.connection_history()
        assert connection[-4:] == [
            "live",
            "reconnecting…",
            "reconnecting… (polling)",
            "live",
        ], connection
        for job_id in jobs:
            history = dashboard.history(job_id)
            assert backwards_moves(history) == [], f"{job_id[:8]}: {history}"
            assert history[-1] == (100, "finished"), history
        assert dashboard.job_ids() == list(reversed(jobs)), "newest first, all three"
        assert dashboard.errors == []
        # Live again with every job done, the page must not still say it cannot load them.
        expect(page.locator("#alert")).to_have_text("", timeout=2_000)
    finally:
        stop_web(web)


def _png_width(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:20], "big")
