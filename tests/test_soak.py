"""A bounded soak: two users, many tabs, a stream of mixed jobs, and faults.

While jobs of every kind run (some failing, some canceled) on workers whose clocks
disagree (one in sync, one 3 s behind, one 30 s ahead), workers are killed
with ``kill -9`` and replaced, and tabs are dropped at random and resume from
their last event id, as a browser does. At the end: every job has ended (none
stuck), every tab knows every one of its user's jobs in the state the database
holds (no final state lost), its events came in order and once, and not one
event of one user reached the other's tabs.

CI runs a short soak. The long one is the same test, made bigger:

    SOAK_SECONDS=600 SOAK_STREAMS=150 python3 app.py test tests/test_soak.py -s

It prints its figures (copied into docs/reliability.md).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests

from myapp.db import db
from myapp.job_json import TERMINAL
from myapp.models import TrackedJob, User
from myapp.wire import parse_id
from tests import rq_state
from tests.conftest import wait_until
from tests.rig import Rig, skewed
from tests.sse_client import Stream

SECONDS = float(os.environ.get("SOAK_SECONDS", "45"))
#: The workers' clocks, in seconds off the true one: one in sync, one behind, one
#: ahead; a killed worker's replacement takes the dead one's clock.
SKEWS = (0, -3, 30)
STREAMS_PER_USER = int(os.environ.get("SOAK_STREAMS", "20"))
USERS = 2


@dataclass
class Tab:
    """One browser tab: a stream that resumes from its last event id when dropped.

    What it heard is folded as it arrives (the events themselves are let go), so a
    long soak's tabs stay small: each job's last status, the ids in arrival order.
    """

    base: str
    headers: dict[str, str]
    stream: Stream | None = None
    status: dict[str, str] = field(default_factory=dict)
    heard: set[str] = field(default_factory=set)
    ids: list[tuple[int, int]] = field(default_factory=list)
    last_id: str | None = None
    snapshots: int = 0

    def __post_init__(self):
        self.open()

    def open(self) -> None:
        resume = {"Last-Event-ID": self.last_id} if self.last_id else {}
        self.stream = Stream(f"{self.base}/stream", {**self.headers, **resume})

    def fold(self) -> None:
        """Take in what arrived since the last call."""
        arrived = self.stream.events
        count = len(arrived)
        for event in arrived[:count]:
            self.last_id = event.id or self.last_id
            if event.type == "job":
                job = event.json()
                self.status[job["id"]] = job["status"]
                self.heard.add(job["id"])
                self.ids.append(parse_id(event.id))
            elif event.type == "snapshot":
                self.snapshots += 1
                for job in event.json()["jobs"]:
                    self.status[job["id"]] = job["status"]
                    self.heard.add(job["id"])
        del arrived[:count]  # the reader thread only appends: this is safe

    def drop(self) -> None:
        """Cut the connection and reconnect, as after a network blip."""
        self.stream.close()
        self.fold()
        self.open()

    def ended_by_server(self) -> bool:
        return not self.stream._thread.is_alive()

    def knows(self, final: dict[str, str]) -> bool:
        self.fold()
        return self.status.items() >= final.items()

    def close(self) -> None:
        self.stream.close()
        self.fold()


def random_job(rng: random.Random) -> dict:
    """A job of any kind, some of them bound to fail."""
    kind = rng.choice(["process_run", "process_run", "publish_album", "generate_profile"])
    if kind == "process_run":
        params = {"steps": rng.randint(3, 25), "step_seconds": rng.uniform(0.02, 0.12)}
    elif kind == "publish_album":
        items = [
            {"name": f"p{i}.jpg", "size_kb": rng.randint(50, 400), "reject": rng.random() < 0.1}
            for i in range(rng.randint(2, 5))
        ]
        params = {"items": items, "failure_rate": 0.2, "latency_ms": rng.randint(20, 150)}
    else:
        params = {"stage_seconds": rng.uniform(0.05, 0.3)}
        if rng.random() < 0.2:
            params["fail_stage"] = rng.choice(["traits", "background", "summary"])
    return {"kind": kind, "params": params}


def rows_of(app, name: str) -> dict[str, TrackedJob]:
    """Every record of the user: top-level jobs and their pieces."""
    with app.app_context():
        user = db.session.scalar(db.select(User).filter_by(name=name))
        rows = db.session.scalars(db.select(TrackedJob).filter_by(user_id=user.id))
        return {row.id: row for row in rows}


def test_a_soak_with_faults_loses_nothing_and_crosses_no_users(service_env, app, accounts):
    rig = Rig(
        {
            **service_env,
            "RQ_QUEUE": f"soak-{uuid.uuid4().hex[:8]}",
            "MAX_STREAMS_PER_USER": str(2 * STREAMS_PER_USER + 10),
            "MAX_ACTIVE_JOBS_PER_USER": "12",
        }
    )
    users = [accounts.create() for _ in range(USERS)]
    tabs: dict[str, list[Tab]] = {}
    rng = random.Random(8)
    figures = Counter()
    try:
        rig.start_web()
        skew_of_pid = {rig.start_worker(**skewed(s)).pid: s for s in SKEWS}
        wait_until(lambda: len(rig.live_workers()) == len(SKEWS), 30)
        for user in users:
            tabs[user.name] = [Tab(rig.base, user.headers) for _ in range(STREAMS_PER_USER)]
        submitted: dict[str, list[str]] = {user.name: [] for user in users}

        deadline = time.monotonic() + SECONDS
        next_kill = time.monotonic() + rng.uniform(3, 8)
        while time.monotonic() < deadline:
            user = rng.choice(users)
            response = requests.post(
                f"{rig.base}/api/jobs", json=random_job(rng), headers=user.headers, timeout=30
            )
            assert response.status_code in (202, 429), response.text
            if response.status_code == 202:
                job_id = response.json()["id"]
                submitted[user.name].append(job_id)
                figures["jobs"] += 1
                if rng.random() < 0.08:
                    time.sleep(rng.uniform(0, 0.5))
                    canceled = requests.post(
                        f"{rig.base}/api/jobs/{job_id}/cancel", headers=user.headers, timeout=30
                    )
                    assert canceled.status_code in (200, 202, 409), canceled.text
                    figures["cancels"] += canceled.status_code != 409
            else:
                figures["refused (429, active-job cap)"] += 1
            for tab in rng.sample([t for ts in tabs.values() for t in ts], 2):
                tab.drop()
                figures["tab drops"] += 1
            if time.monotonic() > next_kill:
                running = [w for w in rig.live_workers() if w.get_current_job_id()]
                if running:
                    victim = rng.choice(running)
                    rig.kill(victim)
                    skew = skew_of_pid.pop(victim.pid)
                    skew_of_pid[rig.start_worker(**skewed(skew)).pid] = skew
                    figures["workers killed"] += 1
                next_kill = time.monotonic() + rng.uniform(4, 10)
            for tab in [t for ts in tabs.values() for t in ts]:
                if tab.ended_by_server():
                    tab.drop()  # the server ended it (a full queue): the tab reconnects
                    figures["streams ended by the server"] += 1
                tab.fold()
            time.sleep(rng.uniform(0.05, 0.3))

        # No job stuck: everything ends, in the database, killed workers included.
        def stuck():
            return [
                (row.id, row.kind, row.status, row.parent_id, row.updated_at)
                for u in users
                for row in rows_of(app, u.name).values()
                if row.status not in TERMINAL
            ]

        try:
            wait_until(lambda: not stuck(), timeout=180, interval=0.5)
        except AssertionError:
            queue = rig.env["RQ_QUEUE"]
            where = [(row, rq_state.where(rig.redis, queue, row[0])) for row in stuck()]
            raise AssertionError(f"jobs that never ended: {where}") from None
        records = {user.name: rows_of(app, user.name) for user in users}
        # Every tab hears every final state (the last events may still be on the way).
        for user in users:
            final = {job_id: row.status for job_id, row in records[user.name].items()}
            for tab in tabs[user.name]:
                try:
                    wait_until(lambda t=tab, f=final: t.knows(f), 30, 0.2)
                except AssertionError:
                    wrong = [(j, tab.status.get(j), s) for j, s in final.items()
                             if tab.status.get(j) != s]  # fmt: skip
                    raise AssertionError(f"a tab missed final states: {wrong[:5]}") from None
    finally:
        for tab in [t for ts in tabs.values() for t in ts]:
            tab.close()
        rig.stop()

    assert figures["jobs"] >= 20
    assert figures["workers killed"] >= 2
    for user in users:
        mine = set(records[user.name])
        others = set().union(*(set(records[u.name]) for u in users if u is not user))
        assert set(submitted[user.name]) <= mine
        for tab in tabs[user.name]:
            assert not tab.heard & others, "another user's job reached this tab"
            assert tab.heard <= mine
            assert tab.ids == sorted(set(tab.ids)), "events out of order or twice"
            figures["events received"] += len(tab.ids)
            figures["snapshots"] += tab.snapshots
        statuses = Counter(row.status for row in records[user.name].values())
        figures.update({f"records {status}": n for status, n in statuses.items()})
    figures["records"] = sum(len(r) for r in records.values())
    figures["tabs"] = USERS * STREAMS_PER_USER
    print(f"\nsoak, {SECONDS:.0f} s:", ", ".join(f"{k} {v}" for k, v in sorted(figures.items())))
