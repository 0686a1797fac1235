"""A web server and workers of a test's own, on a queue of its own (and, if the test
likes, a Redis of its own), so that the faults it makes stay inside the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field

import libfaketime
import requests
from redis import Redis
from rq import Worker

from tests.conftest import ROOT, free_port, wait_until, web_command


def skewed(seconds: int) -> dict[str, str]:
    """The environment that runs a process ``seconds`` off the true clock, under
    libfaketime, for :meth:`Rig.start_worker`."""
    _, env = libfaketime.get_reload_information()
    return {**env, "FAKETIME": f"{seconds:+d}"}


@dataclass
class Rig:
    """A web server and workers of their own, on their own queue."""

    env: dict[str, str]
    base: str = ""
    web: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def redis(self) -> Redis:
        return Redis.from_url(self.env["REDIS_URL"])

    def start_web(self) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.web = subprocess.Popen(web_command(port), cwd=ROOT, env=self.env)
        wait_until(lambda: requests.get(f"{self.base}/healthz", timeout=1).ok, 30)

    def start_worker(self, **env: str) -> subprocess.Popen:
        """A worker, with ``env`` added to the rig's (a skewed clock, say)."""
        # A session of its own: killing its process group kills the worker and its
        # scheduler, as losing the host would (the work horse dies with the worker).
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env={**self.env, **env},
            start_new_session=True,
        )  # fmt: skip
        self.workers.append(worker)
        return worker

    def live_workers(self) -> list[Worker]:
        try:
            found = Worker.all(connection=self.redis)
        except Exception:  # Redis is down: none that we can see
            return []
        return [w for w in found if self.env["RQ_QUEUE"] in w.queue_names()]

    def kill(self, worker: Worker) -> None:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended by itself meanwhile

    def stop(self) -> None:
        for process in [*self.workers, self.web]:
            if process is not None and process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    process.kill()
            if process is not None:
                process.wait(timeout=30)
