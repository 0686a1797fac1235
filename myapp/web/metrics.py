"""Prometheus metrics at ``/metrics``, counted in Redis.

Every web process and every worker adds to the same counters in one Redis hash,
so whichever process Prometheus scrapes, it reads the whole deployment's numbers.
Workers count a job's ends as their events go out (:mod:`myapp.pipeline.counters`);
each web process keeps its stream figures in memory and adds them to Redis every
:data:`FLUSH_SECONDS` (:class:`WebFigures`), with its open streams as a gauge that
expires with the process. Who may read it: admins, or a request carrying
``Authorization: Bearer $METRICS_TOKEN`` when that token is configured.
"""

from __future__ import annotations

import bisect
import hmac
import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, current_app, request
from flask_login import current_user
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from myapp.connections import get_queue
from myapp.keys import COUNTERS, WEB_FIGURES
from myapp.pipeline.counters import DURATION_BUCKETS

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

bp = Blueprint("metrics", __name__)


class WebFigures:
    """One web process's stream figures, added to Redis every few seconds."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.lag = Counter()
        self.lag_sum = 0.0
        self.reported = {"delivered": 0, "dropped": 0}
        self._pid: int | None = None

    def sent(self, now: float, published_ms: list[int], streams: int = 1) -> None:
        """Count events sent at ``now`` to this many streams, published at these times."""
        for ms in published_ms:
            lag = max(now - ms / 1000, 0.0)
            self.lag[bisect.bisect_left(LAG_BUCKETS, lag)] += streams
            self.lag_sum += lag * streams

    def start(self, hub) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        thread = threading.Thread(target=self._run, args=(hub,), name="myapp-metrics")
        thread.daemon = True
        thread.start()

    def _run(self, hub) -> None:
        stop = threading.Event()
        while not stop.wait(FLUSH_SECONDS):
            try:
                self.flush(hub)
            except RedisError as exc:
                log.warning("could not report stream metrics: %s", exc)

    def flush(self, hub) -> None:
        lag, self.lag = self.lag, Counter()
        lag_sum, self.lag_sum = self.lag_sum, 0.0
        with self.redis.pipeline(transaction=False) as pipe:
            for name in ("delivered", "dropped"):
                now = getattr(hub, name)
                pipe.hincrby(COUNTERS, f"events_{name}", now - self.reported[name])
                self.reported[name] = now
            for bucket, count in lag.items():
                pipe.hincrby(COUNTERS, f"lag|{bucket}", count)
            pipe.hincrbyfloat(COUNTERS, "lag_sum", lag_sum)
            pipe.hset(WEB_FIGURES + self.name, "open_streams", hub.open_streams)
            pipe.expire(WEB_FIGURES + self.name, int(FLUSH_SECONDS * 3))
            pipe.execute()


# -- reading -------------------------------------------------------------------------


class RedisCollector(Collector):
    """Turns the Redis counters and the queue's registries into Prometheus metrics."""

    def __init__(self, redis: Redis):
        self.redis = redis

    def collect(self) -> Iterator[Any]:
        raw = {k.decode(): v.decode() for k, v in self.redis.hgetall(COUNTERS).items()}
        enqueued = CounterMetricFamily(
            "myapp_jobs_enqueued", "Jobs put on the queue, by kind.", labels=["kind"]
        )
        ended = CounterMetricFamily(
            "myapp_jobs_ended", "Jobs that ended, by kind and status.", labels=["kind", "status"]
        )
        durations: dict[str, list[int]] = {}
        lag = [0] * (len(LAG_BUCKETS) + 1)
        for field, value in raw.items():
            name, *labels = field.split("|")
            if name == "enqueued":
                enqueued.add_metric(labels, float(value))
            elif name == "ended":
                ended.add_metric(labels, float(value))
            elif name == "duration":
                counts = durations.setdefault(labels[0], [0] * (len(DURATION_BUCKETS) + 1))
                counts[int(labels[1])] += int(value)
            elif name == "lag":
                lag[int(labels[0])] += int(value)
        yield enqueued
        yield ended
        duration = HistogramMetricFamily(
            "myapp_job_duration_seconds", "How long jobs ran, by kind.", labels=["kind"]
        )
        for kind, counts in durations.items():
            total = float(raw.get(f"duration_sum|{kind}", 0))
            duration.add_metric([kind], _cumulative(DURATION_BUCKETS, counts), total)
        yield duration
        yield HistogramMetricFamily(
            "myapp_stream_lag_seconds",
            "From an event's publication to its sending on a stream.",
            buckets=_cumulative(LAG_BUCKETS, lag),
            sum_value=float(raw.get("lag_sum", 0)),
        )
        for name, help_text in (
            ("published", "Events published on users' streams."),
            ("delivered", "Events handed to open streams."),
            ("dropped", "Streams dropped because their client fell behind."),
        ):
            yield CounterMetricFamily(
                f"myapp_events_{name}", help_text, value=float(raw.get(f"events_{name}", 0))
            )
        yield GaugeMetricFamily(
            "myapp_open_streams", "Open SSE streams, over all web processes.", value=self._streams()
        )
        yield self._queue()

    def _streams(self) -> float:
        keys = list(self.redis.scan_iter(f"{WEB_FIGURES}*"))
        if not keys:
            return 0.0
        with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, "open_streams")
            return float(sum(int(value or 0) for value in pipe.execute()))

    def _queue(self) -> GaugeMetricFamily:
        queue = get_queue()
        depth = GaugeMetricFamily(
            "myapp_queue_jobs", "Jobs in the RQ queue, by state.", labels=["queue", "state"]
        )
        registries = {
            "queued": queue.count,
            "started": queue.started_job_registry.count,
            "scheduled": queue.scheduled_job_registry.count,
            "deferred": queue.deferred_job_registry.count,
            "failed": queue.failed_job_registry.count,
        }
        for name, count in registries.items():
            depth.add_metric([queue.name, name], float(count))
        return depth


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    running, buckets = 0, []
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else str(bound), float(running)))
    return buckets


@bp.get("/metrics")
def metrics():
    token = current_app.config["METRICS_TOKEN"]
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ")
    by_token = bool(token) and hmac.compare_digest(offered.encode(), token.encode())
    if not by_token:
        if not current_user.is_authenticated:
            abort(401, description="authentication required")
        if not current_user.is_admin:
            abort(403, description="admins only")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(get_queue().connection))
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")
