"""Job bodies for bare RQ (the ``rq`` worker kind): nothing of myapp is imported, so a
work horse pays only for RQ and the body."""

import time


def noop() -> None:
    """Nothing: what a job costs bare RQ by itself."""


def pause(seconds: float = 0.01) -> None:
    """A short job: 10 ms of sleep."""
    time.sleep(seconds)
