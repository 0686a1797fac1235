"""Latency to the page: from ``progress.update`` in the worker to the bar in the browser.

One headless Chromium (Debian's, driven by Playwright as the tests drive it)
holds two pages of the same user side by side, watching the same jobs:

- ``myapp``: the real page (``/``, signed in through its form), live over SSE;
- ``polling``: a tiny page like celery-progress's, served by the bench at the
  same origin (Playwright answers its URL), which fetches ``GET /api/jobs/<id>``
  every 500 ms for each job and sets its bar's ``aria-valuenow``.

The jobs (``bench.jobbodies.stamped``, run by real ``python worker.py``
processes) report progress every ``interval`` s with their ``time.time()`` as
the message. A MutationObserver the bench injects in both pages (the app does
not have it) stamps every change of a bar's ``aria-valuenow`` with
``performance.timeOrigin + performance.now()`` and reads the message next to the
bar; the latency of an update is that stamp minus the message's time (same
machine, same clock), once per update shown. The polling page only ever sees
what is in the database, where myapp records progress at most once per
``PROGRESS_DB_INTERVAL``: it shows fewer of the updates, each later.
"""

from __future__ import annotations

import re
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench import jobs, servers
from bench.fanout import fmt_ms, percentiles
from tests.browser import CHROMIUM, LAUNCH_ARGS  # the browser the page tests drive

POLL_PATH = "/bench-polling"
POLL_MS = 500

#: Injected in both pages before their own scripts: every change of a bar.
OBSERVE = """
window.__marks = [];
new MutationObserver((mutations) => {
  const t = performance.timeOrigin + performance.now();
  for (const m of mutations) {
    const row = m.target.closest('[data-job-id]');
    if (!row) continue;
    window.__marks.push([t, row.dataset.jobId, m.target.getAttribute('aria-valuenow'),
                         row.querySelector('.job-message')?.textContent ?? '']);
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['aria-valuenow']});
"""

#: The polling baseline: one bar per job, each refreshed every POLL_MS.
POLL_PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>polling</title></head>
<body><ul id="jobs"></ul>
<script>
window.watch = (ids, token) => {{
  for (const id of ids) {{
    const li = document.createElement('li');
    li.dataset.jobId = id;
    li.innerHTML = '<div role="progressbar"></div><span class="job-message"></span>';
    document.getElementById('jobs').append(li);
    const poll = async () => {{
      const answer = await fetch(`/api/jobs/${{id}}`, {{
        headers: {{Authorization: `Bearer ${{token}}`}}}});
      const job = await answer.json();
      const percent = job.progress?.percent;
      li.querySelector('.job-message').textContent = job.progress?.message ?? '';
      if (typeof percent === 'number') {{
        li.firstChild.setAttribute('aria-valuenow', String(Math.floor(percent)));
      }}
      if (!['finished', 'failed', 'canceled'].includes(job.status)) {{
        setTimeout(poll, {POLL_MS});
      }}
    }};
    poll();
  }}
}};
</script></body></html>
"""
STAMP = re.compile(r"ts=([0-9]+\.[0-9]+)")


@dataclass
class PageOptions:
    jobs: int = 4
    steps: int = 40
    interval: float = 0.25
    repeats: int = 3
    deadline: float = float("inf")
    log: callable = print


def latencies(marks: list, ids: set[str]) -> list[float]:
    """Seconds from each update to its first appearance (each update counts once)."""
    seen: set[tuple[str, str]] = set()
    found = []
    for t_ms, job_id, _value, message in marks:
        stamp = STAMP.search(message or "")
        if job_id not in ids or not stamp or (job_id, stamp.group(1)) in seen:
            continue
        seen.add((job_id, stamp.group(1)))
        found.append(t_ms / 1000 - float(stamp.group(1)))
    return found


def run(opts: PageOptions, workdir: Path, db_path: Path, users: list[dict]) -> dict:
    from playwright.sync_api import expect, sync_playwright
    from rq import Worker

    results: dict = {
        "jobs": opts.jobs,
        "steps": opts.steps,
        "interval": opts.interval,
        "poll_ms": POLL_MS,
        "runs": [],
    }
    user = users[0]
    with ExitStack() as stack:
        redis = servers.start_redis(workdir / "redis-page", "page")
        stack.callback(redis.stop)
        database_url = f"sqlite:///{db_path}"
        env = servers.service_env(redis.url, database_url)
        web = servers.start_gunicorn("page", "app:app", env, workdir)
        stack.callback(web.stop)
        log = open(workdir / "page-workers.log", "ab")  # noqa: SIM115
        stack.callback(log.close)
        procs = [
            servers.spawn(
                f"page-worker-{i}",
                [servers.PYTHON, "worker.py"],
                cwd=servers.ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for i in range(opts.jobs)
        ]
        stack.callback(servers.stop_all, procs)
        app = jobs.make_app(redis.url, database_url)
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        stack.callback(browser.close)
        results["chromium"] = browser.version
        pages = {}
        for name in ("myapp", "polling"):
            context = browser.new_context(base_url=web.base)
            context.set_default_timeout(20_000)
            context.add_init_script(OBSERVE)
            context.route(
                f"{web.base}{POLL_PATH}",
                lambda route: route.fulfill(content_type="text/html", body=POLL_PAGE),
            )
            pages[name] = context.new_page()
        page = pages["myapp"]
        page.goto("/")
        page.locator("#name").fill(user["name"])
        page.locator("#password").fill("x")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#connection")).to_have_text("live")
        pages["polling"].goto(POLL_PATH)
        servers.wait_until(
            lambda: Worker.count(connection=redis.client) >= opts.jobs, 60, "the workers"
        )
        for repeat in range(opts.repeats):
            if time.monotonic() > opts.deadline:
                opts.log(f"  page: time budget spent; repeat {repeat} skipped")
                results["skipped"] = results.get("skipped", 0) + 1
                continue
            for p in pages.values():
                p.evaluate("window.__marks = []")
            kwargs = {"steps": opts.steps, "interval": opts.interval}
            ids, _ = jobs.enqueue_batch(app, "bench.jobbodies.stamped", kwargs, opts.jobs, [user])
            pages["polling"].evaluate("([ids, token]) => watch(ids, token)", [ids, user["token"]])
            statuses = jobs.wait_terminal(app, ids, opts.steps * opts.interval + 60)
            time.sleep(POLL_MS / 1000 + 0.5)  # the last poll
            run = {"repeat": repeat, "statuses": statuses, "updates": opts.jobs * opts.steps}
            for name, p in pages.items():
                found = latencies(p.evaluate("window.__marks"), set(ids))
                run[name] = {**percentiles(found), "shown": len(found), "values": found}
            results["runs"].append(run)
            opts.log(
                f"  page #{repeat}: "
                + "; ".join(
                    f"{name} p50 {fmt_ms(run[name]['p50'])} p99 {fmt_ms(run[name]['p99'])} "
                    f"({run[name]['shown']} of {run['updates']} shown)"
                    for name in pages
                )
            )
        with app.app_context():
            from myapp.db import db

            db.engine.dispose()
    return results
