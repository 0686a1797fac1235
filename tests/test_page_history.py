"""The page beyond the newest jobs, in chromium: older jobs loaded on demand, the list
filtered, kinds named for people, and jobs that end while the tab is hidden."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from myapp import job_json
from myapp.db import db
from myapp.models import TrackedJob
from myapp.web.stream import SNAPSHOT_LIMIT
from tests.jobs import start
from tests.records import id_of

#: The tab's title while nothing ended unseen.
TITLE = "myapp — background jobs"


def add_old_jobs(app, account, statuses, days=1) -> list[str]:
    """Ended records from ``days`` before, one per status, newest first."""
    with app.app_context():
        owner, now, ids = id_of(account), job_json.utcnow(), []
        for n, status in enumerate(statuses):
            at = now - timedelta(days=days, minutes=n)
            job_id = str(uuid.uuid4())
            db.session.add(
                TrackedJob(id=job_id, user_id=owner, kind="process_run", params={}, status=status,
                           created_at=at, started_at=at, ended_at=at, updated_at=at,
                           error="boom" if status == "failed" else None)
            )  # fmt: skip
            ids.append(job_id)
        db.session.commit()
    return ids


@pytest.fixture
def dashboard(new_dashboard):
    return new_dashboard()


def test_older_jobs_load_on_demand_until_there_are_none(dashboard, app, alice):
    statuses = ["finished"] * (SNAPSHOT_LIMIT + 30)
    ids = add_old_jobs(app, alice, statuses)
    dashboard.sign_in(alice)
    page = dashboard.page
    expect(dashboard.rows).to_have_count(SNAPSHOT_LIMIT)
    more = page.get_by_role("button", name="Load older jobs")
    more.click()
    expect(dashboard.rows).to_have_count(SNAPSHOT_LIMIT + 30)
    expect(more).to_be_hidden()
    assert dashboard.job_ids() == ids  # newest first, each once
    expect(page.locator(".job-kind").first).to_have_text("Simulated process")
    assert dashboard.errors == []


def test_the_filter_shows_only_its_jobs_older_ones_included(dashboard, app, alice):
    newest = add_old_jobs(app, alice, ["finished"] * SNAPSHOT_LIMIT)
    failed = add_old_jobs(app, alice, ["failed", "canceled", "failed"], days=2)
    dashboard.sign_in(alice)
    page = dashboard.page
    expect(dashboard.rows).to_have_count(SNAPSHOT_LIMIT)
    page.get_by_label("Show", exact=True).select_option("failed")
    shown = page.locator("#jobs > li.job:visible")
    expect(shown).to_have_count(2)
    assert [row.get_attribute("data-job-id") for row in shown.all()] == [failed[0], failed[2]]
    expect(shown.first.locator(".job-error")).to_have_text("boom")
    page.get_by_label("Show", exact=True).select_option("active")
    expect(shown).to_have_count(0)
    expect(page.get_by_text("No jobs to show here.")).to_be_visible()
    page.get_by_label("Show", exact=True).select_option("")
    expect(shown).to_have_count(SNAPSHOT_LIMIT + 2)  # the canceled one is not loaded yet
    page.get_by_role("button", name="Load older jobs").click()
    expect(shown).to_have_count(SNAPSHOT_LIMIT + 3)
    assert dashboard.job_ids() == newest + failed
    assert dashboard.errors == []


#: Lets the test hide and show the tab (headless chromium's own tab is always
#: visible), and records the notifications the page raises.
HIDEABLE = """
window.__hidden = false;
Object.defineProperty(document, 'hidden', { get: () => window.__hidden });
window.__setHidden = (hidden) => {
  window.__hidden = hidden;
  document.dispatchEvent(new Event('visibilitychange'));
};
window.__notified = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) { super(title, options); window.__notified.push(title); }
};
"""


def set_hidden(page, hidden: bool) -> None:
    page.evaluate("(hidden) => window.__setHidden(hidden)", hidden)


def test_a_job_that_ends_in_a_hidden_tab_shows_in_its_title_and_a_notification(
    dashboard, server, alice
):
    page = dashboard.page
    page.context.grant_permissions(["notifications"])
    page.add_init_script(HIDEABLE)
    dashboard.sign_in(alice)
    expect(page).to_have_title(TITLE)
    set_hidden(page, True)
    jobs = [start(server, alice, steps=3, step_seconds=0.1)["id"] for _ in range(2)]
    for job_id in jobs:
        dashboard.expect_finished(job_id, timeout=30_000)
    expect(page).to_have_title(f"(2) {TITLE}")
    assert page.evaluate("window.__notified") == ["Simulated process finished"] * 2
    set_hidden(page, False)
    expect(page).to_have_title(TITLE)
    assert dashboard.errors == []


def test_the_page_offers_notifications_until_the_user_answers(dashboard, alice):
    dashboard.sign_in(alice)
    offer = dashboard.page.get_by_role("button", name="Notify me when jobs end")
    expect(offer).to_be_visible()  # the browser has not asked yet
    dashboard.page.context.grant_permissions(["notifications"])
    offer.click()
    expect(offer).to_be_hidden()
    expect(dashboard.page).to_have_title(re.compile(r"^myapp"))
