"""A small load generator: keep-alive HTTP/1.1 connections, or RQ enqueue calls.

Run as ``python -m bench.loadgen '<json config>'`` by :mod:`bench.enqueue` and
:mod:`bench.capacity`; it prints one JSON line with every request's latency.

- ``"mode": "http"``: ``connections`` connections to ``host:port``, each sending
  one request at a time (``requests``, cycled: raw bytes, so every connection can
  carry its own token); ``wrk`` is not installed here, and this is enough for a
  few thousand requests a second.
- ``"mode": "rq"``: the same closed loop, but each "connection" is a thread
  calling ``Queue.enqueue`` on a Redis client of its own: the floor of the
  enqueue path, with no HTTP and no database.

The run ends after ``count`` requests in all, or after ``duration`` seconds. With
``rate`` (requests/s in all), each connection sends on a fixed schedule and a
request's latency runs from its send (not its scheduled time); without, each
sends its next request as soon as the answer to the last one arrived.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import threading
import time


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Budget:
    """Hands out request numbers until ``count`` or the deadline is reached."""

    def __init__(self, count: int | None, duration: float | None):
        self.count = count
        self.deadline = time.monotonic() + duration if duration else float("inf")
        self.taken = 0
        self.lock = threading.Lock()

    def take(self) -> int | None:
        with self.lock:
            if (self.count is not None and self.taken >= self.count) or (
                time.monotonic() >= self.deadline
            ):
                return None
            self.taken += 1
            return self.taken - 1


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status, and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, keep = 0, True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    if length:
        await reader.readexactly(length)
    return status, keep


async def _http(config: dict, budget: Budget, out: dict) -> None:
    host, port = config["host"], config["port"]
    requests = [r.encode() for r in config["requests"]]
    connections = config["connections"]
    gap = connections / config["rate"] if config.get("rate") else 0.0
    sources = config.get("sources") or [None]

    async def one(index: int) -> None:
        source = sources[index % len(sources)]
        local = (source, 0) if source else None
        reader = writer = None
        next_send = time.monotonic() + gap * index / connections
        while (number := budget.take()) is not None:
            if gap:
                wait = next_send - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                next_send += gap
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port, local_addr=local)
                sent = time.perf_counter()
                writer.write(requests[number % len(requests)])
                status, keep = await _read_response(reader)
                out["latencies"].append(time.perf_counter() - sent)
                out["statuses"][status] = out["statuses"].get(status, 0) + 1
                if not keep:
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                out["errors"] += 1
                out["last_error"] = repr(exc)
                if writer is not None:
                    writer.close()
                writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))


def _rq(config: dict, budget: Budget, out: dict) -> None:
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    def one() -> None:
        queue = Queue(
            config["queue"],
            connection=Redis.from_url(config["redis_url"]),
            serializer=JSONSerializer,
        )
        while budget.take() is not None:
            sent = time.perf_counter()
            queue.enqueue(config["func"], kwargs=config["kwargs"], job_timeout=config["timeout"])
            elapsed = time.perf_counter() - sent
            with budget.lock:
                out["latencies"].append(elapsed)
                out["statuses"]["enqueued"] = out["statuses"].get("enqueued", 0) + 1

    threads = [threading.Thread(target=one) for _ in range(config["connections"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main(config: dict) -> dict:
    out: dict = {"latencies": [], "statuses": {}, "errors": 0}
    if config["mode"] == "rq":
        import rq  # noqa: F401 (imported before the clock starts)
    budget = Budget(config.get("count"), config.get("duration"))
    cpu, started = _cpu(), time.monotonic()
    if config["mode"] == "rq":
        _rq(config, budget, out)
    else:
        asyncio.run(_http(config, budget, out))
    out["seconds"] = time.monotonic() - started
    out["cpu"] = _cpu() - cpu
    return out


if __name__ == "__main__":
    from bench.servers import raise_nofile

    raise_nofile()
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
