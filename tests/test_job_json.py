from datetime import UTC, datetime, timedelta, timezone

from myapp import job_json


def test_percent_is_computed_and_clamped():
    assert job_json.progress_json(1, 3, "a")["percent"] == 33.3
    assert job_json.progress_json(0, 10, None)["percent"] == 0.0
    assert job_json.progress_json(12, 10, None)["percent"] == 100.0
    assert job_json.progress_json(-1, 10, None)["percent"] == 0.0


def test_unknown_total_is_indeterminate():
    progress = job_json.progress_json(5, None, "working")
    assert progress == {
        "done": 5, "total": None, "percent": None, "message": "working", "eta_seconds": None
    }  # fmt: skip
    assert job_json.progress_json(None, 0, None)["percent"] is None


def test_times_are_utc_with_microseconds():
    aware = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert job_json.iso(aware) == "2026-01-02T03:04:05.000000Z"
    naive = datetime(2026, 1, 2, 3, 4, 5, 123)
    assert job_json.iso(naive) == "2026-01-02T03:04:05.000123Z"
    assert job_json.parse_time(job_json.iso(naive)) == naive
    assert job_json.iso(None) is None


def test_utcnow_is_naive_utc():
    now = job_json.utcnow()
    assert now.tzinfo is None
    assert abs(now - datetime.now(UTC).replace(tzinfo=None)) < timedelta(seconds=5)


def test_finished_job_is_full():
    job = job_json.job_json(
        id="x", kind="process_run", status="finished", version=7, done=None, total=None,
        message=None, created_at=None, started_at=None, ended_at=None,
        updated_at="2026-01-02T03:04:05.000000Z", error=None, result={"steps": 1},
    )  # fmt: skip
    assert job["progress"]["percent"] == 100.0
    assert set(job) == {
        "id", "kind", "status", "version", "progress", "created_at", "started_at", "ended_at",
        "updated_at", "error", "result", "retry", "parent", "name",
    }  # fmt: skip


def test_a_parent_counts_waiting_children_as_queued_and_stopped_ones_as_canceled():
    statuses = ["queued", "scheduled", "deferred", "started", "finished", "stopped", "skipped"]
    assert job_json.counts(statuses) == {
        "total": 7, "queued": 3, "started": 1, "finished": 1,
        "failed": 0, "canceled": 1, "skipped": 1,
    }  # fmt: skip
