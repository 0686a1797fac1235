"""The one call a job body makes to report how far it got.

>>> from myapp import progress
>>> progress.update(47, 200, "importing rows")

It is also where a running job learns that it must stop: it raises
:class:`JobCanceled` once the user canceled the job, :class:`JobInterrupted`
once its worker is shutting down (a deploy), so the job can be resumed, and
:class:`JobSuperseded` once this run no longer holds the job (see
:mod:`myapp.worker.tracking`).

Call it as often as you like: the numbers always land in the RQ job's
``meta``, but they are saved and published at most ``PROGRESS_MAX_RATE`` times
a second (the first call at once, the latest one at most one interval late,
the last one with the job's end), and recorded in the database at most once
every ``PROGRESS_DB_INTERVAL`` seconds. Outside a worker it does nothing, so
job functions can be called directly (in a shell, in a test).
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask, current_app
from rq import get_current_job
from rq.job import Job

from myapp import job_json
from myapp.connections import get_redis
from myapp.errors import JobCanceled, JobInterrupted, JobSuperseded
from myapp.keys import cancel_key
from myapp.ordering import FIRST, next_version
from myapp.pipeline import lifecycle
from myapp.pipeline import output as pipeline_output

#: Seconds between checks for a cancel request.
CANCEL_CHECK_SECONDS = 0.5
#: Weight of the newest rate in the smoothed rate behind the ETA.
RATE_SMOOTHING = 0.3

log = logging.getLogger(__name__)
_reporters: dict[str, _Reporter] = {}
_interrupted = False
#: The execution (``<job>:<id>``) this work horse runs, and its worker; "" outside one.
_execution = _worker = ""
#: What asking Redis tells a running job (:meth:`_Reporter._ask`).
GO_ON, CANCELED, SUPERSEDED = 0, 1, 2


def ask_holds(pipe, job: Job, execution: str) -> None:
    """Ask, in ``pipe``, what :func:`still_holds` needs to know."""
    pipe.zscore(job.started_job_registry.key, execution)
    pipe.hmget(job.key, "status", "worker_name")


def still_holds(score, fields, worker: str) -> bool:
    """Whether ``worker``'s run still holds its job, from :func:`ask_holds`'s answers.

    It does while its execution is in RQ's started registry. The reaper that takes
    the job for dead removes that entry and leaves RQ's job failed or retried, and
    another worker may be running it already. A job RQ no longer has (no ``status``:
    at most the ``meta`` this run's progress wrote back) was taken by nobody: Redis
    lost it (a restart, a failover), and its one run goes on (the reaper rebuilds
    only a job whose record went quiet). Nor was a job this worker has just ended
    (RQ removes the entry first, then myapp records the end).
    """
    if score is not None:
        return True
    status, name = (value.decode() if value else None for value in fields)
    if status is None:
        return True
    return status in ("started", "finished") and name == worker


def run_as(execution: str, worker: str) -> None:
    """Called in the work horse: the execution it runs (and its worker's name), which
    it holds until the reaper takes the job from a worker it took for dead."""
    global _execution, _worker
    _execution, _worker = execution, worker


def interrupt() -> None:
    """Called in the work horse when its worker was asked to stop (SIGTERM)."""
    global _interrupted
    _interrupted = True


def update(done: int | None = None, total: int | None = None, message: str | None = None) -> None:
    """Report ``done`` of ``total`` units; leave ``total`` as None when unknown."""
    job = get_current_job()
    if job is None:
        return
    reporter = _reporter_for(job)
    reporter.check()
    reporter.report({"done": done, "total": total, "message": message})


def output(text: str) -> None:
    """Add ``text`` to the job's output (tokens, lines, a log), any amount at a time.

    It goes out as ``event: output`` at most ``PROGRESS_MAX_RATE`` times a second,
    each event with all the text since the one before, and is kept with the job
    (:mod:`myapp.pipeline.output`), up to ``OUTPUT_MAX_BYTES``.
    """
    job = get_current_job()
    if job is None:
        return
    reporter = _reporter_for(job)
    reporter.check()
    reporter.write(str(text))


def _reporter_for(job: Job) -> _Reporter:
    reporter = _reporters.get(job.id)
    if reporter is None or reporter.job is not job:
        reporter = _reporters[job.id] = _Reporter(current_app._get_current_object(), job)
    return reporter


def close(job: Job) -> None:
    """The job is ending: finish any send under way and save the latest numbers in ``meta``.

    Called by the worker before RQ stores the end, so the end carries them.
    """
    reporter = _reporters.pop(job.id, None)
    if reporter is not None:
        reporter.close()


class _Reporter:
    """Throttles one job's updates. A thread of its own sends them (the database
    row, then the event), so the job body never waits on Redis or the database:
    on a busy worker host each round trip can cost milliseconds of waiting for
    a core, and a job that reports at 10 Hz would lose that time ten times a
    second."""

    def __init__(self, app: Flask, job: Job):
        self.app = app
        self.job = job
        self.gap = 1.0 / app.config["PROGRESS_MAX_RATE"]
        self.db_interval = app.config["PROGRESS_DB_INTERVAL"]
        #: Guards the job's ``meta``, ``pending``, ``outbox`` and ``closed``.
        self.changed = threading.Condition()
        self.last_sent = self.last_recorded = float("-inf")
        self.pending = False
        #: The state to send next, taken when the throttle let it go: (data, meta, durable).
        self.outbox: tuple[dict, bytes, bool] | None = None
        self.closed = False
        #: When the job last learned whether it was canceled, and what it learned
        #: (asked by :meth:`check`, or along with a send).
        self.last_check = float("-inf")
        self.told = GO_ON
        self.rate: float | None = None
        self.rate_point: tuple[float, int] | None = None
        #: The job's output: what earlier runs wrote (read at this run's first
        #: write), what this run wrote, and what it has not sent yet.
        self.max_bytes = app.config["OUTPUT_MAX_BYTES"]
        self.prior: str | None = None
        self.written: list[str] = []
        self.unsent: list[str] = []
        self.out_bytes = self.out_sent = 0
        self.truncated = False
        self.out_last_sent = float("-inf")
        self.sender = threading.Thread(target=self._run, name="myapp-progress", daemon=True)
        self.sender.start()
        #: Records the output from a thread of its own, so that a database slow to take a
        #: write (SQLite's one writer, under a hundred jobs) delays only the record,
        #: never the live text: started at the first write, told by ``to_record``.
        self.recorder: threading.Thread | None = None
        self.to_record = threading.Event()
        self.recorder_stop = threading.Event()

    def check(self) -> None:
        """Raise when the job must stop. Each send asks Redis along with it; a job
        that sends nothing asks by itself, at most every CANCEL_CHECK_SECONDS."""
        if _interrupted:
            raise JobInterrupted("the worker is shutting down")
        now = time.monotonic()
        if now - self.last_check >= CANCEL_CHECK_SECONDS:
            self.last_check = now
            with get_redis().pipeline(transaction=False) as pipe:
                self._ask(pipe)
                self.told = self._told(pipe.execute())
        if self.told == SUPERSEDED:
            raise JobSuperseded("this job was taken for dead and is no longer this run's")
        if self.told == CANCELED:
            raise JobCanceled("canceled by the user")

    def report(self, progress: dict) -> None:
        with self.changed:
            progress["eta_seconds"] = self._eta(progress["done"], progress["total"])
            self.job.meta["progress"] = progress
            self.pending = True
            if self._wait() == 0:
                self._take()  # the state as of this call goes, even if another follows
            self.changed.notify()

    def write(self, text: str) -> None:
        with self.changed:
            if self.prior is None:  # this run's first write: go on after the earlier runs'
                self.prior = pipeline_output.read_text(self.job.id)
                self.out_bytes = len(self.prior.encode())
                self.recorder = threading.Thread(
                    target=self._record_output, name="myapp-output", daemon=True
                )
                self.recorder.start()
            if self.truncated:
                return
            text = pipeline_output.clean(text)
            size = len(text.encode())
            if self.out_bytes + size > self.max_bytes:
                room = max(self.max_bytes - self.out_bytes, 0)
                text = text.encode()[:room].decode("utf-8", "ignore") + pipeline_output.MARKER
                self.truncated = True
            self.out_bytes += size
            self.written.append(text)
            self.unsent.append(text)
            self.changed.notify()

    def close(self) -> None:
        """Let the sender finish what the throttle let go, and all the output; the
        rest of the state goes into ``meta``, the whole output into the record."""
        with self.changed:
            self.closed = True
            self.changed.notify()
        self.sender.join()
        if self.recorder is not None:  # the whole output is recorded below: it stops first
            self.recorder_stop.set()
            self.to_record.set()
            self.recorder.join()
        if self.pending:
            self.job.save_meta()
            self.pending = False
        if self.written and self.told != SUPERSEDED:
            pipeline_output.save(self.job.id, self._whole_output(), self.truncated)

    def _whole_output(self) -> str:
        return (self.prior or "") + "".join(self.written)

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

    def _run(self) -> None:
        with self.app.app_context():
            while True:
                with self.changed:
                    while not (self.closed or self.outbox) and (wait := self._next()) != 0:
                        self.changed.wait(wait)
                    chunk = None
                    if self.unsent and (self.closed or self._out_wait() == 0):
                        chunk = self._take_output()
                    if self.outbox is None and not self.closed and self._wait() == 0:
                        self._take()
                    state, self.outbox = self.outbox, None
                if chunk is not None:
                    self._send_output(*chunk)
                if state is None:
                    if self.closed and not self.unsent:
                        return
                    continue
                data, meta, durable = state
                asked = time.monotonic()
                try:
                    answers = lifecycle.emit(self.job, data, durable, meta, also=self._ask)
                except Exception:  # the next update sends a newer state anyway
                    log.exception("could not send the progress of job %s", self.job.id)
                    continue
                self.told, self.last_check = self._told(answers), asked
                if self.told == SUPERSEDED:
                    return  # nothing more of this run may be written

    def _ask(self, pipe) -> None:
        """Ask whether the job was canceled, and (in a work horse) whether this run
        still holds its execution; :meth:`_told` reads the answers."""
        pipe.exists(cancel_key(self.job.id))
        if _execution:
            ask_holds(pipe, self.job, _execution)

    @staticmethod
    def _told(answers: list) -> int:
        if answers[0]:
            return CANCELED
        if len(answers) > 1 and not still_holds(*answers[1:3], _worker):
            return SUPERSEDED
        return GO_ON

    def _wait(self) -> float | None:
        """Seconds until the pending update may go (0: now), or None: none pending."""
        if not self.pending:
            return None
        return max(self.last_sent + self.gap - time.monotonic(), 0)

    def _out_wait(self) -> float | None:
        """As :meth:`_wait`, for the output not sent yet: its own limit."""
        if not self.unsent:
            return None
        return max(self.out_last_sent + self.gap - time.monotonic(), 0)

    def _next(self) -> float | None:
        waits = [w for w in (self._wait(), self._out_wait()) if w is not None]
        return min(waits) if waits else None

    def _take_output(self) -> tuple[int, str, bool]:
        """The output to send now, at its offset (called holding ``changed``)."""
        text, self.unsent = "".join(self.unsent), []
        offset = len(self.prior or "") + self.out_sent
        self.out_sent += len(text)
        self.out_last_sent = time.monotonic()
        return offset, text, self.truncated

    def _send_output(self, offset: int, text: str, truncated: bool) -> None:
        try:
            pipeline_output.emit(self.job.meta["user_id"], self.job.id, offset, text, truncated)
        except Exception:  # sent with the next chunk (both or neither went: one transaction)
            log.exception("could not send the output of job %s", self.job.id)
            with self.changed:
                if not self.closed:  # at the end, the record gets it whole (close)
                    self.unsent.insert(0, text)
                    self.out_sent -= len(text)
            return
        self.to_record.set()

    def _record_output(self) -> None:
        """Keep the output sent so far in the record, at most every ``PROGRESS_DB_INTERVAL``
        (:meth:`close` records it whole at the end)."""
        with self.app.app_context():
            while True:
                self.to_record.wait()
                if self.recorder_stop.is_set() or self.told == SUPERSEDED:
                    return
                self.to_record.clear()
                with self.changed:
                    whole, truncated = self._whole_output(), self.truncated
                try:  # once: a database out of reach gets it next time, or whole at the end
                    pipeline_output.save(self.job.id, whole, truncated, wait=False)
                except Exception:
                    log.exception("could not record the output of job %s", self.job.id)
                if self.recorder_stop.wait(self.db_interval):
                    return

    def _take(self) -> None:
        """Take the state to send now (called holding ``changed``)."""
        now = time.monotonic()
        durable = now - self.last_recorded >= self.db_interval
        if durable:
            self.last_recorded = now
        elif self.outbox is not None:  # replacing a state not sent yet: keep its record
            durable = self.outbox[2]
        self.last_sent = now
        self.pending = False
        meta = self.job.meta
        meta["version"] = next_version(meta.get("version", FIRST))  # myapp.ordering
        data = job_json.from_rq(self.job, status="started")
        self.outbox = (data, self.job.serializer.dumps(self.job.meta), durable)
