"""A worker that dies by ``kill -9`` at one chosen point of its first job's life.

    python -m tests.dying_worker taken|executing|started|ended

Its whole process group dies (the worker, its scheduler and its work horse, which
RQ puts in a session of its own), as when a host is lost. The points, in order:
``taken`` (moved from the queue to RQ's intermediate list), ``executing`` (its
execution registered, the horse not yet forked), ``started`` (RQ marked it
started, myapp has not recorded it), ``ended`` (RQ stored the end, myapp has not
recorded it).
"""

from __future__ import annotations

import os
import signal
import sys

from rq import Worker

from myapp import create_app, progress
from myapp.worker import TrackingWorker, run_worker

POINT = sys.argv[1] if __name__ == "__main__" else ""
GROUP = os.getpgid(0)


def die() -> None:
    os.killpg(GROUP, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)  # the horse, in its own group


class DyingWorker(TrackingWorker):
    def dequeue_job_and_maintain_ttl(self, *args, **kwargs):
        taken = super().dequeue_job_and_maintain_ttl(*args, **kwargs)
        if taken and POINT == "taken":
            die()
        return taken

    def prepare_execution(self, job):
        execution = super().prepare_execution(job)
        if POINT == "executing":
            die()
        return execution

    def prepare_job_execution(self, job, remove_from_intermediate_queue=False):
        if POINT == "started":
            Worker.prepare_job_execution(self, job, remove_from_intermediate_queue)
            die()
        super().prepare_job_execution(job, remove_from_intermediate_queue)

    def handle_job_success(self, job, queue, started_job_registry, execution):
        if POINT == "ended":
            progress.close(job)
            Worker.handle_job_success(self, job, queue, started_job_registry, execution)
            die()
        super().handle_job_success(job, queue, started_job_registry, execution)


if __name__ == "__main__":
    run_worker(create_app(), worker_class=DyingWorker)
