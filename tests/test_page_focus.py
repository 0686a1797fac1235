"""Keyboard focus on the page stays on a control after Start and Cancel."""

from playwright.sync_api import expect

from tests.jobs import cancel_all


def active(page) -> str:
    return page.evaluate(
        "() => { const a = document.activeElement;"
        " return a === document.body ? 'body' : `${a.tagName}#${a.id}.${a.className}`; }"
    )


def test_focus_stays_on_a_control_after_start_and_cancel(new_dashboard, accounts, server):
    alice = accounts.create()
    dashboard = new_dashboard().sign_in(alice)
    page = dashboard.page
    try:
        start = page.locator("#start-processes")
        start.focus()
        page.keyboard.press("Enter")
        expect(dashboard.rows).to_have_count(10, timeout=15_000)
        expect(start).to_be_enabled()
        assert active(page).startswith("BUTTON#start-processes"), active(page)

        job_id = dashboard.rows.first.get_attribute("data-job-id")
        cancel = dashboard.cancel_button(job_id)
        cancel.focus()
        page.keyboard.press("Enter")
        dashboard.expect_status(job_id, "canceled", timeout=5_000)
        expect(cancel).to_be_hidden()
        expect(dashboard.retry_button(job_id)).to_be_focused()
    finally:
        cancel_all(server, alice)
