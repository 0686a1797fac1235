"""Configuration: safe defaults in code, overridden by environment variables."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Environment variables read at startup, with their defaults. ``None`` means
#: "derived at startup" (see :func:`from_environment`).
DEFAULTS: dict[str, object] = {
    "SECRET_KEY": None,
    "REDIS_URL": None,
    #: ``host:port,host:port,...``: find the Redis primary through these Sentinels
    #: (with ``REDIS_SENTINEL_MASTER``, the name they monitor it by), not ``REDIS_URL``.
    "REDIS_SENTINELS": "",
    "REDIS_SENTINEL_MASTER": "",
    "DATABASE_URL": None,
    "REDIS_MAX_CONNECTIONS": 5,
    "RQ_QUEUE": "default",
    "MAX_ACTIVE_JOBS_PER_USER": 10,
    "MAX_RUNNING_JOBS_PER_USER": 4,
    "MAX_JOBS_PER_HOUR": 600,
    "MAX_STORED_BYTES_PER_USER": 512 * 1024 * 1024,
    #: Ended job records (and their uploads) older than this many days are deleted.
    "JOB_RETENTION_DAYS": 30.0,
    #: Seconds RQ keeps an ended job's keys once myapp has recorded its end.
    "JOB_REDIS_TTL_SECONDS": 86400,
    "WORKER_DEATH_SECONDS": 120.0,
    "CANCEL_GRACE_SECONDS": 2.0,
    #: Seconds a worker keeps retrying a database write (or a job's run) while the
    #: database is out of reach, before it gives up (myapp.db.ride_out).
    "DB_RETRY_SECONDS": 30.0,
    "PROGRESS_DB_INTERVAL": 1.0,
    "PROGRESS_MAX_RATE": 10.0,
    #: A job's output (progress.output) is cut past this many bytes of UTF-8.
    "OUTPUT_MAX_BYTES": 1024 * 1024,
    "STREAM_HEARTBEAT_SECONDS": 15.0,
    "STREAM_RETENTION_SECONDS": 300.0,
    "STREAM_QUEUE_SIZE": 1000,
    "MAX_STREAMS_PER_USER": 20,
    "SESSION_COOKIE_SECURE": False,
    "MAX_CONTENT_LENGTH": 48 * 1024 * 1024,
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "INFO",
    #: A bearer token that may read /metrics (for Prometheus); admins always may.
    "METRICS_TOKEN": "",
    #: Proxies in front that append to X-Forwarded-For (nginx: 1); the client
    #: address, which the sign-in throttle keys on, is read through that many.
    "PROXY_COUNT": 0,
}

#: Shortest SECRET_KEY accepted outside debugging and tests, in bytes.
SECRET_KEY_MIN_BYTES = 32


def from_environment(instance_path: str) -> dict[str, object]:
    """Read the configuration from the environment.

    ``REDIS_URL`` defaults to the embedded Redis socket that ``python3 app.py``
    starts (unless ``REDIS_SENTINELS`` is set); ``DATABASE_URL`` to a SQLite file
    in the instance folder.
    ``SECRET_KEY`` defaults to a random key kept in the instance folder, so a
    local run keeps its sessions across restarts and nothing secret is in the repo.
    """
    instance = Path(instance_path)
    config: dict[str, object] = {}
    for name, default in DEFAULTS.items():
        value = os.environ.get(name)
        if value is None:
            config[name] = default
        elif isinstance(default, bool):
            config[name] = value.lower() in {"1", "true", "yes", "on"}
        elif isinstance(default, int | float):
            try:
                config[name] = type(default)(value)
            except ValueError:
                raise RuntimeError(f"{name} must be a number, not {value!r}") from None
        else:
            config[name] = value
    if config["REDIS_URL"] is None and not config["REDIS_SENTINELS"]:
        config["REDIS_URL"] = f"unix://{instance / 'redis.sock'}"
    if config["DATABASE_URL"] is None:
        config["DATABASE_URL"] = f"sqlite:///{instance / 'myapp.db'}"
    if config["SECRET_KEY"] is None:
        config["SECRET_KEY"] = _instance_secret(instance)
    return config


def check_secret_key(config: Mapping[str, Any]) -> None:
    """Refuse to start with a session-signing key short enough to guess."""
    if config.get("DEBUG") or config.get("TESTING"):
        return
    if len(str(config["SECRET_KEY"]).encode()) < SECRET_KEY_MIN_BYTES:
        raise RuntimeError(
            f"SECRET_KEY must be at least {SECRET_KEY_MIN_BYTES} bytes; make one with"
            " python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )


def check_redis(config: Mapping[str, Any]) -> None:
    """Refuse to start with a Redis setting that cannot be meant: Sentinels without the
    name of their primary (or the other way round), bad addresses, or both ways at once."""
    sentinels, master = config.get("REDIS_SENTINELS"), config.get("REDIS_SENTINEL_MASTER")
    if bool(sentinels) != bool(master):
        raise RuntimeError(
            "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: set both (the"
            " Sentinels' addresses and the name they monitor the primary by) or neither"
        )
    if sentinels:
        parse_sentinels(str(sentinels))
        if config.get("REDIS_URL"):
            raise RuntimeError("set REDIS_URL or REDIS_SENTINELS, not both")
    elif not config.get("REDIS_URL"):
        raise RuntimeError("set REDIS_URL, or REDIS_SENTINELS and REDIS_SENTINEL_MASTER")


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """``"host:port,host:port"`` as redis-py's Sentinel takes it; a clear error for
    anything else, at startup rather than at the first failover."""
    sentinels = []
    for part in value.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon or not host or not port:
            raise RuntimeError(f"REDIS_SENTINELS: {part.strip()!r} is not host:port")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise RuntimeError(f"REDIS_SENTINELS: the port of {part.strip()!r} is not a port")
        sentinels.append((host.strip("[]"), int(port)))
    return sentinels


def private_instance(instance: Path) -> None:
    """Create the instance folder, or make an existing one, this user's only (0700):
    it holds the secret key, the SQLite database, Redis' socket, dump and log."""
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    instance.chmod(0o700)


def _instance_secret(instance: Path) -> str:
    """A random secret kept in the instance folder, created once.

    Written aside and hard-linked into place, so processes that start together
    all end up with the same key.
    """
    path = instance / "secret_key"
    if not path.exists():
        private_instance(instance)
        aside = instance / f"secret_key.{os.getpid()}"
        aside.write_text(secrets.token_hex(32))
        aside.chmod(0o600)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another process won the race; use its key
        finally:
            aside.unlink()
    return path.read_text().strip()
