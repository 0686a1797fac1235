"""myapp's TrackingWorker on RQ's SimpleWorker model: ``python -m bench.simple_worker``.

Each job runs in the worker's own process (no fork), as RQ's ``SimpleWorker``
runs it, with everything else of ``python worker.py`` (the lifecycle events and
rows, the cancel checks, the reaper): the worker benchmark compares the two.
"""

from rq import SimpleWorker
from rq.serializers import JSONSerializer

from myapp import create_app
from myapp.connections import get_queue
from myapp.worker import TrackingWorker


class SimpleTrackingWorker(TrackingWorker):
    def execute_job(self, job, queue):
        SimpleWorker.execute_job(self, job, queue)


def main() -> None:
    app = create_app()
    with app.app_context():
        queue = get_queue()
        worker = SimpleTrackingWorker(
            [queue],
            connection=queue.connection,
            serializer=JSONSerializer,
            death_seconds=app.config["WORKER_DEATH_SECONDS"],
            cancel_grace=app.config["CANCEL_GRACE_SECONDS"],
        )
        worker.work(with_scheduler=True)


if __name__ == "__main__":
    main()
