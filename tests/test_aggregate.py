"""A parent's aggregate is made again from the records alone when Redis lost it."""

import uuid

from myapp.connections import get_redis
from myapp.db import db
from myapp.job_json import utcnow
from myapp.keys import parent_key
from myapp.models import TrackedJob, User
from myapp.pipeline import aggregate


def test_submitting_a_sequence_records_each_stage_weight(app, client, accounts):
    alice = accounts.create()
    params = {"seed": 7, "stage_seconds": 0.0}
    response = client.post(
        "/api/jobs", json={"kind": "generate_profile", "params": params}, headers=alice.headers
    )
    assert response.status_code == 202, response.json
    with app.app_context():
        stages = db.session.scalars(
            db.select(TrackedJob)
            .filter_by(parent_id=response.json["id"])
            .order_by(TrackedJob.position)
        ).all()
        assert [(stage.name, stage.weight) for stage in stages] == [
            ("traits", 1),
            ("background", 2),
            ("summary", 1),
        ]


def test_a_lost_aggregate_is_rebuilt_with_each_piece_weight(app, accounts):
    accounts.create()
    with app.app_context():
        user = db.session.scalars(db.select(User).order_by(User.id.desc())).first()
        now = utcnow()
        parent = TrackedJob(
            id=str(uuid.uuid4()), user_id=user.id, kind="generate_profile", params={},
            status="started", created_at=now, updated_at=now, group_mode="sequence",
        )  # fmt: skip
        pieces = [("traits", 1, "finished", None), ("background", 2, "started", 50.0)]
        pieces.append(("summary", 1, "queued", None))
        children = [
            TrackedJob(
                id=str(uuid.uuid4()),
                user_id=user.id,
                kind=f"generate_profile.{name}",
                params={},
                status=status,
                created_at=now,
                updated_at=now,
                parent_id=parent.id,
                position=position,
                name=name,
                weight=weight,
                progress_percent=percent,
            )  # fmt: skip
            for position, (name, weight, status, percent) in enumerate(pieces)
        ]
        db.session.add_all([parent, *children])
        db.session.commit()
        redis = get_redis()
        redis.delete(parent_key(parent.id))  # Redis forgot it

        aggregate.rebuild(redis, parent)

        stored = {k.decode(): v.decode() for k, v in redis.hgetall(parent_key(parent.id)).items()}
        assert stored["weight"] == "4"
        # traits done (1000 x 1) and background half done (500 x 2): half the bar.
        assert stored["sum"] == "2000"
        assert (stored["n:finished"], stored["n:started"], stored["n:queued"]) == ("1", "1", "1")
        # The next change of a child folds into the rebuilt aggregate, weighted.
        summary = {"id": children[2].id, "status": "started", "progress": {"percent": 0.0}}
        folded = aggregate.fold(redis, {**summary, "parent": parent.id}, gap=0, db_interval=0)
        assert folded.percent == 50.0
        assert (folded.counts["finished"], folded.counts["started"]) == (1, 2)
