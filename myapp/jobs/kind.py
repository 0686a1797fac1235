"""What a kind declares: its job function, parameters, limits, and its pieces.

Kind modules import :class:`Piece` from here, never the registry
(:mod:`myapp.jobs`), which imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from rq import Retry


@dataclass(frozen=True)
class Kind:
    """One entry of the registry: how to run, check and bound jobs of one kind."""

    #: The job function; None for a job in pieces, whose pieces do the work.
    func: Callable[..., Any] | None
    params: type[BaseModel]
    #: Seconds before the job fails with "timed out after N s".
    timeout: int
    #: What the page calls it, for people ("Simulated process"); the API keeps the kind.
    title: str = ""
    #: Automatic retries after an error or a dead worker; None: fail at once.
    #: A job body raises :class:`myapp.errors.PermanentError` for an error no retry can mend.
    retry: Retry | None = None
    #: A job in pieces (see :mod:`myapp.pipeline.aggregate`): "batch" (run in parallel) or
    #: "sequence" (each after the one before), and its pieces from its params.
    mode: str | None = None
    pieces: Callable[[dict[str, Any]], list[Piece]] | None = None
    #: A piece of another kind's job: users cannot start it on its own.
    internal: bool = False
    #: The parameter whose value is stored once as an upload (:mod:`myapp.jobs.uploads`);
    #: the job's params then name it, ``{"upload": id}``, instead of holding it.
    upload: str | None = None


@dataclass(frozen=True)
class Piece:
    """One child of a job in pieces: its kind, parameters, label and weight.

    A sequence splits its parent's bar across its stages by ``weight``.
    """

    kind: str
    params: dict[str, Any]
    name: str
    weight: int = 1
