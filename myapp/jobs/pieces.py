"""What job kinds share without importing the registry: pieces and permanent errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Piece:
    """One child of a job in pieces: its kind, parameters, label and weight.

    A sequence splits its parent's bar across its stages by ``weight``.
    """

    kind: str
    params: dict[str, Any]
    name: str
    weight: int = 1


class PermanentError(Exception):
    """An error that no retry can mend (a third party refused the input): the job
    fails at once, whatever retries its kind allows."""
