"""A batch's or sequence's own state: its JSON, its outcome and its message.

Built from the aggregate (:mod:`myapp.pipeline.aggregate`) and the children's
records, each time the parent's event is due.
"""

from __future__ import annotations

from typing import Any

from myapp import job_json
from myapp.db import db
from myapp.models import TrackedJob
from myapp.pipeline.aggregate import Aggregate


def parent_state(parent: TrackedJob, agg: Aggregate) -> dict[str, Any]:
    """The parent's JSON for ``agg``: status, bar, message, and at its end the outcome."""
    children = db.session.execute(
        db.select(TrackedJob.id, TrackedJob.name, TrackedJob.status, TrackedJob.error,
                  TrackedJob.result)
        .filter_by(parent_id=parent.id)
        .order_by(TrackedJob.position)
    ).all()  # fmt: skip
    counts = agg.counts
    status, error, result = "started" if agg.started else "queued", None, None
    if agg.ended:
        status, error, result = _outcome(agg, children)
    data = job_json.job_json(
        id=parent.id,
        kind=parent.kind,
        status=status,
        version=agg.version,
        done=counts["finished"],
        total=counts["total"],
        message=_message(agg, children, status),
        created_at=parent.created_at,
        started_at=parent.started_at or (agg.at if agg.started else None),
        ended_at=agg.at if agg.ended else None,
        updated_at=agg.at,
        error=error,
        result=result,
        percent=agg.percent,
    )
    data["children"] = [child.id for child in children]
    data["counts"] = counts
    return data


def _outcome(agg: Aggregate, children) -> tuple[str, str | None, Any]:
    counts = agg.counts
    failed = [child for child in children if child.status == "failed"]
    if agg.mode == "sequence":
        if failed:
            stage = failed[0]
            position = children.index(stage) + 1
            where = f"stage {position} of {len(children)} ({stage.name})"
            return "failed", f"{where} failed: {stage.error}", None
        if counts["finished"] < counts["total"]:
            return "canceled", None, None
        return "finished", None, children[-1].result
    result = {
        "finished": [child.name for child in children if child.status == "finished"],
        "failed": [{"id": c.id, "name": c.name, "error": c.error} for c in failed],
    }
    if failed and not agg.canceled:
        return "failed", f"{len(failed)} of {counts['total']} failed", result
    if counts["finished"] < counts["total"]:
        return "canceled", None, result
    return "finished", None, result


def _message(agg: Aggregate, children, status: str) -> str:
    counts = agg.counts
    if agg.mode == "sequence":
        current = next((i for i, child in enumerate(children) if child.status != "finished"), None)
        if current is None:
            return f"{len(children)}/{len(children)} stages done"
        return f"{current + 1}/{len(children)}: {children[current].name}"
    parts = [f"{counts['finished']} of {counts['total']} done"]
    if counts["started"] and status == "started":
        parts.append(f"{counts['started']} running")
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed")
    if counts["canceled"]:
        parts.append(f"{counts['canceled']} canceled")
    return ", ".join(parts)
