"""Batches, sequences and results on the page, in a real browser, on the real stack.

A batch is one row with one bar; its items open under it. A finished job shows
what it made: a summary, and a link to it when it made a page.
"""

from __future__ import annotations

import re

import requests
from playwright.sync_api import expect


def submit(server, account, kind, params) -> dict:
    body = {"kind": kind, "params": params}
    response = requests.post(f"{server}/api/jobs", json=body, headers=account.headers, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def test_generate_profile_from_its_button_shows_stages_and_links_the_profile(new_dashboard, alice):
    dashboard = new_dashboard().sign_in(alice)
    page = dashboard.page
    page.get_by_role("button", name="Generate profile").click()
    row = page.locator("#jobs > li.job").first
    expect(row.locator(":scope > .job-head .job-kind")).to_have_text("Profile generation")
    job_id = row.get_attribute("data-job-id")

    toggle = row.get_by_role("button", name="Show 3 stages")
    toggle.click()
    expect(row.get_by_role("button", name="Hide 3 stages")).to_have_attribute(
        "aria-expanded", "true"
    )
    items = row.locator(".items > li.job")
    expect(items).to_have_count(3)
    expect(items.locator(".job-kind")).to_have_text(["traits", "background", "summary"])
    expect(dashboard.message(job_id)).to_have_text(re.compile(r"^[123]/3: "), timeout=15_000)
    dashboard.screenshot("page-sequence-mid-run.png")

    dashboard.expect_finished(job_id, timeout=30_000)
    expect(items.locator(".badge")).to_have_text(["finished"] * 3)
    dashboard.screenshot("page-sequence-finished.png")
    link = row.locator(":scope > .job-result").get_by_role("link", name="Open profile")
    link.click()
    expect(page.locator("#profile-name")).not_to_be_empty()
    expect(page.locator("#profile-summary")).to_contain_text("from")
    assert dashboard.errors == []


def test_a_failed_batch_lists_its_failed_items_and_offers_a_retry(new_dashboard, alice, server):
    items = [{"name": f"p{i}.jpg", "size_kb": 10, "reject": i == 1} for i in range(3)]
    batch = submit(server, alice, "publish_album", {"items": items, "latency_ms": 50})
    dashboard = new_dashboard().sign_in(alice)

    dashboard.expect_status(batch["id"], "failed", timeout=30_000)
    expect(dashboard.error(batch["id"])).to_have_text("1 of 3 failed")
    expect(dashboard.retry_button(batch["id"])).to_be_visible()
    row = dashboard.row(batch["id"])
    row.get_by_role("button", name="Show 3 items").click()
    rejected = dashboard.row(batch["children"][1])
    expect(rejected.locator(".badge")).to_have_text("failed")
    expect(rejected.locator(".job-error")).to_contain_text("refused the photo")
    expect(rejected.locator("button")).to_have_count(0)  # items go with their batch
    for child in (batch["children"][0], batch["children"][2]):
        expect(dashboard.row(child).locator(".badge")).to_have_text("finished")
    dashboard.page.set_viewport_size({"width": 1100, "height": 800})
    dashboard.screenshot("page-batch-failed.png")
    assert dashboard.errors == []


def test_a_finished_import_says_what_it_did_and_links_the_contacts(new_dashboard, alice, server):
    rows = [{"name": "Ana", "email": "ana@example.com"}, {"name": "Bo", "email": "bad"}]
    job = submit(server, alice, "import_contacts", {"rows": rows})
    dashboard = new_dashboard().sign_in(alice)

    dashboard.expect_finished(job["id"], timeout=30_000)
    result = dashboard.row(job["id"]).locator(".job-result")
    expect(result).to_contain_text("1 imported, 1 bad rows skipped")
    result.get_by_role("link", name="View contacts").click()
    expect(dashboard.page.locator("#contacts-total")).to_have_text("1 in all")
