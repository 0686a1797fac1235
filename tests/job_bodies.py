"""Job bodies that only the tests enqueue (the worker imports them from here)."""

from myapp import progress


def boom(rows: int) -> None:
    progress.update(rows // 2, rows, "half way")
    raise ValueError(f"row {rows // 2} is broken")


def unknown_total(steps: int) -> int:
    for step in range(steps):
        progress.update(step, None, "counting")
    return steps


def many_updates(count: int, seconds: float) -> int:
    """``count`` updates spread over about ``seconds``."""
    import time

    for done in range(1, count + 1):
        progress.update(done, count, f"{done} of {count}")
        if done % 1000 == 0:
            time.sleep(seconds * 1000 / count)
    return count


def report_then_pause(seconds: float) -> None:
    import time

    progress.update(1, 3, "one")
    progress.update(2, 3, "two")  # within the throttle interval: sent late, not lost
    time.sleep(seconds)
    progress.update(3, 3, "three")


def flaky(failures: int, key: str) -> str:
    """Fails its first ``failures`` runs (counted in Redis under ``key``)."""
    from rq import get_current_job

    runs = get_current_job().connection.incr(key)
    progress.update(runs, failures + 1, f"run {runs}")
    if runs <= failures:
        raise ConnectionError(f"third party down (run {runs})")
    return f"succeeded on run {runs}"


def silent(seconds: float) -> None:
    """Works without reporting: only RQ's stop command can end it early."""
    import time

    time.sleep(seconds)


def tokens(count: int, seconds: float) -> int:
    """``count`` tokens, one ``progress.output`` call each, over about ``seconds``."""
    import time

    for n in range(count):
        progress.output(f"tok{n} ")
        time.sleep(seconds / count)
    return count


def hostile_output(megabytes: int) -> str:
    """Text that could break a stream's framing or a database, then far too much of it."""
    for text in ("a\rb", "c\nd", "\r\n", "e\x00f", "g\ud800h", "data: x\n\nevent: job\nid: 1\n\n"):
        progress.output(text)
    progress.output("é" * (megabytes * 1024 * 1024 // 2))  # 2 bytes each in UTF-8
    progress.update(1, 1, "still running")
    return "done"
