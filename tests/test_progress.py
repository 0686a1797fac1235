"""Progress reporting: throttled to PROGRESS_MAX_RATE, never losing the latest value."""

from myapp import progress
from myapp.db import db
from myapp.job_json import parse_time
from myapp.models import TrackedJob
from tests.jobs import enqueue_test_job
from tests.sse_client import Stream, ended, snapshot_sent


def test_outside_a_job_update_does_nothing(app):
    with app.app_context():
        assert progress.update(1, 2, "ignored") is None


def watch(app, server, account, func, **kwargs):
    stream = Stream(f"{server}/stream", account.headers)
    try:
        stream.wait_for(snapshot_sent, timeout=5)
        job_id = enqueue_test_job(app, account, func, **kwargs)
        stream.wait_for(ended(stream, job_id), timeout=60)
        return job_id, stream.job_events(job_id)
    finally:
        stream.close()


def test_a_hundred_thousand_updates_are_coalesced(app, server, accounts):
    job_id, events = watch(
        app, server, accounts.create(), "tests.job_bodies.many_updates", count=100_000, seconds=2
    )
    last = events[-1]
    assert last["status"] == "finished" and last["progress"]["done"] == 100_000
    seconds = (parse_time(last["ended_at"]) - parse_time(last["started_at"])).total_seconds()
    progress_events = [e for e in events if e["progress"]["done"]]
    # At most 10 a second (the test server's PROGRESS_MAX_RATE), plus the first.
    assert seconds >= 2
    # At most 10 a second (PROGRESS_MAX_RATE): no two progress events closer than
    # 0.1 s (less a little timer jitter), the finished event aside.
    times = [parse_time(e["updated_at"]) for e in progress_events if e["status"] == "started"]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.095, gaps
    assert len(progress_events) <= 10 * seconds + 5
    done = [e["progress"]["done"] for e in progress_events]
    assert done == sorted(done)
    with app.app_context():
        assert db.session.get(TrackedJob, job_id).progress_done == 100_000


def test_the_latest_update_is_sent_even_when_the_job_goes_quiet(app, server, accounts):
    _, events = watch(
        app, server, accounts.create(), "tests.job_bodies.report_then_pause", seconds=1
    )
    messages = [e["progress"]["message"] for e in events if e["progress"]["message"]]
    # "two" came within the throttle interval after "one": it went out when it ended.
    assert messages == ["one", "two", "three", "three"]  # the last with the finished event


def test_an_update_is_one_round_trip_to_redis(app, server, accounts):
    """Saving the meta, publishing and asking whether the job was canceled share
    one pipelined round trip, sent by the reporter's thread."""
    _, events = watch(
        app, server, accounts.create(), "bench.jobbodies.counted", steps=10, seconds=1.0
    )
    result = events[-1]["result"]
    assert result["calls"] == 10
    sent = result["sent"]
    # Ten sends, and the first update's own check for a cancel request.
    assert sent["round trips"] <= 11, sent
    assert sent["EXISTS"] == sent["round trips"], sent
