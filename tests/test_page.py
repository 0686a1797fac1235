"""The page in a real browser, against the real stack (gunicorn, worker, Redis, database).

What these tests assert is what a person sees: the rows, their bars and badges,
the connection indicator and the screen-reader regions, never the page's variables.
Screenshots of the main run land in ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser import some_bar_between
from tests.jobs import start

#: Ten processes of 10-40 steps at 0.05-0.3 s, on the two test workers: about 25 s,
#: with room for a slow machine.
TEN_PROCESSES_SECONDS = 90
NON_EMPTY = re.compile(r"\S")


@pytest.fixture
def bob(accounts):
    return accounts.create()


def test_sign_in_shows_the_user_and_a_live_connection(new_dashboard, alice):
    """The form signs a person in, and the page connects to their stream at once."""
    dashboard = new_dashboard()
    page = dashboard.page
    page.goto("/")
    expect(page.locator("#connection")).to_have_count(0)  # nothing live before signing in

    dashboard.sign_in(alice)  # waits for #connection to say "live"

    expect(page.get_by_role("banner")).to_contain_text(f"Signed in as {alice.name}")
    expect(page.locator(".user strong")).to_have_text(alice.name)
    expect(dashboard.connection).to_have_attribute("data-state", "live")
    expect(page.get_by_role("button", name="Start 10 processes")).to_be_enabled()
    assert dashboard.errors == []


def test_ten_processes_run_to_the_end_without_a_reload(new_dashboard, alice):
    """The main promise: press the button, watch ten bars fill up, live."""
    dashboard = new_dashboard().sign_in(alice)
    page = dashboard.page
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads itself

    dashboard.start_processes()
    expect(dashboard.rows).to_have_count(10, timeout=15_000)
    job_ids = dashboard.job_ids()
    assert len(set(job_ids)) == 10, job_ids

    # Mid-run with a few rows done, so the screenshot shows every state at once. The
    # wait is the check: a bar read row by row afterwards may have finished meanwhile.
    page.wait_for_function(some_bar_between(1, 99, finished=3), timeout=60_000, polling=50)
    dashboard.screenshot("page-mid-run.png")

    deadline = time.monotonic() + TEN_PROCESSES_SECONDS
    for job_id in job_ids:
        remaining_ms = max(1.0, deadline - time.monotonic()) * 1000
        dashboard.expect_finished(job_id, timeout=remaining_ms)
    dashboard.screenshot("page-finished.png")

    assert dashboard.job_ids() == job_ids, "the rows stay, in the same order"
    expect(page.locator("#alert")).to_have_text("")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded itself"
    assert dashboard.errors == []


def test_a_reload_mid_run_shows_the_progress_so_far(new_dashboard, alice, server):
    """After a reload the row is back at once, never empty or behind, and still moves."""
    dashboard = new_dashboard().sign_in(alice)
    page = dashboard.page
    jobs = [start(server, alice, steps=40, step_seconds=0.1)["id"] for _ in range(2)]

    page.wait_for_function(some_bar_between(10, 90), timeout=30_000, polling=20)
    before = {
        job_id: percent
        for job_id, percent in dashboard.percents().items()
        if percent is not None and 10 <= percent <= 90
    }
    assert before, "a bar was between 10% and 90% a moment ago"
    job_id, percent_before = next(iter(before.items()))

    dashboard.reload()  # returns once #connection says "live"
    expect(dashboard.row(job_id)).to_be_visible(timeout=5_000)
    assert dashboard.percent(job_id) >= percent_before

    # Everything the reloaded page showed, from its first paint to now.
    states = dashboard.seen()
    live_at = next(s["t"] for s in states if s["connection"] == "live")
    shown = [(s["t"], s["rows"][job_id]) for s in states if job_id in s["rows"]]
    assert not any(s["empty"] for s in states), "the page said 'No jobs yet' after the reload"
    first_row_at = shown[0][0]
    assert first_row_at - live_at <= 2_000, f"the list stayed empty {first_row_at - live_at} ms"
    percents = [int(now) for _, (now, _) in shown if now is not None]
    assert len(percents) == len(shown), f"the bar lost its value after the reload: {shown}"
    assert percents[0] >= percent_before, (
        f"the row came back at {percents[0]}% but showed {percent_before}% before the reload"
    )
    assert percents == sorted(percents), f"the bar moved backwards: {percents}"

    for each in jobs:
        dashboard.expect_finished(each, timeout=30_000)
    assert dashboard.errors == []


def test_another_user_never_sees_my_jobs(new_dashboard, alice, bob, server):
    """Two people, two browsers: each page shows its own user's jobs only."""
    bobs = new_dashboard().sign_in(bob)
    alices = new_dashboard().sign_in(alice)

    alice_jobs = [start(server, alice, steps=20, step_seconds=0.05)["id"] for _ in range(3)]
    for job_id in alice_jobs:
        alices.expect_finished(job_id, timeout=30_000)

    # Bob's page, live all along, never showed a row, even briefly.
    expect(bobs.connection).to_have_text("live")
    expect(bobs.rows).to_have_count(0)
    expect(bobs.page.locator("#empty")).to_be_visible()
    assert [s["rows"] for s in bobs.seen() if s["rows"]] == []
    content = bobs.page.content()
    assert not [job_id for job_id in alice_jobs if job_id in content]
    bobs.reload()
    expect(bobs.page.locator("#empty")).to_be_visible()
    expect(bobs.rows).to_have_count(0)

    # Bob's page does show Bob's own job, and Alice's page does not.
    bob_job = start(server, bob, steps=5, step_seconds=0.05)["id"]
    bobs.expect_finished(bob_job, timeout=30_000)
    assert bobs.job_ids() == [bob_job]
    assert bob_job not in alices.page.content()
    assert sorted(alices.job_ids()) == sorted(alice_jobs)
    assert alices.errors == [] and bobs.errors == []


def test_accessibility_basics(new_dashboard, alice, server):
    """Progress is readable without sight: named bars with values, announced endings."""
    dashboard = new_dashboard()
    page = dashboard.page
    page.goto("/")
    expect(page.locator("script:not([src])")).to_have_count(0)  # sign-in view, for CSP

    dashboard.sign_in(alice)
    expect(page.locator("script:not([src])")).to_have_count(0)
    expect(page.locator("#announcer")).to_have_attribute("aria-live", "polite")
    jobs = [start(server, alice, steps=20, step_seconds=0.1)["id"] for _ in range(2)]
    expect(dashboard.rows).to_have_count(2)
    page.wait_for_function(some_bar_between(1, 99), timeout=30_000, polling=20)

    for job_id in jobs:
        bar = dashboard.bar(job_id)
        expect(bar).to_have_attribute("aria-valuemin", "0")
        expect(bar).to_have_attribute("aria-valuemax", "100")
        expect(bar).to_have_attribute("aria-valuetext", NON_EMPTY)
        expect(bar).to_have_accessible_name(f"Simulated process {job_id[:8]} progress")

    for job_id in jobs:
        dashboard.expect_finished(job_id, timeout=30_000)
        expect(dashboard.bar(job_id)).to_have_attribute("aria-valuetext", re.compile(r"^100%"))
    for job_id in jobs:
        announcement = f"Simulated process {job_id[:8]} finished"
        expect(page.locator("#announcer")).to_contain_text(announcement)
    assert dashboard.errors == []
