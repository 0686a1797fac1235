"""A real browser for the page tests: Debian's chromium driven by Playwright.

Playwright's own browser download is not used (it is blocked here and in CI);
``python3 app.py test`` installs Debian's ``chromium`` instead. Without it the
browser tests skip on a workstation but fail in CI (``CI=true``), so a CI image
that lost chromium cannot go green by skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from myapp.job_json import TERMINAL

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

#: Records every state of the job list the user could have seen, from the first
#: paint of each page load: a MutationObserver runs after each DOM change and
#: before the next paint, so nothing that was shown is missed, however briefly.
#: ``window.__seen`` is a list of {t, connection, empty, rows: {id: [percent, status]}}.
RECORD_STATES = """
window.__seen = [];
document.addEventListener('DOMContentLoaded', () => {
  const list = document.getElementById('jobs');
  if (!list) return;
  const record = () => {
    const rows = {};
    for (const li of list.querySelectorAll('li.job')) {
      const bar = li.querySelector('[role=progressbar]');
      rows[li.dataset.jobId] = [
        bar?.getAttribute('aria-valuenow') ?? null,
        li.querySelector('.badge')?.textContent ?? null,
      ];
    }
    window.__seen.push({
      t: Math.round(performance.now()),
      connection: document.getElementById('connection')?.textContent ?? null,
      empty: !(document.getElementById('empty')?.hidden ?? true),
      rows,
    });
  };
  record();
  new MutationObserver(record).observe(document.body, {
    subtree: true, childList: true, attributes: true, characterData: true,
  });
});
"""


MISSING = f"the browser tests need {CHROMIUM}: run `python3 app.py test`, which installs it"


#: The chromium of the run, while one is open. Each test module that imports
#: ``browser_fixture`` gets a session fixture of its own, and Playwright's sync API


@pytest.fixture(scope="session", name="browser")
def browser_fixture() -> Iterator[Browser | None]:
    """One headless chromium for the whole run (each test gets its own contexts).

    None when chromium is missing in CI: each test then fails when it opens a page.
    """
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            yield None
            return
        pytest.skip(MISSING)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(name="new_dashboard")
def new_dashboard_fixture(new_dashboard_at, server):
    """Opens the page in a fresh browser context (its own cookies: its own user)."""
    return lambda: new_dashboard_at(server)


class DashboardPage:
    """The page as a user drives it: sign in, start processes, read the rows."""

    def __init__(self, page: Page):
        self.page = page
        self.errors: list[str] = []  # uncaught exceptions in the page's scripts
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    # ------------------------------------------------------------ actions

    def sign_in(self, account) -> DashboardPage:
        """Signs in through the form, as a person does, and waits for the stream."""
        self.page.goto("/")
        self.page.locator("#name").fill(account.name)
        self.page.locator("#password").fill(account.password)
        self.page.get_by_role("button", name="Sign in").click()
        self.expect_live()
        return self

    def start_processes(self) -> None:
        self.page.locator("#start-processes").click()

    def reload(self) -> None:
        self.page.reload()
        self.expect_live()

    def expect_live(self, timeout: float = 15_000) -> None:
        expect(self.connection).to_have_text("live", timeout=timeout)

    # ------------------------------------------------------------ what the user sees

    @property
    def connection(self) -> Locator:
        return self.page.locator("#connection")

    @property
    def rows(self) -> Locator:
        return self.page.locator("#jobs li.job")

    def row(self, job_id: str) -> Locator:
        return self.page.locator(f'#jobs li.job[data-job-id="{job_id}"]')

    def bar(self, job_id: str) -> Locator:
        return self.row(job_id).locator(":scope > .bar")

    def job_ids(self) -> list[str]:
        return [row.get_attribute("data-job-id") for row in self.rows.all()]

    def percent(self, job_id: str) -> int | None:
        """The bar's aria-valuenow, as a number (None while indeterminate)."""
        value = self.bar(job_id).get_attribute("aria-valuenow")
        return None if value is None else int(value)

    def percents(self) -> dict[str, int | None]:
        return {job_id: self.percent(job_id) for job_id in self.job_ids()}

    def expect_finished(self, job_id: str, timeout: float) -> None:
        """The row shows a full bar, "100%" and the "finished" badge."""
        expect(self.bar(job_id)).to_have_attribute("aria-valuenow", "100", timeout=timeout)
        expect(self.badge(job_id)).to_have_text("finished", timeout=timeout)
        expect(self.row(job_id).locator(":scope > .job-foot .job-percent")).to_have_text("100%")

    def seen(self) -> list[dict]:
        """Every state of the list since this page load (see ``RECORD_STATES``)."""
        return self.page.evaluate("window.__seen")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=path, full_page=True)
        return path

    # ------------------------------------------------------------ one row, its buttons, its past

    def badge(self, job_id: str) -> Locator:
        return self.row(job_id).locator(":scope > .job-head .badge")

    def message(self, job_id: str) -> Locator:
        return self.row(job_id).locator(":scope > .job-foot .job-message")

    def error(self, job_id: str) -> Locator:
        return self.row(job_id).locator(":scope > .job-error")

    def cancel_button(self, job_id: str) -> Locator:
        return self.row(job_id).locator("button.action-cancel")

    def retry_button(self, job_id: str) -> Locator:
        return self.row(job_id).locator("button.action-retry")

    def expect_status(self, job_id: str, status, timeout: float = 15_000) -> None:
        """The row's badge says ``status`` (a string, or a compiled pattern)."""
        expect(self.badge(job_id)).to_have_text(status, timeout=timeout)

    def history(self, job_id: str) -> list[tuple[int | None, str | None]]:
        """Every (percent, badge) the row showed since this page load, in order,
        without consecutive repeats (from ``RECORD_STATES``)."""
        shown: list[tuple[int | None, str | None]] = []
        for state in self.seen():
            if job_id not in state["rows"]:
                continue
            now, status = state["rows"][job_id]
            entry = (None if now is None else int(now), status)
            if not shown or shown[-1] != entry:
                shown.append(entry)
        return shown

    def connection_history(self) -> list[str | None]:
        """Every text of ``#connection`` since this page load, without repeats."""
        shown: list[str | None] = []
        for state in self.seen():
            if not shown or shown[-1] != state["connection"]:
                shown.append(state["connection"])
        return shown

    def save_screenshot(self, path: Path) -> Path:
        """The whole page, at the context's width, to ``path`` (for the docs)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=path, full_page=True)
        return path


def some_bar_between(low: int, high: int, finished: int = 0) -> str:
    """JS for ``page.wait_for_function``: a bar of the list is within [low, high]
    (and at least ``finished`` rows say "finished")."""
    return f"""() => [...document.querySelectorAll('#jobs [role=progressbar]')].some((bar) => {{
        const now = bar.getAttribute('aria-valuenow');
        return now !== null && Number(now) >= {low} && Number(now) <= {high};
    }}) && document.querySelectorAll('#jobs .badge[data-status=finished]').length >= {finished}"""


# ---------------------------------------------------------------- for tests with their own server


@pytest.fixture(name="new_dashboard_at")
def new_dashboard_at_fixture(browser):
    """Like ``new_dashboard``, on a server the test names: ``new_dashboard_at(base_url)``.

    For tests that run a web server of their own (to stop and restart it) while the
    session ``server`` stays up. Every context it opens is closed after the test.
    """
    contexts: list[BrowserContext] = []

    def open_dashboard(base_url: str) -> DashboardPage:
        if browser is None:
            pytest.fail(
                f"{MISSING} (CI=true, so the tests fail instead of skipping)", pytrace=False
            )
        context = browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900})
        contexts.append(context)
        context.set_default_timeout(15_000)
        context.add_init_script(RECORD_STATES)
        return DashboardPage(context.new_page())

    yield open_dashboard
    for context in contexts:
        context.close()


def backwards_moves(history: list[tuple[int | None, str | None]]) -> list[str]:
    """Where a row's bar went back (lower, or from a value to none) without a retry
    in between: a retry starts the bar over, nothing else may.

    A retry shows as "queued", or, when its "queued" and "started" came in one frame
    (the page draws once per frame), as an ended row running again: the page lets
    an ended job run again only after a "queued" (see ``static/app.js``).
    """
    problems = []
    best: int | None = None
    previous: str | None = None
    for percent, status in history:
        if status == "queued" or (previous in TERMINAL and status not in TERMINAL):
            best = None  # submitted, or retried: the bar may start over
        elif best is not None and (percent is None or percent < best):
            problems.append(f"{best}% -> {percent}% ({status})")
        if percent is not None and status != "queued":
            best = percent if best is None else max(best, percent)
        previous = status
    return problems
