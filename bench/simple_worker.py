"""myapp's TrackingWorker on RQ's SimpleWorker model: ``python -m bench.simple_worker``.

Each job runs in the worker's own process (no fork), as RQ's ``SimpleWorker``
runs it, with everything else of ``python worker.py`` (the lifecycle events and
rows, the cancel checks, the reaper): the worker benchmark compares the two.
"""

from rq import SimpleWorker

from myapp import create_app
from myapp.worker import TrackingWorker, run_worker


class SimpleTrackingWorker(TrackingWorker):
    def execute_job(self, job, queue):
        SimpleWorker.execute_job(self, job, queue)


def main() -> None:
    run_worker(create_app(), worker_class=SimpleTrackingWorker)


if __name__ == "__main__":
    main()
