"""The place in line on the page, in chromium: a queued job counts down as the jobs
ahead of it start, on a worker of its own."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect

from tests.conftest import wait_until
from tests.jobs import start
from tests.rig import Rig


def test_a_queued_jobs_place_counts_down_as_the_jobs_ahead_start(
    new_dashboard_at, service_env, alice
):
    rig = Rig({**service_env, "RQ_QUEUE": f"line-{uuid.uuid4().hex[:8]}"})
    try:
        rig.start_web()
        rig.start_worker()  # one worker: the jobs run one after another
        wait_until(rig.live_workers, 30)
        dashboard = new_dashboard_at(rig.base).sign_in(alice)
        ids = [start(rig.base, alice, steps=4, step_seconds=0.5)["id"] for _ in range(5)]
        # The last is held back by alice's running limit (4) until the first ends.
        message = dashboard.row(ids[-1]).locator(".job-message")
        for place in ("4th", "3rd", "2nd"):
            shown = re.compile(rf"^{place} in line( · starts in about \d+ (s|min))?$")
            expect(message).to_have_text(shown, timeout=15_000)
        # Four jobs have started by now: the estimate comes from their rate.
        expect(message).to_have_text(re.compile(r"^1st in line · starts in about \d+ s$"))
        dashboard.expect_finished(ids[-1], timeout=30_000)
        expect(message).not_to_contain_text("in line")
        ordinals = dashboard.page.evaluate(
            """async () => {
              const { ordinal } = await import('/static/app.js');
              return [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112].map(ordinal);
            }"""
        )
        assert ordinals == "1st 2nd 3rd 4th 11th 12th 13th 21st 22nd 23rd 101st 111th 112th".split()
        assert dashboard.errors == []
    finally:
        rig.stop()
