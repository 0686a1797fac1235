"""``publish_album``: upload each photo of an album, one RQ job per photo.

A batch (see :mod:`myapp.pipeline.aggregate`): each item is a ``publish_album.upload`` job
that simulates a third-party photo API, taking ``latency_ms`` per started MB
(at least ``latency_ms``), failing at random with ``failure_rate`` (a transient
error: retried, up to :data:`RETRIES` times) and refusing any item with
``"reject": true`` (a permanent error: never retried). Only what failed is run
again when the user retries the album.
"""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from myapp import progress
from myapp.errors import PermanentError
from myapp.jobs.kind import Piece

#: Automatic retries of a transient upload error, and the seconds between them.
RETRIES = 4
RETRY_INTERVALS = [1, 1, 2, 3]
#: Photos one album may have.
MAX_ITEMS = 1000
#: Progress reports per upload at most.
CHUNKS = 10


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    size_kb: int = Field(ge=1, le=1_000_000)
    reject: bool = False


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Item] = Field(min_length=1, max_length=MAX_ITEMS)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    latency_ms: int = Field(default=200, ge=0, le=60_000)


class UploadParams(Item):
    failure_rate: float = Field(ge=0, le=1)
    latency_ms: int = Field(ge=0, le=60_000)


class Rejected(PermanentError):
    """The photo service refused the photo: sending it again cannot help."""


class UploadFailed(Exception):
    """A transient error of the photo service: worth another try."""


def pieces(params: dict[str, Any]) -> list[Piece]:
    shared = {"failure_rate": params["failure_rate"], "latency_ms": params["latency_ms"]}
    return [
        Piece("publish_album.upload", {**item, **shared}, name=item["name"])
        for item in params["items"]
    ]


def upload(
    name: str, size_kb: int, reject: bool, failure_rate: float, latency_ms: int
) -> dict[str, Any]:
    seconds = latency_ms / 1000 * max(1.0, size_kb / 1024)
    chunks = min(CHUNKS, size_kb)
    fails_after = random.randrange(chunks) if random.random() < failure_rate else None
    for chunk in range(1, chunks + 1):
        time.sleep(seconds / chunks)
        if reject:
            raise Rejected("the photo service refused the photo (simulated)")
        if fails_after is not None and chunk > fails_after:
            raise UploadFailed("the photo service timed out (simulated)")
        progress.update(size_kb * chunk // chunks, size_kb, "uploading")
    # The name is the piece's, in its record: left out of what RQ keeps and shows.
    return {"size_kb": size_kb, "url": f"https://photos.example/{quote(name)}"}
