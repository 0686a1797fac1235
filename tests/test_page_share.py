"""A share link in chromium: the owner's Share button makes it, a second browser context
without the owner's cookie watches the job live, read-only, and a revocation ends it."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import expect

from tests.jobs import start


def test_a_shared_job_is_watched_in_another_context_until_revoked(new_dashboard, server, alice):
    owner = new_dashboard().sign_in(alice)
    owner.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    job = start(server, alice, steps=300, step_seconds=0.05)
    row = owner.row(job["id"])
    row.get_by_role("button", name=re.compile(r"^Share ")).click()
    field = row.get_by_role("textbox", name=re.compile(r"^Share link of Simulated process"))
    expect(field).to_have_value(re.compile(rf"^{re.escape(server)}/watch/"))
    url = field.input_value()
    assert owner.page.evaluate("navigator.clipboard.readText()") == url

    watcher = new_dashboard()  # a context of its own: no cookie of alice's
    page = watcher.page
    page.goto(url)
    expect(page.locator("#connection")).to_have_text("live")
    expect(watcher.rows).to_have_count(1)
    expect(watcher.row(job["id"]).locator(".job-kind")).to_have_text("Simulated process")
    page.wait_for_function(
        """(id) => Number(document.querySelector(`li[data-job-id="${id}"] .bar`)
              ?.getAttribute('aria-valuenow')) > 0""",
        arg=job["id"],
        timeout=20_000,
    )
    expect(page.get_by_role("button")).to_have_count(0)  # nothing to act with
    expect(page.get_by_text(alice.name)).to_have_count(0)

    revoked = requests.delete(
        f"{server}/api/jobs/{job['id']}/share", headers=alice.headers, timeout=10
    )
    assert revoked.status_code == 204
    expect(page.locator("#alert")).to_have_text(
        "This link no longer works: this link was revoked by its owner.", timeout=15_000
    )
    expect(page.locator("#connection")).to_have_text("ended")
    requests.post(f"{server}/api/jobs/{job['id']}/cancel", headers=alice.headers, timeout=10)
    assert watcher.errors == [] and owner.errors == []
