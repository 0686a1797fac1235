"""The pages checked by axe-core (npm ``axe-core``, a checker nobody here wrote), in
chromium, in the states a user sees: jobs queued with their place in line, running,
ended with output to show, failed; the sign-in form; a share link's watch page."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import requests
from playwright.sync_api import expect

from myapp import job_json
from myapp.db import db
from myapp.models import TrackedJob
from tests.conftest import wait_until
from tests.jobs import start
from tests.node_packages import npm_module
from tests.records import id_of
from tests.rig import Rig

#: What axe judges: the WCAG 2.1 A and AA rules, and its best practices.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@pytest.fixture(scope="session")
def axe_script():
    return npm_module("axe-core", "axe-core@4") / "axe.min.js"


def violations(page, axe_script) -> list[str]:
    """axe's findings on the page as it is now: each rule broken, with where."""
    # Run as the body of a function: the page's CSP allows no inline script (or eval).
    page.evaluate("() => {" + axe_script.read_text() + "\n}")
    found = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => `${v.id}: ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)",
        TAGS,
    )
    return found


def add_ended(app, account, status: str, output: str | None) -> str:
    with app.app_context():
        at = job_json.utcnow() - timedelta(minutes=5)
        job_id = str(uuid.uuid4())
        db.session.add(
            TrackedJob(id=job_id, user_id=id_of(account), kind="process_run", params={},
                       status=status, created_at=at, started_at=at, ended_at=at, updated_at=at,
                       error="boom" if status == "failed" else None, output=output)
        )  # fmt: skip
        db.session.commit()
    return job_id


def test_the_page_in_each_state_breaks_no_rule(
    new_dashboard_at, service_env, app, alice, axe_script
):
    rig = Rig({**service_env, "RQ_QUEUE": f"a11y-{uuid.uuid4().hex[:8]}"})
    try:
        rig.start_web()  # no worker: the jobs wait in line
        signed_out = new_dashboard_at(rig.base)
        signed_out.page.goto("/")
        expect(signed_out.page.get_by_role("button", name="Sign in")).to_be_visible()
        assert violations(signed_out.page, axe_script) == []

        ended = add_ended(app, alice, "finished", output="step 1 of 1 done\n")
        add_ended(app, alice, "failed", output=None)
        dashboard = new_dashboard_at(rig.base).sign_in(alice)
        queued = [start(rig.base, alice, steps=5, step_seconds=1)["id"] for _ in range(2)]
        expect(dashboard.row(queued[-1]).locator(".job-message")).to_have_text("2nd in line")
        show = dashboard.row(ended).get_by_role(
            "button", name=f"Show output Simulated process {ended[:8]}"
        )
        expect(show).to_be_visible()
        assert violations(dashboard.page, axe_script) == []
        show.click()
        expect(dashboard.row(ended).locator(":scope > .job-output")).to_be_visible()
        assert violations(dashboard.page, axe_script) == []

        answer = requests.post(f"{rig.base}/api/jobs/{queued[0]}/share", json={},
                               headers=alice.headers, timeout=10)  # fmt: skip
        watcher = new_dashboard_at(rig.base)
        watcher.page.goto(answer.json()["url"])
        expect(watcher.page.locator("#connection")).to_have_text("live")
        wait_until(lambda: watcher.rows.count() == 1, 10)
        assert violations(watcher.page, axe_script) == []
        assert dashboard.errors == watcher.errors == []
        # And the checker does find a fault: a field with no label, planted.
        watcher.page.evaluate("() => document.body.append(document.createElement('input'))")
        assert any(v.startswith("label:") for v in violations(watcher.page, axe_script))
    finally:
        rig.stop()
