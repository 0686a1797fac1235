"""One subscriber per web process: Redis clients stay flat, slow clients are dropped."""

import socket
import time
import uuid
from urllib.parse import urlparse

import pytest
from redis import Redis

from myapp.connections import FAILOVER_ERRORS, UntilDeadline
from myapp.keys import COUNTERS, GAP, channel_for, log_key, published_on
from myapp.pipeline import event_log
from myapp.web.hub import Hub
from myapp.web.subscriber import CLOSE
from myapp.wire import parse_id
from tests.conftest import wait_until
from tests.records import user_id
from tests.slow_link import slow_link
from tests.sse_client import Stream, snapshot_sent


def holding(redis: Redis, channels: list[str]) -> int:
    """How many connections of the tests' Redis database are subscribed to at least
    as many channels as ``channels`` holds (RQ workers hold one each)."""
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    return sum(
        1 for c in redis.client_list() if int(c["sub"]) >= len(channels) and int(c["db"]) == db
    )


def subscribed(redis: Redis, channel: str) -> int:
    """How many connections Redis sends the channel's events to."""
    ((_, count),) = redis.pubsub_numsub(published_on(redis, channel))
    return count


def test_two_hundred_streams_share_one_subscription(app, server, redis_url, accounts):
    redis = Redis.from_url(redis_url)
    users = [accounts.create() for _ in range(25)]  # 8 streams each: the test cap
    streams = [Stream(f"{server}/stream", users[i % 25].headers) for i in range(200)]
    try:
        for stream in streams:
            stream.wait_for(snapshot_sent, timeout=20)
        channels = [channel_for(user_id(app, user)) for user in users]
        assert [subscribed(redis, channel) for channel in channels] == [1] * 25
        assert holding(redis, channels) == 1  # one web process, one connection
    finally:
        for stream in streams:
            stream.close()


def test_a_process_is_sent_only_the_channels_of_its_open_streams(redis_url):
    redis = Redis.from_url(redis_url)
    hub = Hub(Redis.from_url(redis_url), queue_size=10)
    mine, other = (channel_for(f"{name}-{uuid.uuid4().hex[:8]}") for name in ("mine", "other"))
    try:
        first = hub.subscribe(mine, sock=None)
        second = hub.subscribe(mine, sock=None)  # the same channel: one subscription
        assert (subscribed(redis, mine), subscribed(redis, other)) == (1, 0)
        event_log.append(redis, other, {"data": "not sent here"}, 60)
        sent = event_log.append(redis, mine, {"data": "here"}, 60).decode()
        assert first.queue.get(timeout=10).id == second.queue.get(timeout=10).id == sent
        hub.unsubscribe(first)
        hub.unsubscribe(second)
        event_log.append(redis, mine, {"data": "nobody's"}, 60)  # the hub reads, and lets go
        wait_until(lambda: subscribed(redis, mine) == 0, 5)
        again = hub.subscribe(mine, sock=None)  # subscribed anew when a stream needs it
        later = event_log.append(redis, mine, {"data": "again"}, 60).decode()
        assert again.queue.get(timeout=10).id == later
        assert again.queue.empty()
    finally:
        hub.close()


def test_streams_that_come_and_go_at_once_miss_no_event(redis_url):
    """Opened while the hub lets its channel go, or just after: once ``subscribe``
    returns, the stream gets every event."""
    redis = Redis.from_url(redis_url)
    hub = Hub(Redis.from_url(redis_url), queue_size=10)
    channel = channel_for(f"churn-{uuid.uuid4().hex[:8]}")
    try:
        for n in range(60):
            subscriber = hub.subscribe(channel, sock=None)
            sent = event_log.append(redis, channel, {"data": f"{n}"}, 60).decode()
            # It may get an event from just before as well (a stream skips those by id).
            received = [subscriber.queue.get(timeout=10).id]
            if received[-1] != sent:
                received.append(subscriber.queue.get(timeout=10).id)
            assert received[-1] == sent, (n, received)
            hub.unsubscribe(subscriber)
            if n % 3:  # the hub reads this with no stream open: it lets the channel go
                event_log.append(redis, channel, {"data": "between"}, 60)
    finally:
        hub.close()


def test_a_client_that_stops_reading_is_dropped_and_others_keep_receiving(
    app, server, redis_url, accounts
):
    alice = accounts.create()
    redis = Redis.from_url(redis_url)
    channel = channel_for(user_id(app, alice))
    host, port = urlparse(server).hostname, urlparse(server).port
    stalled = socket.create_connection((host, port))
    request = f"GET /stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {alice.token}\r\n\r\n"
    stalled.sendall(request.encode())
    reader = Stream(f"{server}/stream", alice.headers)
    try:
        reader.wait_for(snapshot_sent, timeout=5)
        payload = "x" * 50_000
        for batch in range(40):
            for n in range(10):
                event_log.append(redis, channel, {"data": f"{batch * 10 + n} {payload}"}, 60)
            time.sleep(0.05)  # paced, so that a reader that reads keeps up
        reader.wait_for(lambda evs: len(evs) == 401, timeout=30)
        assert [int(e.data.split()[0]) for e in reader.events[1:]] == list(range(400))
        stalled.settimeout(10)
        received = 0
        while chunk := stalled.recv(1 << 20):  # the server shut the socket: EOF
            received += len(chunk)
        assert received < 400 * 50_000
    finally:
        reader.close()
        stalled.close()


def test_events_that_arrive_in_pieces_do_not_cost_the_subscription(redis_url):
    """After a message, the hub reads on while more are ready. One that has begun to
    arrive must be waited for, not taken for a lost connection, which would end
    every stream of the process."""
    redis = Redis.from_url(redis_url)
    with slow_link(redis_url) as slow_url:
        hub = Hub(Redis.from_url(slow_url), queue_size=100)
        subscriber = hub.subscribe(channel_for("pieces"), sock=None)
        with redis.pipeline(transaction=False) as pipe:
            for n in range(5):
                event_log.append(pipe, subscriber.channel, {"data": f"{n} {'x' * 100_000}"}, 60)
            sent = [event_id.decode() for event_id in pipe.execute()]  # published together
        received = []
        while len(received) < len(sent) and (item := subscriber.queue.get(timeout=10)):
            received.append(item.id)  # an ended stream gets CLOSE (None)
        assert received == sent
        assert not subscriber.dropped
        hub.close()
        assert subscriber.queue.get(timeout=10) is CLOSE
        hub.redis.close()


def test_deployments_on_two_databases_of_one_server_stay_apart(redis_url):
    """Redis pub/sub ignores database numbers: a user of one deployment must not get
    the events of the same user id in another, on the same server."""
    db = Redis.from_url(redis_url).connection_pool.connection_kwargs.get("db", 0)
    ours, theirs = (
        Redis.from_url(urlparse(redis_url)._replace(path=f"/{n}").geturl()) for n in (db, db + 1)
    )
    channel = channel_for("apart")
    hub = Hub(ours, queue_size=10)
    subscriber = hub.subscribe(channel, sock=None)
    try:
        event_log.append(theirs, channel, {"data": "theirs"}, 60)
        mine = event_log.append(ours, channel, {"data": "ours"}, 60).decode()
        assert subscriber.queue.get(timeout=10).id == mine  # theirs, first, never came
    finally:
        hub.close()
        theirs.delete(log_key(channel), COUNTERS)  # all the publish wrote there


def read_chunks(reader, until: bytes) -> list[bytes]:
    """Read an HTTP/1.1 chunked body's chunks until one holds ``until``."""
    chunks = []
    while not chunks or until not in chunks[-1]:
        size = int(reader.readline().strip(), 16)
        chunks.append(reader.read(size))
        reader.readline()  # the CRLF after the chunk
    return chunks


def test_events_that_arrive_together_leave_in_one_write(app, server, redis_url, accounts):
    alice = accounts.create()
    redis = Redis.from_url(redis_url)
    channel = channel_for(user_id(app, alice))
    host, port = urlparse(server).hostname, urlparse(server).port
    with socket.create_connection((host, port), timeout=10) as sock:
        request = f"GET /stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {alice.token}"
        sock.sendall(f"{request}\r\n\r\n".encode())
        reader = sock.makefile("rb")
        while reader.readline() != b"\r\n":
            pass  # the status line and headers
        read_chunks(reader, until=b"event:snapshot")
        with redis.pipeline(transaction=False) as pipe:
            for n in range(50):
                event_log.append(pipe, channel, {"data": f"burst {n}"}, 60)
            pipe.execute()  # one round trip: the web process receives them together
        chunks = read_chunks(reader, until=b"burst 49")
        reader.close()
    sent = b"".join(chunks)
    numbers = [int(line.split()[-1]) for line in sent.splitlines() if b"burst" in line]
    assert numbers == list(range(50))
    assert len([c for c in chunks if b"burst" in c]) < 10  # not one write per event


@pytest.mark.parametrize("retried", [False, True], ids=["by-the-hub", "by-redis-py"])
def test_a_lost_subscription_ends_the_streams_and_distrusts_the_logs(redis_url, retried, caplog):
    """Connection lost and made again (by the hub, or by redis-py itself when it
    retries, as with Sentinel): events of the gap never arrived, so every stream ends
    (to reconnect), and ids from before the loss get a snapshot, not a replay."""
    name = f"hub-{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(redis_url)
    retry = {"retry": UntilDeadline(5), "retry_on_error": list(FAILOVER_ERRORS)} if retried else {}
    hub = Hub(Redis.from_url(redis_url, client_name=name, **retry), 100)
    try:
        subscriber = hub.subscribe(channel_for("gap"), sock=None)
        seen = event_log.append(redis, subscriber.channel, {"data": "before"}, 60).decode()
        assert subscriber.queue.get(timeout=10).id == seen
        (ours,) = [c for c in redis.client_list() if c["name"] == name and int(c["sub"])]
        redis.client_kill_filter(_id=ours["id"])
        assert subscriber.queue.get(timeout=10) is CLOSE
        # A stream opened now waits for the new subscription, made once the gap is marked.
        again = hub.subscribe(channel_for("gap"), sock=None)
        assert event_log.replay(redis, again.channel, seen) is None
        later = event_log.append(redis, again.channel, {"data": "after"}, 60).decode()
        assert again.queue.get(timeout=10).id == later
        assert int(redis.get(GAP)) >= parse_id(seen)[0]
        # Which of the two ways it came back.
        assert ("event subscription lost" in caplog.text) is not retried
    finally:
        hub.close()
        redis.delete(GAP)
