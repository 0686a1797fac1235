"""The one call a job body makes to report how far it got.

>>> from myapp import progress
>>> progress.update(47, 200, "importing rows")

It is also where a running job learns that it must stop: it raises
:class:`JobCanceled` once the user canceled the job, and :class:`JobInterrupted`
once its worker is shutting down (a deploy), so the job can be resumed.

Call it as often as you like: the numbers always land in the RQ job's
``meta``, but they are saved and published at most ``PROGRESS_MAX_RATE`` times
a second (the first call at once, the latest one at most one interval late,
the last one with the job's end), and recorded in the database at most once
every ``PROGRESS_DB_INTERVAL`` seconds. Outside a worker it does nothing, so
job functions can be called directly (in a shell, in a test).
"""

from __future__ import annotations

import threading
import time

from flask import Flask, current_app
from rq import get_current_job
from rq.job import Job

from myapp import lifecycle, state
from myapp.connections import get_redis

#: Seconds between checks for a cancel request.
CANCEL_CHECK_SECONDS = 0.5
#: Weight of the newest rate in the smoothed rate behind the ETA.
RATE_SMOOTHING = 0.3

_reporters: dict[str, _Reporter] = {}
_interrupted = False


class JobCanceled(BaseException):
    """The user canceled the job. A BaseException, so ``except Exception`` in a job
    body does not swallow it."""


class JobInterrupted(BaseException):
    """The worker is shutting down; the job is put back on the queue to resume."""


def cancel_key(job_id: str) -> str:
    """Where a cancel request waits for the job to see it (see :mod:`myapp.control`)."""
    return f"myapp:cancel:{job_id}"


def interrupt() -> None:
    """Called in the work horse when its worker was asked to stop (SIGTERM)."""
    global _interrupted
    _interrupted = True


def update(done: int | None = None, total: int | None = None, message: str | None = None) -> None:
    """Report ``done`` of ``total`` units; leave ``total`` as None when unknown."""
    job = get_current_job()
    if job is None:
        return
    reporter = _reporters.get(job.id)
    if reporter is None or reporter.job is not job:
        reporter = _reporters[job.id] = _Reporter(current_app._get_current_object(), job)
    reporter.check()
    reporter.report({"done": done, "total": total, "message": message})


def close(job: Job) -> None:
    """The job is ending: cancel any late send and save the latest numbers in ``meta``.

    Called by the worker before RQ stores the end, so the end carries them.
    """
    reporter = _reporters.pop(job.id, None)
    if reporter is not None:
        reporter.close()


class _Reporter:
    """Throttles one job's updates; a timer sends the latest one when calls stop."""

    def __init__(self, app: Flask, job: Job):
        self.app = app
        self.job = job
        self.gap = 1.0 / app.config["PROGRESS_MAX_RATE"]
        self.db_interval = app.config["PROGRESS_DB_INTERVAL"]
        self.lock = threading.Lock()
        self.last_sent = self.last_recorded = float("-inf")
        self.pending = False
        self.timer: threading.Timer | None = None
        self.closed = False
        self.last_check = float("-inf")
        self.rate: float | None = None
        self.rate_point: tuple[float, int] | None = None

    def check(self) -> None:
        """Raise when the job must stop; asks Redis at most every CANCEL_CHECK_SECONDS."""
        if _interrupted:
            raise JobInterrupted("the worker is shutting down")
        now = time.monotonic()
        if now - self.last_check >= CANCEL_CHECK_SECONDS:
            self.last_check = now
            if get_redis().exists(cancel_key(self.job.id)):
                raise JobCanceled("canceled by the user")

    def report(self, progress: dict) -> None:
        with self.lock:
            progress["eta_seconds"] = self._eta(progress["done"], progress["total"])
            self.job.meta["progress"] = progress
            self.pending = True
            wait = self.last_sent + self.gap - time.monotonic()
            if wait <= 0:
                self._send()
            elif self.timer is None:
                self.timer = threading.Timer(wait, self._late_send)
                self.timer.daemon = True
                self.timer.start()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()
            if self.pending:
                self.job.save_meta()
                self.pending = False

    def _eta(self, done: int | None, total: int | None) -> float | None:
        """Seconds left at the smoothed recent rate (not the rate since the start)."""
        if done is None or not total:
            return None
        now = time.monotonic()
        if self.rate_point is not None:
            seconds, before = now - self.rate_point[0], self.rate_point[1]
            if seconds >= 0.2 and done >= before:
                rate = (done - before) / seconds
                self.rate = (
                    rate
                    if self.rate is None
                    else (RATE_SMOOTHING * rate + (1 - RATE_SMOOTHING) * self.rate)
                )
                self.rate_point = (now, done)
        else:
            self.rate_point = (now, done)
        if not self.rate:
            return None
        return round(max(total - done, 0) / self.rate, 1)

    def _late_send(self) -> None:
        with self.app.app_context(), self.lock:
            if threading.current_thread() is not self.timer:
                return  # canceled by a send that came first
            self.timer = None
            if self.pending and not self.closed:
                self._send()

    def _send(self) -> None:
        if self.timer is not None:  # sending now: a late send would come too soon
            self.timer.cancel()
            self.timer = None
        now = time.monotonic()
        durable = now - self.last_recorded >= self.db_interval
        self.last_sent = now
        if durable:
            self.last_recorded = now
        self.pending = False
        data = state.from_rq(self.job, status="started")
        lifecycle.emit(self.job, data, durable=durable, save_meta=True)
