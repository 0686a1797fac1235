"""A stream client that reconnects as a browser's EventSource does: with the id of
the last event it got as ``Last-Event-ID``, every time the server ends the stream."""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from myapp.ordering import is_older
from tests.sse_client import Event, Stream

#: Seconds between a stream's end and the next try (browsers wait ``retry:``).
RECONNECT_SECONDS = 0.2


class ResumingStream:
    def __init__(self, url: str, headers: dict[str, str]):
        self.url = url
        self.headers = headers
        self.events: list[Event] = []
        #: How many times a stream was opened (the first included).
        self.opened = 0
        self.last_id: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            resume = {"Last-Event-ID": self.last_id} if self.last_id else {}
            try:
                stream = Stream(self.url, {**self.headers, **resume})
            except requests.RequestException:
                time.sleep(RECONNECT_SECONDS)
                continue
            if stream.response.status_code == 200:
                self.opened += 1
                taken = 0
                while stream._thread.is_alive() and not self._stop.is_set():
                    taken = self._take(stream, taken)
                    time.sleep(0.02)
                self._take(stream, taken)
            stream.close()
            time.sleep(RECONNECT_SECONDS)

    def _take(self, stream: Stream, taken: int) -> int:
        for event in stream.events[taken:]:
            self.events.append(event)
            if event.id:
                self.last_id = event.id
        return len(stream.events)

    def snapshots(self) -> list[Event]:
        return [event for event in self.events if event.type == "snapshot"]

    def latest(self) -> dict[str, dict[str, Any]]:
        """Each job's newest state the client was told, by job events or snapshots."""
        jobs: dict[str, dict[str, Any]] = {}
        for event in list(self.events):
            states = [event.json()] if event.type == "job" else []
            if event.type == "snapshot":
                states = event.json()["jobs"]
            for job in states:
                old = jobs.get(job["id"])
                if old is None or not is_older(job, than=old):
                    jobs[job["id"]] = job
        return jobs

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
