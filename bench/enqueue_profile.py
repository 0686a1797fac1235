"""Where the CPU of ``POST /api/jobs`` goes: ``python -m bench.enqueue_profile``.

The request runs in this process (Flask's test client, a Bearer token), on a Redis of
its own and a SQLite file (or ``--database``, a PostgreSQL URL), as the enqueue
scenario's job (``process_run``, 1 step of 0 s). Each part of the request is wrapped
in a counter of this process's CPU time (``time.process_time``, without the parts
inside it), so the table adds up to the whole request; the test client's own work is
left out. The Redis round trips and SQL statements of one request are counted too.
For the call stacks, run the same under py-spy: ``py-spy record -r 2000 -f raw -o
enqueue.raw -- .venv/bin/python -m bench.enqueue_profile``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import os
import tempfile
import time
from pathlib import Path

from bench import servers

#: The parts, as they are printed; each is one or more wrapped functions.
PARTS = [
    "token lookup (Flask-Login's loader)",
    "limits.precheck",
    "body and validate",
    "limits.admit",
    "rows: INSERT",
    "rows: commit",
    "enqueue (RQ, rate limit)",
    "queued event and log line",
    "submit's own code (rows, RQ's arguments)",
    "Flask, Werkzeug, hooks, the answer",
]


class Meter:
    """CPU seconds per part, each part's own (what the parts inside it took is theirs)."""

    def __init__(self):
        self.spent: collections.Counter = collections.Counter()
        self._inner: list[float] = []

    def wrap(self, part: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            started = time.process_time()
            self._inner.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                inner = self._inner.pop()
                took = time.process_time() - started
                self.spent[part] += took - inner
                if self._inner:
                    self._inner[-1] += took

        return timed


def install(app, meter: Meter) -> None:
    """Wrap the parts of the request, in the modules that call them."""
    import rq.queue
    import sqlalchemy.engine
    import sqlalchemy.orm

    from myapp import connections
    from myapp.jobs import limits, submit
    from myapp.pipeline import lifecycle
    from myapp.web import api

    manager = app.login_manager
    manager._request_callback = meter.wrap(PARTS[0], manager._request_callback)
    limits.precheck = meter.wrap(PARTS[1], limits.precheck)
    api.validate = meter.wrap(PARTS[2], api.validate)
    limits.admit = meter.wrap(PARTS[3], limits.admit)
    session = sqlalchemy.orm.Session
    session.execute = meter.wrap(PARTS[4], session.execute)
    session.flush = meter.wrap(PARTS[4], session.flush)
    session.commit = meter.wrap(PARTS[5], session.commit)
    # The rows may be written on a connection of their own, outside the session.
    if hasattr(submit, "_write"):
        engine = sqlalchemy.engine.Connection
        engine.execute = meter.wrap(PARTS[4], engine.execute)
        transaction = sqlalchemy.engine.Transaction
        transaction.commit = meter.wrap(PARTS[5], transaction.commit)
    rq.queue.Queue.enqueue_call = meter.wrap(PARTS[6], rq.queue.Queue.enqueue_call)
    held = getattr(connections, "LimitedQueue", None)
    if held is not None:
        held.enqueue_held = meter.wrap(PARTS[6], held.enqueue_held)
        import redis.client

        # The pipeline that enqueue_held fills runs in submit: its round trip is the enqueue's.
        pipeline = redis.client.Pipeline
        pipeline.execute = meter.wrap(PARTS[6], pipeline.execute)
    lifecycle.publish = meter.wrap(PARTS[7], lifecycle.publish)
    api.submit = submit.submit = meter.wrap(PARTS[8], submit.submit)
    app.wsgi_app = meter.wrap(PARTS[9], app.wsgi_app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--database", help="a PostgreSQL URL (default: a SQLite file)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="enqueue-profile-"))
    redis = servers.start_redis(workdir, "profile")
    try:
        if args.database:
            database = servers.postgres_database(args.database)
        else:
            database = contextlib.nullcontext(f"sqlite:///{workdir / 'profile.db'}")
        with database as url:
            print(json.dumps(measure(redis.url, url, args.requests), indent=1))
    finally:
        redis.stop()


def measure(redis_url: str, database_url: str, requests: int) -> dict:
    os.environ.update(REDIS_URL=redis_url, DATABASE_URL=database_url, SECRET_KEY="p" * 32)
    from redis import Redis
    from redis.connection import Connection
    from sqlalchemy import event

    from bench.enqueue import JOB
    from myapp import create_app
    from myapp.db import db
    from myapp.models import User

    app = create_app({"MAX_ACTIVE_JOBS_PER_USER": 10**9, "MAX_JOBS_PER_HOUR": 10**9})
    with app.app_context():
        user = User(name="profile")
        user.set_password("x")
        db.session.add(user)
        token = user.new_token()
        db.session.commit()
        engine = db.engine
    client = app.test_client()
    body = json.dumps(JOB)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post():
        answer = client.post("/api/jobs", data=body, headers=headers)
        assert answer.status_code == 202, answer.get_data(as_text=True)[:300]

    for _ in range(100):  # connections, compiled statements, the token's user
        post()
    trips, statements = collections.Counter(), collections.Counter()
    send = Connection.send_packed_command

    def counted(self, command, check_health=True):
        trips["round trips"] += 1
        return send(self, command, check_health)

    def seen(_conn, _cursor, statement, *_):
        statements[statement.split()[0].upper()] += 1

    stats = Redis.from_url(redis_url)
    before = stats.info("commandstats")
    Connection.send_packed_command = counted
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for _ in range(10):
            post()
    finally:
        Connection.send_packed_command = send
        event.remove(engine, "before_cursor_execute", seen)
    after = stats.info("commandstats")
    commands = sum(s["calls"] for s in after.values()) - sum(s["calls"] for s in before.values())
    meter = Meter()
    install(app, meter)
    started = time.process_time()
    for _ in range(requests):
        post()
    whole = time.process_time() - started
    total = sum(meter.spent.values())
    return {
        "database": database_url.split(":", 1)[0],
        "requests": requests,
        "cpu_ms_per_request_with_test_client": round(1000 * whole / requests, 3),
        "cpu_ms_per_request": round(1000 * total / requests, 3),
        "parts_ms": {part: round(1000 * meter.spent[part] / requests, 3) for part in PARTS},
        "parts_share": {part: f"{meter.spent[part] / total:.0%}" for part in PARTS},
        "redis_round_trips": trips["round trips"] / 10,
        "redis_commands": (commands - 1) / 10,  # less the INFO that counted them
        "sql_statements": {k: v / 10 for k, v in statements.items()},
    }


if __name__ == "__main__":
    main()
