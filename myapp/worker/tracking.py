"""The RQ worker: runs jobs inside the app and reports their lifecycle.

:class:`TrackingWorker` is RQ's forking ``Worker`` with these additions:

- after RQ has stored each change of a job's status, it hands the job to
  :mod:`myapp.pipeline.lifecycle`, which covers what job bodies cannot report: a job that
  raised, timed out, or whose work horse was killed;
- cancel: a job whose cancel request it sees is ended ``canceled`` (and stopped
  with RQ's stop command when it does not stop by itself within the grace);
- survival: the work horse dies with its worker (no orphan keeps running),
  heartbeats are short, and every worker reaps jobs whose worker died
  (:mod:`myapp.worker.reaper`), so none stays taken or ``started`` for long;
- a graceful stop (SIGTERM) interrupts the running job at its next progress
  call and puts it back on the queue, to resume from its checkpoint;
- partitions: a run writes its job's end only while it still holds its execution
  (the entry ``<job>:<execution>`` in RQ's started registry). A worker cut off from
  Redis past its heartbeat is taken for dead, and the reaper fails or retries its
  job and removes that entry; when the link returns, the run stops (its horse
  killed, its progress calls raising :class:`~myapp.errors.JobSuperseded`) and
  writes nothing, so a job retried elsewhere is not also ended here (a job Redis
  lost as a whole was taken by nobody: its run goes on). A database
  out of reach does not fail the job: its writes wait (:func:`myapp.db.ride_out`),
  and a body that met the error runs again from its checkpoint (:class:`ResumingJob`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

from flask import Flask, current_app
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import InvalidJobOperation
from rq.job import Job
from rq.serializers import JSONSerializer

from myapp import clock, job_json, progress
from myapp.connections import get_queue
from myapp.db import UNREACHABLE, db, ride_out
from myapp.errors import PermanentError
from myapp.jobs import control
from myapp.pipeline import lifecycle
from myapp.worker import reaper

_PR_SET_PDEATHSIG = 1
#: Seconds before a worker that lost Redis starts again.
RESTART_SECONDS = 2.0


class ResumingJob(Job):
    """RQ's job, whose body runs again from its checkpoint (:mod:`myapp.steps`) when it
    met a database out of reach, until the database is back (:func:`myapp.db.ride_out`)."""

    def _execute(self):
        tries = 0

        def run():
            nonlocal tries
            if tries:
                try:
                    db.session.rollback()  # what the failed try left in the session
                except UNREACHABLE:
                    db.session.remove()  # its connection went with the link
            tries += 1
            return super(ResumingJob, self)._execute()

        return ride_out(run, f"job {self.id}")


class TrackingWorker(Worker):
    job_class = ResumingJob

    def __init__(self, *args, death_seconds: float, cancel_grace: float, **kwargs):
        self.death_seconds = death_seconds
        self.cancel_grace = cancel_grace
        super().__init__(
            *args,
            job_monitoring_interval=1,
            # RQ's maintenance also frees jobs stuck between dequeue and start.
            maintenance_interval=max(1, int(death_seconds)),
            **kwargs,
        )

    # -- survival ---------------------------------------------------------

    @property
    def reap_interval(self) -> float:
        return max(1.0, self.death_seconds / 8)

    @property
    def dequeue_timeout(self) -> int:
        # An idle worker wakes this often to heartbeat and reap.
        return max(1, int(self.reap_interval))

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        return max(2, int(self.death_seconds / 2))

    def register_birth(self):
        # Its first heartbeat is already on the shared clock (myapp.clock).
        clock.maybe_sync(self.connection)
        super().register_birth()
        lifecycle.compile_record()

    def heartbeat(self, timeout=None, pipeline=None):
        super().heartbeat(timeout, pipeline)
        if pipeline is None:
            clock.maybe_sync(self.connection)
            self._reap()

    def maintain_heartbeats(self, job, execution):
        super().maintain_heartbeats(job, execution)
        if not self._holds(job, execution):
            current_app.logger.warning("job %s: taken for dead while cut off; stopping", job.id)
            self.kill_horse()
            return
        requested = control.cancel_requested_at(self.connection, job.id)
        if requested is not None and clock.time() - requested > self.cancel_grace:
            self._stopped_job_id = job.id  # RQ's stop-job command does the same
            self.kill_horse()
        self._reap()

    def clean_registries(self):
        self._reap(force=True)  # before RQ's own
        super().clean_registries()

    def _reap(self, force: bool = False) -> None:
        try:
            reaper.reap(self.queues[0], self.reap_interval, force=force)
        except UNREACHABLE as error:  # the next reaping tries again
            current_app.logger.warning("could not reap: database out of reach (%s)", error.orig)
            db.session.remove()

    def _holds(self, job, execution) -> bool:
        """Whether this run still holds its job (:func:`myapp.progress.still_holds`)."""
        with self.connection.pipeline(transaction=False) as pipe:
            progress.ask_holds(pipe, job, execution.composite_key)
            return progress.still_holds(*pipe.execute(), self.name)

    def fork_work_horse(self, job, queue):
        # A connection held across the fork would be written to by both processes
        # (see myapp.db): hand it back to the pool, which the horse then drops.
        db.session.remove()
        super().fork_work_horse(job, queue)

    def main_work_horse(self, job, queue):
        # The horse must die with its worker rather than run on unwatched. (It opens
        # database connections of its own: see myapp.db.)
        try:
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass  # not Linux: the reaper still resolves the job
        if os.getppid() != self.pid:
            os._exit(1)  # the worker died before the line above took effect
        progress.run_as(self.execution.composite_key, self.name)
        super().main_work_horse(job, queue)

    def setup_work_horse_signals(self):
        super().setup_work_horse_signals()
        signal.signal(signal.SIGUSR1, lambda *_: progress.interrupt())

    #: Asked to stop (SIGTERM, SIGINT): it must not be started again.
    stopping = False

    def request_stop(self, signum, frame):
        self.stopping = True
        # Tell the horse first: RQ's own handling waits for its scheduler to stop.
        if self.horse_pid:
            try:
                os.kill(self.horse_pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass  # the horse just ended
        super().request_stop(signum, frame)

    def unsubscribe(self):
        # RQ wakes its command listener with the reply to UNSUBSCRIBE, then stops it.
        # When the reply came first, the listener went back to wait 60 s for a
        # subscription, and redis-py 8's stop() waits for it: a stop took a minute.
        # Told first, the listener ends on the reply.
        if self.pubsub_thread:
            self.pubsub_thread._running.clear()
        super().unsubscribe()

    # -- lifecycle --------------------------------------------------------

    def prepare_job_execution(self, job, remove_from_intermediate_queue=False):
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        if control.cancel_requested_at(self.connection, job.id) is not None:
            raise progress.JobCanceled("canceled before it started")
        # One started_at for the job's every state: RQ sets its own again later.
        job.meta["started_at"] = job_json.iso(job.started_at)
        lifecycle.job_changed(job, "started")

    def handle_job_success(self, job, queue, started_job_registry, execution):
        if not self._holds(job, execution):
            self._let_go(job)
            return
        progress.close(job)
        super().handle_job_success(job, queue, started_job_registry, execution)
        lifecycle.job_changed(job, "finished", result=job.return_value())

    _raised: BaseException | None = None

    def handle_exception(self, job, *exc_info):
        # RQ calls this just before handle_job_failure, with what the job raised.
        self._raised = exc_info[1]
        super().handle_exception(job, *exc_info)

    def handle_job_failure(
        self, job, queue, started_job_registry=None, exc_string="", execution=None
    ):
        if execution is not None and not self._holds(job, execution):
            self._let_go(job)
            return
        progress.close(job)
        if "JobInterrupted" in exc_string:
            self._put_back(job, queue, execution)
            return
        canceled = control.cancel_requested_at(self.connection, job.id) is not None
        if canceled or isinstance(self._raised, PermanentError):
            job.retries_left = 0
        self._raised = None
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        if canceled:
            try:
                job.cancel()
            except InvalidJobOperation:
                pass  # the web canceled it too, an instant earlier
            lifecycle.job_changed(job, "canceled")
            return
        status = job.get_status(refresh=True).value
        error = describe_error(exc_string, job.timeout)
        lifecycle.job_changed(job, status, error=error, retry=control.retry_info(job))

    def execute_job(self, job, queue):
        super().execute_job(job, queue)
        parent_id = job.meta.get("parent_id")
        if parent_id is not None:
            # The work horse is gone, and with it any timer that held back the
            # parent's latest event: this long-lived process sends it.
            try:
                lifecycle.flush_parent(job.meta["user_id"], parent_id)
            except Exception:  # never stop the worker for a late progress event
                current_app.logger.exception("could not send batch %s's progress", parent_id)

    def _let_go(self, job) -> None:
        """The job is no longer this run's (failed, or retried elsewhere): write nothing."""
        self._raised = None
        current_app.logger.warning("job %s: no longer this run's; its end is not written", job.id)

    def _put_back(self, job, queue, execution):
        """Interrupted by a shutdown: requeue it; its checkpoint is already saved."""
        with self.connection.pipeline() as pipe:
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            pipe.execute()
        self._release_slot_safely(job)  # its per-user slot; enqueueing takes one again
        queue.enqueue_job(job)
        job.meta.setdefault("progress", {})["message"] = "interrupted by a worker restart"
        lifecycle.job_changed(job, "queued")


def describe_error(exc_string: str, timeout: int | None) -> str:
    """What a user can read on the page, from a traceback."""
    if "JobTimeoutException" in exc_string:
        return f"timed out after {timeout} s"
    if "Work-horse terminated unexpectedly" in exc_string:
        return reaper.WORKER_DIED
    lines = [line.strip() for line in exc_string.strip().splitlines() if line.strip()]
    if not lines:
        return "failed"
    # Our own errors are written for users: their message is enough.
    name, colon, message = lines[-1].partition(": ")
    return message if colon and name.startswith("myapp.") else lines[-1]


def run_worker(
    app: Flask, burst: bool = False, worker_class: type[TrackingWorker] = TrackingWorker
) -> bool:
    """Work the app's queue until stopped, with the app context pushed throughout.

    RQ's worker quits when it loses Redis in the middle of a job; this starts a
    new one once Redis answers again (the job it ran is resolved by the reaper),
    so a Redis restart needs no one to restart the workers.
    """
    with app.app_context():
        while True:
            queue = get_queue()
            worker = worker_class(
                [queue],
                connection=queue.connection,
                serializer=JSONSerializer,
                death_seconds=current_app.config["WORKER_DEATH_SECONDS"],
                cancel_grace=current_app.config["CANCEL_GRACE_SECONDS"],
            )
            try:
                worked = worker.work(burst=burst, with_scheduler=True)
            except RedisError as exc:  # lost, or read-only: a failover's replica
                current_app.logger.warning("worker lost Redis (%s); starting again", exc)
            else:
                if burst or worker.stopping:
                    return worked
                current_app.logger.warning("worker quit by itself; starting again")
            time.sleep(RESTART_SECONDS)


class PoolWorker(TrackingWorker):
    """A :class:`TrackingWorker` for ``rq worker-pool``, which builds its workers
    itself (``-w myapp.worker.PoolWorker``): each builds the app in its own process,
    keeps its context for life, and works the app's queue with its serializer,
    whatever queue and serializer the pool passed."""

    def __init__(self, queues, *args, connection=None, serializer=None, **kwargs):
        from myapp import create_app  # the factory imports this module's neighbours

        self.app = create_app()
        self.app.app_context().push()
        queue = get_queue()
        super().__init__(
            [queue],
            *args,
            connection=queue.connection,
            serializer=JSONSerializer,
            death_seconds=current_app.config["WORKER_DEATH_SECONDS"],
            cancel_grace=current_app.config["CANCEL_GRACE_SECONDS"],
            **kwargs,
        )
