"""Job bodies the job-overhead benchmark enqueues (``python worker.py`` imports them)."""

import time

from myapp import progress


def noop() -> None:
    """Nothing: what a tracked job costs by itself."""


def sleeper(steps: int = 10, seconds: float = 1.0) -> int:
    """``seconds`` of work in ``steps``, reporting nothing."""
    for _ in range(steps):
        time.sleep(seconds / steps)
    return steps


def reporter(steps: int = 10, seconds: float = 1.0) -> int:
    """The same work, with a ``progress.update`` at each step."""
    for done in range(1, steps + 1):
        progress.update(done, steps, f"step {done} of {steps}")
        time.sleep(seconds / steps)
    return steps
