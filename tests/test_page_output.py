"""A job's output panel in chromium: it fills live, follows the end, and stays where
the reader scrolled to."""

from __future__ import annotations

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
