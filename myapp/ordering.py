"""The ordering rule: an older state of a job never undoes a newer one.

Two states of one job can arrive out of order: a worker's progress and the web's
cancel cross on their way, or two processes race to publish a parent. Every
place that keeps a job's latest state decides which is newer by this module:

- the database record (:func:`myapp.pipeline.lifecycle.record`);
- the event log's guard and its hash of active jobs, in the publishing script
  (:mod:`myapp.pipeline.event_log`);
- a batch parent's aggregate (:mod:`myapp.pipeline.aggregate`), whose script
  takes a new epoch for each parent state, as :func:`new_version` does;
- a stream's snapshot, merged with what arrived while it was taken
  (:mod:`myapp.web.stream`);
- ``flask jobs watch`` (:mod:`myapp.cli.jobs`);
- the page (``static/app.js``, ``isNewer``), which applies the same comparison
  and also drops an equal state, as a duplicate it has shown already.

A state's order is its ``version``, never a time: hosts' clocks disagree, and a
worker a few seconds behind would have every state it sends taken for stale. A
version is an *epoch* times :data:`EPOCH` plus a count within it. Every change of
status (submitted, started, canceled, retried, ended), in any process, takes a
new epoch from one Redis counter per job (:func:`new_version`), so it is newer
than every state before it, wherever they came from. Progress between two changes
counts up within its epoch in the one process that runs the job
(:func:`next_version`), without a round trip. A worker's progress that crosses
the web's cancel is therefore older than the cancel, as it should be.

The counter may be lost with Redis: each caller passes the newest version it
knows (the record's, the job's ``meta``), and the new epoch is taken above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis import Redis

from myapp.keys import version_key

#: Versions in one epoch: 2**24 progress reports (19 days at 10 a second).
EPOCH = 2**24
#: The first version of every job: submitted, epoch 1.
FIRST = EPOCH
#: How long a job's counter is kept after its last change; later, the floor
#: each caller passes takes over.
KEEP_SECONDS = 30 * 86400

#: The rule in Lua, for the scripts that take an epoch as they publish (this
#: module's and :mod:`myapp.pipeline.aggregate`'s): the job's next epoch, above
#: ``floor`` (the newest epoch the caller knows).
NEW_EPOCH_LUA = f"""
local function new_epoch(counter, floor)
  local epoch = redis.call('INCR', counter)
  if epoch <= floor then
    epoch = floor + 1
    redis.call('SET', counter, epoch)
  end
  redis.call('EXPIRE', counter, {KEEP_SECONDS})
  return epoch
end
"""

# KEYS: the job's counter. ARGV: the newest epoch the caller knows.
_NEW_EPOCH = NEW_EPOCH_LUA + "return new_epoch(KEYS[1], tonumber(ARGV[1]))"


def new_version(redis: Redis, job_id: str, after: int) -> int:
    """A version newer than every state of the job so far, and than ``after``."""
    epoch = redis.eval(_NEW_EPOCH, 1, version_key(job_id), after // EPOCH)
    return int(epoch) * EPOCH


def next_version(version: int) -> int:
    """The next progress report's version, in the same epoch."""
    return version + 1


def version_of(job: Mapping[str, Any]) -> int:
    """What "newer" compares for a job's JSON: larger is newer."""
    return job.get("version") or 0


def is_older(job: Mapping[str, Any], than: Mapping[str, Any] | int) -> bool:
    """Whether ``job`` is older than ``than`` (a job's JSON, or a version): such a
    state is dropped. An equal one is not older, so a state written twice is harmless."""
    other = than if isinstance(than, int) else version_of(than)
    return version_of(job) < other
