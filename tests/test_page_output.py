"""A job's output panel in chromium: it fills live, follows the end, and stays where
the reader scrolled to."""

from __future__ import annotations

import requests
from playwright.sync_api import expect

from tests.jobs import start

AT_END = "(panel) => panel.scrollTop + panel.clientHeight >= panel.scrollHeight - 4"


def test_the_output_panel_follows_a_job_until_the_reader_scrolls_up(new_dashboard, server, alice):
    dashboard = new_dashboard().sign_in(alice)
    job = start(server, alice, steps=60, step_seconds=0.1)
    panel = dashboard.row(job["id"]).locator(":scope > .job-output")
    expect(panel).to_contain_text("step 1 of 60 done")
    expect(panel).to_have_accessible_name(f"Output of Simulated process {job['id'][:8]}")
    expect(panel).to_contain_text("step 20 of 60 done")
    assert panel.evaluate(AT_END)  # it follows the end
    panel.evaluate("(panel) => { panel.scrollTop = 0; }")  # the reader scrolls up
    expect(panel).to_contain_text("step 40 of 60 done")
    assert panel.evaluate("(panel) => panel.scrollTop") == 0  # and it stays there
    dashboard.expect_finished(job["id"], timeout=30_000)
    lines = panel.inner_text().splitlines()
    assert lines == [f"step {n} of 60 done" for n in range(1, 61)]  # each once, in order
    assert panel.get_attribute("aria-live") is None  # screen readers hear the status line
    assert dashboard.errors == []


def test_an_ended_jobs_output_is_shown_after_a_reload_when_asked(new_dashboard, server, alice):
    dashboard = new_dashboard().sign_in(alice)
    job = start(server, alice, steps=5, step_seconds=0)
    dashboard.expect_finished(job["id"], timeout=30_000)
    answer = requests.get(f"{server}/api/jobs/{job['id']}", headers=alice.headers, timeout=10)
    assert answer.json()["has_output"] is True
    dashboard.reload()  # an ended job's output is not in the snapshot
    row = dashboard.row(job["id"])
    panel = row.locator(":scope > .job-output")
    expect(panel).to_be_hidden()
    row.get_by_role("button", name=f"Show output Simulated process {job['id'][:8]}").click()
    expect(panel).to_be_focused()
    assert panel.inner_text().splitlines() == [f"step {n} of 5 done" for n in range(1, 6)]
    expect(row.locator(".action-output")).to_be_hidden()
    assert dashboard.errors == []
