"""Count what this process sends to Redis: round trips, and commands by name.

:func:`install` wraps redis-py's connection class once per process: every
``send_packed_command`` is one round trip (a single command, or a whole
pipeline), and the commands packed into it are counted by name. The job bodies
of the worker benchmark install it in the process that runs them (the work
horse, or the worker itself for a SimpleWorker) and read the counts around
their ``progress.update`` calls, including the sends of the progress reporter's
thread, which run in the same process.
"""

from __future__ import annotations

import threading
from collections import Counter

from redis.connection import AbstractConnection

_lock = threading.Lock()
_counts: Counter = Counter()
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    send_packed, send, pack_many = (
        AbstractConnection.send_packed_command,
        AbstractConnection.send_command,
        AbstractConnection.pack_commands,
    )

    def send_packed_command(self, command, check_health=True):
        with _lock:
            _counts["round trips"] += 1
        return send_packed(self, command, check_health)

    def send_command(self, *args, **kwargs):
        _count([args[0]])
        return send(self, *args, **kwargs)

    def pack_commands(self, commands):
        _count([c[0] for c in commands])
        return pack_many(self, commands)

    AbstractConnection.send_packed_command = send_packed_command
    AbstractConnection.send_command = send_command
    AbstractConnection.pack_commands = pack_commands


def _count(names) -> None:
    with _lock:
        for name in names:
            if isinstance(name, bytes):
                name = name.decode()
            _counts[str(name).split()[0].upper()] += 1


def snapshot() -> Counter:
    with _lock:
        return Counter(_counts)
