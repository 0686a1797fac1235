"""The worker's side of the lifecycle: what RQ, the database and the stream say."""

import os
import threading
import time

from rq.job import Job

from myapp.connections import get_queue
from myapp.db import db
from myapp.models import TrackedJob
from myapp.pipeline import lifecycle
from myapp.worker import TrackingWorker
from tests.conftest import wait_until
from tests.jobs import enqueue_test_job, start
from tests.relay import Relay
from tests.sse_client import Stream, ended, snapshot_sent


def test_progress_is_kept_in_the_rq_job_meta(app, server, alice):
    stream = Stream(f"{server}/stream", alice.headers)
    try:
        job = start(server, alice, steps=5, step_seconds=0)
        stream.wait_for(ended(stream, job["id"]))
    finally:
        stream.close()
    with app.app_context():
        rq_job = Job.fetch(
            job["id"], connection=get_queue().connection, serializer=get_queue().serializer
        )
        saved = rq_job.meta["progress"]
        assert (saved["done"], saved["total"], saved["message"]) == (5, 5, "step 5 of 5")
        assert rq_job.meta["user_id"] and rq_job.meta["kind"] == "process_run"


def test_a_failing_job_ends_failed_with_its_error(app, server, worker, alice):
    stream = Stream(f"{server}/stream", alice.headers)
    try:
        stream.wait_for(snapshot_sent, timeout=5)
        job_id = enqueue_test_job(app, alice, "tests.job_bodies.boom", rows=10)
        stream.wait_for(ended(stream, job_id))
        events = stream.job_events(job_id)
    finally:
        stream.close()
    assert [e["status"] for e in events] == ["started", "started", "failed"]
    assert events[1]["progress"]["percent"] == 50.0
    assert events[-1]["error"] == "ValueError: row 5 is broken"
    with app.app_context():
        row = db.session.get(TrackedJob, job_id)
        assert row.to_dict() == events[-1]


def test_unknown_total_is_indeterminate_until_finished(app, server, worker, alice):
    stream = Stream(f"{server}/stream", alice.headers)
    try:
        stream.wait_for(snapshot_sent, timeout=5)
        job_id = enqueue_test_job(app, alice, "tests.job_bodies.unknown_total", steps=3)
        stream.wait_for(ended(stream, job_id))
        events = stream.job_events(job_id)
    finally:
        stream.close()
    running = [e for e in events if e["status"] == "started" and e["progress"]["done"] is not None]
    assert running and all(e["progress"]["percent"] is None for e in running)
    assert events[-1]["status"] == "finished"
    assert events[-1]["progress"]["percent"] == 100.0
    assert events[-1]["result"] == 3


def test_lifecycle_changes_are_logged_one_line_each_as_json(make_app, alice):
    import json
    import logging

    from myapp.logs import JSONFormatter

    app = make_app()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("myapp.jobs")
    logger.addHandler(handler)
    try:
        body = {"kind": "process_run", "params": {"steps": 1, "step_seconds": 0}}
        job = app.test_client().post("/api/jobs", json=body, headers=alice.headers).json
    finally:
        logger.removeHandler(handler)
    (record,) = [r for r in records if getattr(r, "job_id", None) == job["id"]]
    line = json.loads(JSONFormatter().format(record))
    assert (line["job_id"], line["kind"], line["status"]) == (job["id"], "process_run", "queued")
    assert isinstance(line["user_id"], int)
    assert alice.token not in json.dumps(line)


def test_our_own_errors_read_as_their_message_and_others_keep_their_type():
    from myapp.worker import describe_error

    ours = (
        "Traceback (most recent call last):\n  ...\nmyapp.jobs.publish_album.Rejected: refused 'x'"
    )
    assert describe_error(ours, 600) == "refused 'x'"
    theirs = "Traceback (most recent call last):\n  ...\nValueError: boom"
    assert describe_error(theirs, 600) == "ValueError: boom"
    timeout = "Traceback...\nrq.timeouts.JobTimeoutException: Task exceeded maximum timeout value"
    assert describe_error(timeout, 600) == "timed out after 600 s"


def test_a_stopping_worker_never_waits_for_its_command_listener(app):
    # The listener's stop raced the reply that wakes it, and then waited a minute:
    # 1 in about 15 stops on a busy machine.
    with app.app_context():
        queue = get_queue()
        for _ in range(100):
            worker = TrackingWorker(
                [queue], connection=queue.connection, death_seconds=10, cancel_grace=1
            )
            worker.subscribe()
            began = time.monotonic()
            worker.unsubscribe()
            assert time.monotonic() - began < 5
            assert not worker.pubsub_thread.is_alive()


def test_no_work_horse_is_forked_while_a_delayed_flush_runs(make_app, redis_url):
    # A batch's held-back event is sent by a timer thread of the worker. A horse forked
    # while that thread held a lock (the database pool's) waited on it forever.
    with Relay.to(redis_url, pause=0.3) as relay:  # each reply after the first: 0.3 s
        app = make_app(REDIS_URL=relay.url(redis_url))
        flush = threading.Thread(target=lifecycle._flush_later, args=(app, 1, "a-parent"))
        flush.start()
        wait_until(lifecycle._not_forking.locked, 5)  # the flush is under way
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        flush.join(timeout=0.05)
        assert not flush.is_alive(), "the fork did not wait for the flush"
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
