"""The stream clients: many SSE (or bare Redis pub/sub) streams in one asyncio process.

Run as ``python -m bench.clients '<json config>'`` (or ``@FILE``, :func:`config_arg`)
by :mod:`bench.fanout`; it takes one command per line on stdin and answers one JSON line on stdout:

- ``open``: open every stream not open yet (a few at a time) and wait until each
  is ready (myapp: its ``snapshot`` arrived; stock flask-sse sends nothing before
  the first event, and bare subscribers are checked by the caller with PUBSUB
  NUMSUB); answers the counts;
- ``start``: start counting events and recording their latency;
- ``count``: events counted so far, and streams that closed;
- ``stop PATH``: stop recording; write the latencies (seconds, float64) to PATH;
- ``close``: close every stream; ``exit``.

Both kinds of stream are parsed the same way, on raw bytes: everything up to the
last complete event is searched for the publisher's ``"ts":`` stamps (one per
event), and each one's latency is the ``time.time()`` of the read minus it. The
SSE streams speak plain HTTP/1.1 (gunicorn answers chunked; the chunk-size lines
never match). The bare subscribers speak RESP (``SUBSCRIBE``) directly rather than
through ``redis.asyncio``, so the floor pays the same client cost per event as
the SSE systems; ``"client": "redis-py"`` uses ``redis.asyncio`` instead.

The output benchmark (:mod:`bench.output`) counts events by a mark of their own
(``"event_mark"``, e.g. ``event:output``) and reads many stamps per event (its
tokens', by the ``"stamp"`` pattern); with ``"sample": k`` only every k-th stream of
each user reads them, so that the clients keep up with the tokens of 1,000 streams.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import sys
import tempfile
import time
from array import array
from pathlib import Path

from bench.servers import raise_nofile

TS = re.compile(rb'"ts": ?([0-9]+\.[0-9]+)')


class Recorder:
    """Counts events (each stamp, or each ``event_mark``) and the stamps' latencies."""

    def __init__(self, stamp: bytes | None = None, event_mark: bytes | None = None):
        self.recording = False
        self.count = 0
        self.stamps = 0
        self.latencies = array("d")
        self.stamp = re.compile(stamp) if stamp else TS
        self.event_mark = event_mark

    def feed(self, body: bytes, now: float, timed: bool = True) -> None:
        if not self.recording:
            return
        if self.event_mark:
            self.count += body.count(self.event_mark)
            if not timed:
                return
        stamps = self.stamp.findall(body)
        if stamps:
            self.stamps += len(stamps)
            if not self.event_mark:
                self.count += len(stamps)
            self.latencies.extend([now - float(s) for s in stamps])


class Stream(asyncio.Protocol):
    """One connection; ``request`` is sent on connect, ``end`` marks a complete event."""

    def __init__(
        self,
        client: Client,
        request: bytes,
        end: bytes,
        http: bool,
        ready_mark: bytes,
        timed: bool = True,
    ):
        self.client = client
        self.timed = timed
        self.request = request
        self.end = end
        self.http = http
        self.ready_mark = ready_mark
        self.head = http
        self.carry = b""
        self.transport = None
        self.ready = asyncio.get_running_loop().create_future()
        self.closed = False
        self.status = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)
        if not self.ready_mark and not self.ready.done():
            self.ready.set_result(True)

    def data_received(self, data: bytes):
        now = time.time()
        self.client.bytes += len(data)
        if self.carry:
            data = self.carry + data
        if self.head:
            split = data.find(b"\r\n\r\n")
            if split < 0:
                self.carry = data
                return
            self.status = data[9:12]
            if self.status != b"200":
                self.transport.close()
                return
            self.head = False
            data = data[split + 4 :]
        cut = data.rfind(self.end)
        if cut < 0:
            self.carry = data
            return
        cut += len(self.end)
        body, self.carry = data[:cut], data[cut:]
        if not self.ready.done() and self.ready_mark in body:
            self.ready.set_result(True)
        self.client.recorder.feed(body, now, self.timed)

    def connection_lost(self, exc):
        self.closed = True
        self.client.closed += 1
        if not self.ready.done():
            self.ready.set_result(False)


class Client:
    def __init__(self, config: dict):
        self.config = config
        mark = config.get("event_mark")
        self.recorder = Recorder(
            config.get("stamp", "").encode() or None, mark.encode() if mark else None
        )
        self.streams: list[Stream | None] = [None] * config["n"]
        self.closed = 0
        self.bytes = 0
        self.redis_py: list = []

    def _spec(self, i: int) -> tuple[bytes, bytes, bool, bytes]:
        """What stream ``i`` sends, how its events end, and what says it is ready."""
        users = self.config["users"]
        user = users[self._index(i) % len(users)]
        if self.config["kind"] == "bare":
            channel = user["channel"].encode()
            request = b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel)
            return request, b"}\r\n", False, b""
        headers = "Host: 127.0.0.1\r\nAccept: text/event-stream\r\nUser-Agent: bench\r\n"
        if user.get("token"):
            headers += f"Authorization: Bearer {user['token']}\r\n"
        request = f"GET {user['path']} HTTP/1.1\r\n{headers}\r\n".encode()
        return request, b"\n\n", True, self.config.get("ready_mark", "").encode()

    def _index(self, i: int) -> int:
        return self.config.get("offset", 0) + i

    def _timed(self, i: int) -> bool:
        """Whether stream ``i`` reads its events' stamps: every ``sample``-th of each user."""
        return self._index(i) // len(self.config["users"]) % self.config.get("sample", 1) == 0

    async def open(self) -> dict:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        host, port = self.config["host"], self.config["port"]
        limit = asyncio.Semaphore(self.config.get("concurrency", 100))
        # Source addresses to spread the streams over (127.0.0.x): one address
        # has only so many ephemeral ports towards one server port.
        sources = self.config.get("sources") or [None]
        failed = 0

        async def one(i: int):
            nonlocal failed
            async with limit:
                request, end, http, mark = self._spec(i)
                stream = Stream(self, request, end, http, mark, self._timed(i))
                try:
                    source = sources[i % len(sources)]
                    local = (source, 0) if source else None
                    await loop.create_connection(lambda: stream, host, port, local_addr=local)
                    ok = await asyncio.wait_for(stream.ready, self.config.get("open_timeout", 60))
                except (TimeoutError, OSError):
                    ok = False
                if ok:
                    self.streams[i] = stream
                else:
                    failed += 1
                    if stream.transport is not None:
                        stream.transport.close()

        todo = [i for i, s in enumerate(self.streams) if s is None or s.closed]
        await asyncio.gather(*(one(i) for i in todo))
        return {
            "opened": len(todo) - failed,
            "failed": failed,
            "open": self.open_count(),
            "seconds": time.monotonic() - started,
        }

    async def open_redis_py(self) -> dict:
        """The same bare subscribers through ``redis.asyncio``, one connection each."""
        from redis.asyncio import Redis

        started = time.monotonic()
        url = f"redis://{self.config['host']}:{self.config['port']}/0"
        users = self.config["users"]

        async def reader(pubsub):
            async for message in pubsub.listen():
                if message["type"] == "message":
                    self.bytes += len(message["data"])
                    self.recorder.feed(message["data"], time.time())

        offset = self.config.get("offset", 0)
        for i in range(len(self.redis_py), self.config["n"]):
            redis = Redis.from_url(url, single_connection_client=True)
            pubsub = redis.pubsub()
            await pubsub.subscribe(users[(offset + i) % len(users)]["channel"])
            self.redis_py.append((redis, pubsub, asyncio.create_task(reader(pubsub))))
        return {
            "opened": len(self.redis_py),
            "failed": 0,
            "open": len(self.redis_py),
            "seconds": time.monotonic() - started,
        }

    def open_count(self) -> int:
        if self.redis_py:
            return len(self.redis_py)
        return sum(1 for s in self.streams if s is not None and not s.closed)

    def close(self) -> dict:
        for stream in self.streams:
            if stream is not None and stream.transport is not None:
                stream.transport.close()
        for _, _, task in self.redis_py:
            task.cancel()
        return {"open": 0}

    def usage(self) -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    async def command(self, line: str) -> dict:
        name, _, arg = line.strip().partition(" ")
        if name == "open":
            if self.config.get("client") == "redis-py":
                return await self.open_redis_py()
            return await self.open()
        if name == "start":
            self.recorder.count = self.recorder.stamps = 0
            self.recorder.latencies = array("d")
            self.recorder.recording = True
            return {"ok": True}
        if name == "count":
            return {
                "count": self.recorder.count,
                "closed": self.closed,
                "bytes": self.bytes,
                "open": self.open_count(),
                "cpu": self.usage(),
            }
        if name == "stop":
            self.recorder.recording = False
            with open(arg, "wb") as out:
                self.recorder.latencies.tofile(out)
            return {
                "count": self.recorder.count,
                "stamps": self.recorder.stamps,
                "closed": self.closed,
                "open": self.open_count(),
                "cpu": self.usage(),
            }
        if name == "close":
            return self.close()
        return {"error": f"unknown command {name!r}"}


def config_arg(config: dict) -> str:
    """The config as this module's argument: ``@PATH`` of a file when too long for one
    (Linux takes at most 128 KiB; the tokens of 2,000 users are more)."""
    text = json.dumps(config)
    if len(text) < 100_000:
        return text
    fd, path = tempfile.mkstemp(prefix="bench-clients-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return "@" + path


def read_config(arg: str) -> dict:
    if not arg.startswith("@"):
        return json.loads(arg)
    path = Path(arg[1:])
    try:
        return json.loads(path.read_text())
    finally:
        path.unlink()


async def main(config: dict) -> None:
    client = Client(config)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    try:
        while True:
            line = (await reader.readline()).decode()
            if not line or line.strip() == "exit":
                break
            print(json.dumps(await client.command(line)), flush=True)
    finally:
        client.close()


if __name__ == "__main__":
    raise_nofile()
    try:
        import uvloop
    except ImportError:  # plain asyncio works too, only slower
        uvloop = None
    config = read_config(sys.argv[1])
    if uvloop is not None:
        uvloop.run(main(config))
    else:
        asyncio.run(main(config))
