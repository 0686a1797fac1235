"""The ordering rule: an older state of a job never undoes a newer one.

Two states of one job can arrive out of order: a worker's progress and the web's
cancel cross on their way, or two processes race to publish a parent. Every
place that keeps a job's latest state decides which is newer by this module:

- the database record (:func:`myapp.pipeline.lifecycle.record`);
- the event log's guard and its hash of active jobs, in the publishing script
  (:mod:`myapp.pipeline.event_log`), which is given :func:`order_of` to compare;
- a stream's snapshot, merged with what arrived while it was taken
  (:mod:`myapp.web.stream`);
- ``flask jobs watch`` (:mod:`myapp.cli.jobs`);
- the page (``static/app.js``, ``isNewer``), which applies the same comparison
  and also drops an equal state, as a duplicate it has shown already.

Today a state's order is its ``updated_at``: ISO 8601 UTC of fixed width, so the
strings compare as the times do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from myapp.job_json import iso


def order_of(job: Mapping[str, Any]) -> str:
    """What "newer" compares for a job's JSON: larger is newer."""
    return job.get("updated_at") or ""


def is_older(job: Mapping[str, Any], than: Mapping[str, Any] | str) -> bool:
    """Whether ``job`` is older than ``than`` (a job's JSON, or its :func:`order_of`):
    such a state is dropped. An equal one is not older, so a state written twice
    is harmless."""
    other = than if isinstance(than, str) else order_of(than)
    return order_of(job) < other


def recorded_order(row: Any) -> str:
    """The :func:`order_of` of the state a job's database record holds."""
    return iso(row.updated_at)
