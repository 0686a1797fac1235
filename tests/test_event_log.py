"""The event log on a real Redis: ids, replay, trimming and the snapshot cut."""

import json
import uuid

import pytest
from redis import Redis

from myapp.keys import log_key, published_on, sent_key
from myapp.pipeline import event_log
from myapp.wire import parse_id


@pytest.fixture
def redis(redis_url):
    return Redis.from_url(redis_url)


@pytest.fixture
def channel():
    return f"myapp:user:test-{uuid.uuid4().hex[:8]}"


def job(job_id: str, status: str, done: int) -> dict:
    return {"data": {"id": job_id, "status": status, "progress": {"done": done}}, "type": "job"}


def test_ids_increase_and_replay_returns_what_followed(redis, channel):
    ids = [event_log.append(redis, channel, job("a", "started", n), 60).decode() for n in range(5)]
    keys = [parse_id(i) for i in ids]
    assert keys == sorted(keys) and len(set(keys)) == 5
    missed = event_log.replay(redis, channel, ids[1])
    assert [e.id for e in missed] == ids[2:]
    assert [e.job["progress"]["done"] for e in missed] == [2, 3, 4]
    assert event_log.replay(redis, channel, ids[-1]) == []


def test_replayed_events_use_flask_sse_format(redis, channel):
    start = event_log.append(redis, channel, {"data": "start"}, 60).decode()
    first = event_log.append(redis, channel, {"data": "hello", "type": "note"}, 60).decode()
    second = event_log.append(redis, channel, {"data": {"x": 1}}, 60).decode()
    (hello, data) = event_log.replay(redis, channel, start)
    assert hello.text == f"event:note\ndata:hello\nid:{first}\n\n".encode()
    assert data.text == f'data:{{"x": 1}}\nid:{second}\n\n'.encode()
    assert hello.job is None


def test_an_id_older_than_the_log_needs_a_snapshot(redis, channel):
    assert event_log.replay(redis, channel, "1-0") is None  # nothing kept at all
    event_log.append(redis, channel, job("a", "started", 1), 60)
    assert event_log.replay(redis, channel, "1-0") is None  # the log starts after it
    assert event_log.replay(redis, channel, "not-an-id") is None


def test_the_log_expires_after_its_retention(redis, channel):
    event_log.append(redis, channel, job("a", "started", 1), 0.2)
    assert 0 < redis.pttl(log_key(channel)) <= 200


def test_snapshot_cut_holds_active_jobs_as_of_the_newest_event(redis, channel):
    assert event_log.snapshot_cut(redis, channel) == ("0-0", {})
    event_log.append(redis, channel, job("a", "started", 1), 60)
    event_log.append(redis, channel, job("b", "started", 1), 60)
    last = event_log.append(redis, channel, job("a", "started", 2), 60).decode()
    cut, active = event_log.snapshot_cut(redis, channel)
    assert cut == last
    assert active["a"]["progress"]["done"] == 2 and set(active) == {"a", "b"}
    event_log.append(redis, channel, job("a", "finished", 2), 60)
    assert set(event_log.snapshot_cut(redis, channel)[1]) == {"b"}


def test_a_state_older_than_one_sent_is_neither_logged_nor_kept_active(redis, channel):
    def state(status, version):
        return {"data": {"id": "a", "status": status, "progress": {}, "version": version},
                "type": "job"}  # fmt: skip

    # Versions across epochs compare as numbers, not as strings ("9" > "10").
    first = event_log.append(redis, channel, state("started", 9), 60)
    event_log.append(redis, channel, state("finished", 30), 60)
    # Another process computed this before the end, and publishes it late.
    late = event_log.append(redis, channel, state("started", 10), 60)
    assert late is None
    assert [e.job["status"] for e in event_log.replay(redis, channel, first.decode())] == [
        "finished"
    ]
    assert event_log.snapshot_cut(redis, channel)[1] == {}  # not active again
    again = event_log.append(redis, channel, state("queued", 40), 60)
    assert again is not None  # a retry, newer: sent
    # What is remembered per job goes away by itself: nothing grows with a user's history.
    assert 0 < redis.ttl(sent_key(channel, "a")) <= 86400


def test_publish_reaches_subscribers_with_its_id(redis, channel):
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(published_on(redis, channel))
    try:
        pubsub.get_message(timeout=1)
        event_id = event_log.append(redis, channel, job("a", "queued", 0), 60)
        message = pubsub.get_message(timeout=2)
        published_id, _, payload = message["data"].partition(b" ")
        assert published_id == event_id
        assert json.loads(payload)["data"]["id"] == "a"
    finally:
        pubsub.close()


def test_the_published_name_holds_the_database_number_however_it_is_given():
    def name(url: str) -> str:
        return published_on(Redis.from_url(url), "myapp:user:1")

    assert name("unix:///run/redis.sock") == name("redis://127.0.0.1:6379/0") == "0/myapp:user:1"
    assert name("unix:///run/redis.sock?db=3") == name("redis://127.0.0.1:6379/3")


def test_after_a_gap_ids_from_before_it_get_a_snapshot(redis, channel):
    """A failover may lose the old primary's last entries: an id from before the
    subscription came back is not replayed (a hole would pass unseen), later ones are."""
    from myapp.keys import GAP

    before = [
        event_log.append(redis, channel, job("a", "started", n), 60).decode() for n in range(3)
    ]
    try:
        gap = event_log.mark_gap(redis, newest_ms=0)
        assert gap >= parse_id(before[-1])[0]
        assert event_log.replay(redis, channel, before[0]) is None
        assert event_log.replay(redis, channel, before[-1]) is None
        while (
            parse_id(
                after := event_log.append(redis, channel, job("a", "started", 3), 60).decode()
            )[0]
            <= gap
        ):
            pass  # the same millisecond as the gap: from before it, for all it can tell
        last = event_log.append(redis, channel, job("a", "finished", 4), 60).decode()
        assert [e.id for e in event_log.replay(redis, channel, after)] == [last]
        # The newest event seen counts when later than Redis's clock; a gap never moves back.
        assert event_log.mark_gap(redis, newest_ms=gap + 60_000) == gap + 60_000
        assert int(redis.get(GAP)) == gap + 60_000
        event_log.mark_gap(redis, newest_ms=0)
        assert int(redis.get(GAP)) == gap + 60_000
        assert event_log.replay(redis, channel, last) is None
    finally:
        redis.delete(GAP)
