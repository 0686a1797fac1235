"""The database: Flask-SQLAlchemy session, Alembic migrations applied at startup, and
:func:`ride_out`, how a worker waits out a database it cannot reach for a while."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from alembic import command
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase

MIGRATIONS = str(Path(__file__).with_name("migrations"))
#: The errors of a database out of reach (a connection reset, refused, or lost
#: mid-statement): a retry on a new connection mends them once it is back.
UNREACHABLE = (exc.OperationalError, exc.InterfaceError)
#: The longest pause between two tries of :func:`ride_out`, in seconds.
RETRY_PAUSE_MAX = 2.0

log = logging.getLogger(__name__)
T = TypeVar("T")


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate(directory=MIGRATIONS)

#: Database URLs this process has already brought up to date.
_upgraded: set[str] = set()


def init_app(app: Flask) -> None:
    app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(app.config["DATABASE_URL"])
    db.init_app(app)
    migrate.init_app(app, db)
    if app.config.get("AUTO_MIGRATE", True):
        with app.app_context():
            upgrade_schema()


def sqlalchemy_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def upgrade_schema() -> None:
    """Create or migrate the schema to the newest revision, once per process.

    Several processes start at once (web workers, RQ workers), so the upgrade
    runs under a lock: an advisory lock on PostgreSQL (taken in ``env.py``),
    a file lock beside the database file on SQLite.
    """
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    key = url.render_as_string(hide_password=False)
    if key in _upgraded:
        return
    config = current_app.extensions["migrate"].migrate.get_config()
    with _sqlite_file_lock(url):
        command.upgrade(config, "head")
    _upgraded.add(key)


def ride_out(work: Callable[[], T], what: str) -> T:
    """Return ``work()``, trying again while the database is out of reach, with a
    growing pause, for up to ``DB_RETRY_SECONDS``; then the error goes up.

    A worker that loses its link to the database for a few seconds must not fail
    the job it runs: its writes wait for the link instead. ``work`` must be safe
    to run again after a failed try: a session of its own, or a job that resumes
    from its checkpoint.
    """
    deadline = time.monotonic() + current_app.config["DB_RETRY_SECONDS"]
    pause = 0.1
    while True:
        try:
            return work()
        except UNREACHABLE as error:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("%s: database out of reach (%s); trying again", what, error.orig or error)
        time.sleep(pause)
        pause = min(pause * 2, RETRY_PAUSE_MAX)


@contextmanager
def kept_after_commit():
    """Commits inside leave what the session holds loaded, instead of expired.

    What a request has just written is what the database holds, so it is read
    back from memory rather than with a SELECT per row.
    """
    session = db.session()
    before, session.expire_on_commit = session.expire_on_commit, False
    try:
        yield
    finally:
        session.expire_on_commit = before


@contextmanager
def _sqlite_file_lock(url):
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield
        return
    path = Path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.migrate-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Let the web, the worker and its work horses write to one SQLite file."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


@event.listens_for(Engine, "connect")
def _remember_process(_dbapi_connection, record) -> None:
    record.info["pid"] = os.getpid()


@event.listens_for(Engine, "checkout")
def _refuse_inherited(_dbapi_connection, record, proxy) -> None:
    """Never use a connection opened by the process this one was forked from.

    RQ forks work horses and its scheduler; a child writing on its parent's
    socket corrupts the session both share (on PostgreSQL: "prepared statement
    does not exist" in the parent). SQLAlchemy's recipe for ``os.fork()``: the
    pool drops the inherited connection, without closing it, and opens its own.
    """
    if record.info.get("pid") != os.getpid():
        record.dbapi_connection = proxy.dbapi_connection = None
        raise exc.DisconnectionError("connection opened by another process")
