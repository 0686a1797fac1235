"""The ordering rule on a real Redis: versions only grow, whoever takes them, even
when Redis forgot the counter."""

import uuid

import pytest
from redis import Redis

from myapp.keys import version_key
from myapp.ordering import EPOCH, FIRST, is_older, new_version, next_version, version_of


@pytest.fixture
def redis(redis_url):
    return Redis.from_url(redis_url)


@pytest.fixture
def job_id():
    return f"test-{uuid.uuid4().hex[:8]}"


def test_each_change_takes_a_newer_epoch(redis, job_id):
    versions = [new_version(redis, job_id, after=FIRST) for _ in range(5)]
    assert versions == sorted(set(versions))
    assert all(v % EPOCH == 0 and v > FIRST for v in versions)


def test_progress_counts_up_within_its_epoch_and_below_the_next_change(redis, job_id):
    started = new_version(redis, job_id, after=FIRST)
    reports = [started]
    for _ in range(1000):
        reports.append(next_version(reports[-1]))
    assert reports == sorted(set(reports))
    assert all(v // EPOCH == started // EPOCH for v in reports)
    canceled = new_version(redis, job_id, after=FIRST)  # the web, unaware of the reports
    assert canceled > reports[-1]


def test_a_lost_counter_still_gives_a_version_above_what_the_caller_knows(redis, job_id):
    for _ in range(3):
        newest = new_version(redis, job_id, after=FIRST)
    known = next_version(next_version(newest))  # progress reported after it
    redis.delete(version_key(job_id))  # Redis restarted empty, or failed over
    after_loss = new_version(redis, job_id, after=known)
    assert after_loss > known
    assert new_version(redis, job_id, after=FIRST) > after_loss  # the counter took the floor


def test_the_counter_expires_but_not_soon(redis, job_id):
    new_version(redis, job_id, after=FIRST)
    assert redis.ttl(version_key(job_id)) > 86400


def test_older_compares_versions_and_an_equal_state_is_not_older():
    old, new = {"version": FIRST}, {"version": FIRST + 1}
    assert is_older(old, than=new)
    assert not is_older(new, than=old)
    assert not is_older(new, than=dict(new))
    assert is_older(old, than=FIRST + 1)
    assert version_of({}) == 0  # a state from before versions: older than any
    assert is_older({}, than=old)
