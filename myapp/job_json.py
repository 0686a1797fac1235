"""What a job looks like to its user: the one JSON shape for the API and the stream."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rq.job import Job

from myapp import clock

#: Every status a job can have: RQ's, and ``skipped``.
STATUSES = (
    "queued", "scheduled", "deferred", "started", "finished", "failed", "stopped",
    "canceled", "skipped",
)  # fmt: skip
#: Statuses after which a job never changes again (until a user retries it).
#: ``skipped`` is a stage of a sequence that never ran because one before it failed.
TERMINAL = frozenset({"finished", "failed", "stopped", "canceled", "skipped"})

#: How a parent counts its children: each status in one of these.
COUNTED = ("queued", "started", "finished", "failed", "canceled", "skipped")
#: RQ statuses that a parent counts as another (waiting ones are ``queued``).
_COUNTED_AS = {"scheduled": "queued", "deferred": "queued", "stopped": "canceled"}

#: What the API's answers and the snapshot add to a job's state when they read it:
#: its place in line (:mod:`myapp.pipeline.line`) and whether it wrote output. Not
#: part of the state, so not in its events.
READ_TIME = ("queue", "has_output")

_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def utcnow() -> datetime:
    """Naive UTC on the shared clock (:mod:`myapp.clock`), as stored in the
    database (SQLite keeps no time zone)."""
    return clock.utcnow()


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with microseconds; fixed width, so strings sort by time."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime(_ISO)


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.strptime(value, _ISO)


def counted_as(status: str) -> str:
    """The one of :data:`COUNTED` that a child with this status counts as."""
    return _COUNTED_AS.get(status, status if status in COUNTED else "queued")


def counts(statuses: Iterable[str]) -> dict[str, int]:
    """A parent's ``counts``: its children by status, and their total."""
    result = dict.fromkeys(("total", *COUNTED), 0)
    for status in statuses:
        result["total"] += 1
        result[counted_as(status)] += 1
    return result


def progress_json(
    done: int | None,
    total: int | None,
    message: str | None,
    eta_seconds: float | None = None,
    percent: float | None = None,
) -> dict[str, Any]:
    """``percent`` is null when the total is unknown: the bar shows activity instead.

    A parent passes its own ``percent`` (weighted by its children's progress);
    for other jobs it is ``done`` of ``total``.
    """
    if percent is None and total:
        percent = round(min(max(done or 0, 0), total) * 100 / total, 1)
    return {
        "done": done,
        "total": total,
        "percent": percent,
        "message": message,
        "eta_seconds": eta_seconds if percent is not None else None,
    }


def job_json(
    *,
    id: str,
    kind: str,
    status: str,
    version: int,
    done: int | None,
    total: int | None,
    message: str | None,
    created_at: datetime | str | None,
    started_at: datetime | str | None,
    ended_at: datetime | str | None,
    updated_at: datetime | str | None,
    error: str | None,
    result: Any,
    eta_seconds: float | None = None,
    retry: dict[str, Any] | None = None,
    parent: str | None = None,
    name: str | None = None,
    percent: float | None = None,
) -> dict[str, Any]:
    """Build the job's JSON; times may be datetimes or already formatted.

    ``version`` orders the job's states (:mod:`myapp.ordering`); ``updated_at``
    is only when the state was made, for display and for measuring lag.

    ``retry`` is set while an automatic retry waits: ``{"attempt": 2, "of": 3,
    "at": <when, or null for "as soon as a worker is free">}``. ``parent`` is the
    id of the batch or sequence a job is a piece of, and ``name`` that piece's label.
    """
    eta = eta_seconds if status == "started" else None
    progress = progress_json(done, total, message, eta, percent)
    if status == "finished":
        progress["percent"] = 100.0
    return {
        "id": id,
        "kind": kind,
        "status": status,
        "version": version,
        "progress": progress,
        "created_at": _time(created_at),
        "started_at": _time(started_at),
        "ended_at": _time(ended_at),
        "updated_at": _time(updated_at),
        "error": error,
        "result": result,
        "retry": retry,
        "parent": parent,
        "name": name,
    }


def _time(value: datetime | str | None) -> str | None:
    return value if isinstance(value, str) or value is None else iso(value)


def from_rq(
    job: Job,
    status: str | None = None,
    error: str | None = None,
    result: Any = None,
    retry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The user's view of an RQ job, from its fields and the ``meta`` we keep on it.

    ``meta`` holds ``user_id``, ``kind``, ``created_at`` (set when enqueued),
    ``version`` (of the state last made, see :mod:`myapp.ordering`), ``started_at``
    (set once, when the job's ``started`` is published: RQ sets its own field
    again an instant later) and ``progress`` (``done``, ``total``, ``message``,
    ``eta_seconds``, written by :mod:`myapp.progress`).
    """
    meta = job.meta
    progress = meta.get("progress") or {}
    status = status or job.get_status(refresh=False) or "queued"
    done, total = progress.get("done"), progress.get("total")
    if status == "finished" and total:
        done = total
    return job_json(
        id=job.id,
        kind=meta.get("kind", "unknown"),
        status=str(getattr(status, "value", status)),
        version=meta.get("version", 0),
        done=done,
        total=total,
        message=progress.get("message"),
        created_at=meta.get("created_at"),
        started_at=meta.get("started_at", job.started_at),
        ended_at=job.ended_at if status in TERMINAL else None,
        updated_at=utcnow(),
        error=error,
        result=result,
        eta_seconds=progress.get("eta_seconds"),
        retry=retry,
        parent=meta.get("parent_id"),
        name=meta.get("name"),
    )
