"""The worker side: RQ's worker with job tracking, and the chores it runs.

:mod:`myapp.worker.tracking` holds the worker classes (``python worker.py`` runs
:func:`run_worker`; ``rq worker-pool -w myapp.worker.PoolWorker`` builds
:class:`PoolWorker`), :mod:`myapp.worker.reaper` resolves jobs whose worker died,
and :mod:`myapp.worker.retention` deletes old records. Nothing here imports
gunicorn, gevent or the web side.
"""

from myapp.worker.tracking import PoolWorker, TrackingWorker, describe_error, run_worker

__all__ = ["PoolWorker", "TrackingWorker", "describe_error", "run_worker"]
