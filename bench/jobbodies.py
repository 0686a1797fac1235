"""Job bodies the job-overhead benchmark enqueues (``python worker.py`` imports them)."""

import time

from myapp import progress


def noop() -> None:
    """Nothing: what a tracked job costs by itself."""


def pause(seconds: float = 0.01) -> None:
    """A short job: 10 ms of sleep (beside bare RQ's :func:`bench.bare_bodies.pause`)."""
    time.sleep(seconds)


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


def updater(updates: int = 1000, seconds: float = 0.0) -> int:
    """``updates`` progress calls as fast as they come (or spread over ``seconds``)."""
    pause = seconds / updates
    for done in range(1, updates + 1):
        progress.update(done, updates)
        if pause:
            time.sleep(pause)
    return updates


def stamped(steps: int = 40, interval: float = 0.25) -> int:
    """Progress every ``interval`` s, each message the ``time.time()`` of its call:
    the page-latency benchmark reads it back from the page."""
    for done in range(1, steps + 1):
        time.sleep(interval)
        progress.update(done, steps, f"ts={time.time():.6f}")
    return steps


def counted(mode: str = "steps", steps: int = 10, seconds: float = 1.0) -> dict:
    """``seconds`` of work in ``steps``, with a ``progress.update`` at each step
    (``"steps"``), at none (``"none"``), or as often as it can (``"flood"``); returns
    the calls made and what this process sent to Redis meanwhile (see
    :mod:`bench.roundtrips`)."""
    from bench import roundtrips

    roundtrips.install()
    before = roundtrips.snapshot()
    calls = 0
    if mode == "flood":
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            calls += 1
            progress.update(calls, None, "flooding")
    else:
        for done in range(1, steps + 1):
            if mode == "steps":
                progress.update(done, steps, f"step {done} of {steps}")
                calls += 1
            time.sleep(seconds / steps)
    # The reporter's thread may still hold the latest update: it goes out within
    # 1 / PROGRESS_MAX_RATE s, counted like every other send.
    time.sleep(0.15)
    sent = roundtrips.snapshot() - before
    return {"calls": calls, "sent": dict(sent)}


def streamer(rate: float = 200.0, seconds: float = 10.0, size: int = 0) -> dict:
    """``rate`` tokens a second for ``seconds`` through ``progress.output``, each token
    ``t=<time.time() of its call>`` (the output benchmark reads it back on arrival),
    padded to ``size`` characters as a line when ``size`` is given; a late token goes
    at once, so a busy host writes the same tokens, later."""
    count = round(rate * seconds)
    pad = "x" * max(size - 21, 0) + "\n" if size else ""
    began, start = time.time(), time.monotonic()
    for k in range(count):
        wait = start + k / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        progress.output(f"t={time.time():.6f} {pad}")
    return {"tokens": count, "started": began, "ended": time.time()}
