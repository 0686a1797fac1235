"""Resumable jobs: a job body split into named steps, each with a cursor.

>>> with job_steps() as steps:
...     with steps.step("import", total=len(rows)) as step:
...         for start in range(step.cursor, len(rows), 500):
...             db.session.add_all(...)              # the work of one batch
...             step.advance(start + 500)            # commits it with the cursor

``advance`` commits the job's pending database work and the new cursor in one
transaction, so a job killed at any point (even by SIGKILL) loses at most the
batch in flight, and never writes one twice. When the job runs again (retried
after a crash, a cancel or a deploy), finished steps are skipped and the
running step starts from its cursor, and the page says "resumed at 47 of 200".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rq import get_current_job

from myapp import progress
from myapp.db import db
from myapp.models import TrackedJob


@contextmanager
def job_steps() -> Iterator[Steps]:
    job = get_current_job()
    row = db.session.get(TrackedJob, job.id) if job is not None else None
    yield Steps(row, dict(row.checkpoint or {}) if row is not None else {})


class Steps:
    def __init__(self, row: TrackedJob | None, checkpoint: dict[str, Any]):
        self.row = row
        self.done: list[str] = list(checkpoint.get("done", []))
        self.current: str | None = checkpoint.get("current")
        self.cursor: int = checkpoint.get("cursor", 0)

    @contextmanager
    def step(self, name: str, total: int | None = None) -> Iterator[Step]:
        """Run step ``name``; skipped (``step.skipped``) when an earlier run finished it."""
        if name in self.done:
            yield Step(self, name, total, cursor=total or 0, skipped=True)
            return
        cursor = self.cursor if self.current == name else 0
        step = Step(self, name, total, cursor=cursor, skipped=False)
        if cursor:
            progress.update(cursor, total, f"resumed at {cursor} of {total}")
        yield step
        self.done.append(name)
        self.save(current=None, cursor=0)

    def save(self, current: str | None, cursor: int) -> None:
        """Commit the session's pending work together with this checkpoint."""
        self.current, self.cursor = current, cursor
        if self.row is not None:
            self.row.checkpoint = {"done": self.done, "current": current, "cursor": cursor}
        db.session.commit()


class Step:
    def __init__(self, steps: Steps, name: str, total: int | None, cursor: int, skipped: bool):
        self.steps = steps
        self.name = name
        self.total = total
        self.cursor = cursor
        self.skipped = skipped

    def advance(self, cursor: int, message: str | None = None) -> None:
        """Everything before ``cursor`` is done: commit it, then report progress."""
        self.cursor = cursor
        self.steps.save(current=self.name, cursor=cursor)
        progress.update(cursor, self.total, message)
