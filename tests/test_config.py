"""Redis settings are checked at startup, with a message that says what to fix."""

from __future__ import annotations

import pytest

from myapp import create_app
from myapp.config import check_redis, parse_sentinels
from myapp.connections import BlockingSentinelPool, connect


def test_sentinels_are_read_as_host_and_port():
    assert parse_sentinels("10.0.0.1:26379, sentinel-b:26380,[::1]:5") == [
        ("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 5),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.1", "'10.0.0.1' is not host:port"),
        ("10.0.0.1:", "'10.0.0.1:' is not host:port"),
        (":26379", "':26379' is not host:port"),
        ("a:1,,b:2", "'' is not host:port"),
        ("a:port", "the port of 'a:port' is not a port"),
        ("a:70000", "the port of 'a:70000' is not a port"),
        ("a:0", "the port of 'a:0' is not a port"),
    ],
)
def test_bad_sentinels_are_refused_with_what_is_wrong(value, message):
    with pytest.raises(RuntimeError, match=f"REDIS_SENTINELS: {message}"):
        parse_sentinels(value)


@pytest.mark.parametrize(
    "config",
    [
        {"REDIS_SENTINELS": "a:1"},
        {"REDIS_SENTINEL_MASTER": "myapp"},
        {"REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_MASTER": ""},
    ],
)
def test_sentinels_and_their_master_name_go_together(config):
    with pytest.raises(RuntimeError, match="go together: set both"):
        check_redis({"REDIS_URL": None, **config})


def test_a_url_and_sentinels_at_once_are_refused():
    both = {"REDIS_URL": "redis://x/0", "REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_MASTER": "m"}
    with pytest.raises(RuntimeError, match="not both"):
        check_redis(both)
    with pytest.raises(RuntimeError, match="set REDIS_URL, or REDIS_SENTINELS"):
        check_redis({"REDIS_URL": "", "REDIS_SENTINELS": "", "REDIS_SENTINEL_MASTER": ""})


def test_the_app_refuses_to_start_with_a_bad_setting(service_env):
    config = {"TESTING": True, "SECRET_KEY": service_env["SECRET_KEY"],
              "DATABASE_URL": service_env["DATABASE_URL"], "REDIS_URL": None,
              "REDIS_SENTINELS": "sentinel-a:26379,sentinel-b"}  # fmt: skip
    with pytest.raises(RuntimeError, match="go together"):
        create_app(config)
    with pytest.raises(RuntimeError, match="'sentinel-b' is not host:port"):
        create_app({**config, "REDIS_SENTINEL_MASTER": "myapp"})


def test_with_sentinels_the_client_finds_the_primary_through_them():
    # Nothing listens: no connection is made until a command, so this is the client as built.
    redis = connect({"REDIS_SENTINELS": "127.0.0.1:1,127.0.0.1:2", "REDIS_SENTINEL_MASTER": "m",
                     "REDIS_MAX_CONNECTIONS": 3})  # fmt: skip
    pool = redis.connection_pool
    assert isinstance(pool, BlockingSentinelPool)
    assert (pool.service_name, pool.max_connections) == ("m", 3)
    assert [
        s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels
    ] == [1, 2]
