"""The stages of a sequence, as one stage sees the others.

A stage reads the results of those before it (:func:`earlier_results`); when one
fails, the pipeline skips those after it (:func:`later_stages`).
"""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from myapp import job_json
from myapp.db import db
from myapp.models import TrackedJob


def later_stages(child_id: str) -> list[TrackedJob]:
    """The stages after this one in its sequence that have not ended."""
    child = db.session.get(TrackedJob, child_id)
    if child is None or child.parent_id is None:
        return []
    return list(
        db.session.scalars(
            db.select(TrackedJob)
            .filter_by(parent_id=child.parent_id)
            .where(
                TrackedJob.position > child.position, TrackedJob.status.notin_(job_json.TERMINAL)
            )
            .order_by(TrackedJob.position)
        )
    )


def earlier_results() -> dict[str, Any]:
    """In a stage of a sequence: the results of the stages before it, by name."""
    job = get_current_job()
    me = db.session.get(TrackedJob, job.id)
    rows = db.session.scalars(
        db.select(TrackedJob)
        .filter_by(parent_id=me.parent_id)
        .where(TrackedJob.position < me.position)
    )
    return {row.name: row.result for row in rows}
