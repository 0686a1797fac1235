"""/metrics: who may read it, and its numbers moving as jobs run on real workers."""

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_until
from tests.jobs import start
from tests.sse_client import Stream, ended, snapshot_sent


def samples(text: str) -> dict[tuple, float]:
    """Every sample as ``(name, sorted labels) -> value``."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_for_admins_or_the_metrics_token(make_app, accounts):
    app = make_app(METRICS_TOKEN="scrape-me")
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    user, admin = accounts.create(), accounts.create(admin=True)
    forbidden = client.get("/metrics", headers=user.headers)
    assert forbidden.status_code == 403
    assert forbidden.json == {"error": "admins only"}
    for headers in (admin.headers, {"Authorization": "Bearer scrape-me"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        assert "myapp_queue_jobs" in response.get_data(as_text=True)


def test_without_a_metrics_token_only_admins_may_read(client, accounts):
    user = accounts.create()
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get("/metrics", headers=user.headers).status_code == 403


def counted(text: str, before: str) -> str | None:
    """``text`` once it counts a sent event more than ``before`` and an open stream."""
    more = value(text, "myapp_stream_lag_seconds_count") > value(
        before, "myapp_stream_lag_seconds_count"
    )
    return text if more and value(text, "myapp_open_streams") >= 1 else None


@pytest.fixture
def admin(accounts):
    return accounts.create(admin=True)


def test_the_numbers_move_as_jobs_run_and_streams_send(server, admin):
    def scrape() -> str:
        response = requests.get(f"{server}/metrics", headers=admin.headers, timeout=10)
        assert response.status_code == 200
        return response.text

    before = scrape()
    stream = Stream(f"{server}/stream", admin.headers)
    try:
        stream.wait_for(snapshot_sent, timeout=5)
        job = start(server, admin, steps=5, step_seconds=0.02)
        stream.wait_for(ended(stream, job["id"]), timeout=30)
        # The web process adds its stream figures every few seconds.
        after = wait_until(lambda: counted(scrape(), before), timeout=20)
    finally:
        stream.close()

    def grew(name, by=1.0, **labels):
        assert value(after, name, **labels) >= value(before, name, **labels) + by, name

    grew("myapp_jobs_enqueued_total", kind="process_run")
    grew("myapp_jobs_ended_total", kind="process_run", status="finished")
    grew("myapp_job_duration_seconds_count", kind="process_run")
    grew("myapp_events_published_total", by=3)  # queued, started, ..., finished
    grew("myapp_events_delivered_total", by=3)
    lag = value(after, "myapp_stream_lag_seconds_sum") - value(
        before, "myapp_stream_lag_seconds_sum"
    )
    assert 0 <= lag < 60
    assert value(after, "myapp_queue_jobs", queue="default", state="failed") >= 0
