"""A job body for the partition tests: contacts written in small batches at a steady
pace, each committed with its checkpoint, as ``import_contacts`` writes them, so a cut
link lands in the middle of the job at a time the test chooses."""

from __future__ import annotations

import time

from rq import get_current_job

from myapp.db import db
from myapp.models import Contact
from myapp.steps import job_steps


def run(rows: int, batch: int, seconds: float) -> dict:
    """Write ``rows`` contacts, ``batch`` at a time, ``seconds`` apart. A row written
    twice breaks the table's unique (job, row), so it fails the job."""
    job = get_current_job()
    with job_steps() as steps, steps.step("import", total=rows) as step:
        resumed_at = step.cursor
        for start in range(step.cursor, rows, batch):
            time.sleep(seconds)
            end = min(start + batch, rows)
            db.session.add_all(
                Contact(user_id=job.meta["user_id"], job_id=job.id, row_number=n + 1,
                        name=f"contact {n + 1}", email=f"c{n + 1}@example.com")
                for n in range(start, end)
            )  # fmt: skip
            step.advance(end, f"{end} of {rows} rows")
    return {"imported": rows, "resumed_at": resumed_at}
