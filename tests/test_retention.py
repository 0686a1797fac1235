"""How long myapp keeps things (:mod:`myapp.worker.retention`): RQ's copy of an ended job
for ``JOB_REDIS_TTL_SECONDS``, ended records for ``JOB_RETENTION_DAYS``."""

import time
import uuid
from datetime import timedelta

from redis import Redis
from rq.job import Job
from rq.results import Result

from myapp import job_json
from myapp.connections import get_queue
from myapp.db import db
from myapp.jobs import uploads
from myapp.models import Contact, TrackedJob, Upload
from myapp.worker import retention
from tests.conftest import wait_until
from tests.jobs import PROCESS, enqueue_test_job
from tests.records import id_of

DAY = 86400


def test_a_canceled_queued_job_leaves_redis_within_the_ttl(make_app, alice):
    app = make_app(RQ_QUEUE=f"idle-{uuid.uuid4().hex[:8]}", JOB_REDIS_TTL_SECONDS=2)
    client = app.test_client()
    job_id = client.post("/api/jobs", json=PROCESS, headers=alice.headers).json["id"]
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers).status_code == 202
    redis = Redis.from_url(app.config["REDIS_URL"])
    with app.app_context():
        canceled = get_queue().canceled_job_registry
        assert job_id in canceled.get_job_ids()  # RQ's own cancel, as before
        assert 0 < redis.ttl(Job.key_for(job_id)) <= 2
        time.sleep(2.1)
        assert not redis.exists(Job.key_for(job_id))
        retention.purge(get_queue(), force=True)
        assert job_id not in canceled.get_job_ids()
        # The database keeps the record.
        assert db.session.get(TrackedJob, job_id).status == "canceled"


def test_a_failed_jobs_keys_expire_within_a_day(app, server, worker, alice):
    job_id = enqueue_test_job(app, alice, "tests.job_bodies.boom", rows=10)
    redis = Redis.from_url(app.config["REDIS_URL"])

    def failed():
        with app.app_context():
            row = db.session.get(TrackedJob, job_id)
            db.session.rollback()
            return row.status == "failed"

    wait_until(failed)
    with app.app_context():
        for key in (Job.key_for(job_id), Result.get_key(job_id)):
            assert 0 < redis.ttl(key) <= DAY, key
        score = redis.zscore(get_queue().failed_job_registry.key, job_id)
        assert score is not None and score <= time.time() + DAY


def add_job(user_id: int, status: str, age_days: float, ended: bool) -> str:
    when = job_json.utcnow() - timedelta(days=age_days)
    job_id = str(uuid.uuid4())
    db.session.add(
        TrackedJob(id=job_id, user_id=user_id, kind="import_contacts", params={},
                   status=status, created_at=when, updated_at=when,
                   ended_at=when if ended else None)
    )  # fmt: skip
    upload = uploads.new(user_id, job_id, uploads.pack([{"name": "A", "email": "a@b.io"}]))
    db.session.get(TrackedJob, job_id).params = {"upload": upload.id}
    db.session.add(Contact(user_id=user_id, job_id=job_id, row_number=1, name="A", email="a@b.io"))
    db.session.commit()
    return job_id


def test_retention_deletes_old_ended_records_with_their_uploads_only(make_app, alice):
    app = make_app(JOB_RETENTION_DAYS=30)
    with app.app_context():
        user_id = id_of(alice)
        old_ended = add_job(user_id, "finished", 31, ended=True)
        old_active = add_job(user_id, "queued", 31, ended=False)
        recent_ended = add_job(user_id, "failed", 29, ended=True)
        deleted = retention.purge(get_queue(), force=True)
        assert old_ended in deleted
        assert db.session.get(TrackedJob, old_ended) is None
        kept = [db.session.get(TrackedJob, job_id) for job_id in (old_active, recent_ended)]
        assert all(row is not None for row in kept)

        def uploads_of(job_id):
            return db.session.scalar(
                db.select(db.func.count(Upload.id)).where(Upload.job_id == job_id)
            )

        assert [uploads_of(j) for j in (old_ended, old_active, recent_ended)] == [0, 1, 1]
        # The contacts it made are the user's, and stay.
        contacts = db.session.scalar(
            db.select(db.func.count(Contact.id)).where(Contact.job_id == old_ended)
        )
        assert contacts == 1
