"""A Redis primary, a replica and three Sentinels on loopback, for failover tests.

Real ``redis-server`` processes (Debian's, which ``python3 app.py test`` installs;
sentinel mode is ``redis-server <conf> --sentinel``) on free ports in a temporary
folder, with a quorum of 2 and a primary taken for down after a second. A killed
primary is started again as a replica of the new one, so a test can fail over
again and again. Everything is killed at :meth:`Sentinels.stop`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from redis import Redis

from tests.conftest import free_port, wait_until

#: The name the Sentinels monitor the primary by.
MASTER = "myapp"
#: Milliseconds without an answer before a Sentinel takes the primary for down.
DOWN_AFTER_MS = 1000
#: Milliseconds a failover may take; another of the same primary waits twice that.
FAILOVER_TIMEOUT_MS = 2000


def redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("the failover tests need Debian's redis-server: python3 app.py test")
    return found


class Sentinels:
    def __init__(self, folder: Path):
        self.folder = folder
        self.servers: dict[int, subprocess.Popen] = {}
        self.sentinels: dict[int, subprocess.Popen] = {}

    # -- starting ---------------------------------------------------------

    def start(self) -> Sentinels:
        first, second = free_port(), free_port()
        self._start_server(first)
        self._start_server(second, replica_of=first)
        wait_until(lambda: self._synced(second), 20)
        for _ in range(3):
            self._start_sentinel(free_port(), first)
        wait_until(self._agreed, 30)
        self._wait_streaming(second, 30)
        return self

    def _start_server(self, port: int, replica_of: int | None = None) -> None:
        folder = self.folder / f"redis-{port}"
        folder.mkdir(exist_ok=True)
        args = [redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(folder), "--logfile", str(folder / "redis.log"),
                "--repl-diskless-sync-delay", "0"]  # fmt: skip
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.servers[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_until(lambda: Redis(port=port).ping(), 10)

    def _start_sentinel(self, port: int, primary: int) -> None:
        conf = self.folder / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.folder}\n"
            f"logfile {self.folder / f'sentinel-{port}.log'}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        self.sentinels[port] = subprocess.Popen(
            [redis_server(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL
        )
        wait_until(lambda: Redis(port=port).ping(), 10)

    # -- what they see ----------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to find the primary through them."""
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{port}" for port in self.sentinels),
            "REDIS_SENTINEL_MASTER": MASTER,
        }

    def primary_by_each(self) -> set[int]:
        """The primary's port as each Sentinel names it."""
        named = set()
        for port in self.sentinels:
            _, primary = Redis(port=port, socket_timeout=1).sentinel_get_master_addr_by_name(MASTER)
            named.add(int(primary))
        return named

    @property
    def primary(self) -> int:
        (port,) = self.primary_by_each()
        return port

    @property
    def client(self) -> Redis:
        """A plain client of the current primary."""
        return Redis(port=self.primary, socket_timeout=2)

    def _agreed(self) -> bool:
        """One primary for all, each sees the others and a replica in sync with it."""
        named = self.primary_by_each()
        if len(named) != 1:
            return False
        (primary,) = named
        for port in self.sentinels:
            master = Redis(port=port, socket_timeout=1).sentinel_master(MASTER)
            if master["num-other-sentinels"] < 2 or master["num-slaves"] < 1:
                return False
            replicas = Redis(port=port, socket_timeout=1).sentinel_slaves(MASTER)
            if not any(r["master-link-status"] == "ok" and not r["is_sdown"] for r in replicas):
                return False
        if Redis(port=primary).info("replication")["role"] != "master":
            return False
        return all(self._synced(port) for port in self.servers if port != primary)

    def _synced(self, port: int) -> bool:
        info = Redis(port=port, socket_timeout=1).info("replication")
        return info["role"] == "slave" and info["master_link_status"] == "up"

    # -- faults -----------------------------------------------------------

    def kill_primary(self) -> tuple[int, float]:
        """``kill -9`` the primary; its port and the monotonic time of the kill."""
        port = self.primary
        process = self.servers.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait()
        return port, time.monotonic()

    def wait_for_new_primary(self, old: int, timeout: float = 30) -> int:
        """Wait until every Sentinel names another primary, and it acts as one."""

        def promoted():
            named = self.primary_by_each()
            if len(named) != 1 or old in named:
                return None
            (port,) = named
            return port if Redis(port=port).info("replication")["role"] == "master" else None

        return wait_until(promoted, timeout, interval=0.05)

    def restart_as_replica(self, port: int, timeout: float = 30) -> None:
        """Start a killed server again, as a replica of the new primary, and wait until
        the Sentinels count it in: the next failover has somewhere to go."""
        self._start_server(port, replica_of=self.primary)
        wait_until(self._agreed, timeout)
        self._wait_streaming(port, timeout)

    def _wait_streaming(self, replica: int, timeout: float) -> None:
        """In sync is not yet streaming: for up to a second after it, until the replica's
        first acknowledgement, the primary holds new writes back, and a kill then would
        lose them. One write seen on the replica proves it streams."""
        marker = f"tests:streaming:{time.monotonic_ns()}"
        self.client.set(marker, 1, ex=60)
        wait_until(lambda: Redis(port=replica).exists(marker), timeout)

    def stop(self) -> None:
        for process in [*self.sentinels.values(), *self.servers.values()]:
            process.kill()
        for process in [*self.sentinels.values(), *self.servers.values()]:
            process.wait(timeout=10)
