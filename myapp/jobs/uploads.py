"""Uploaded rows, stored once in a table of their own rather than in the job.

A job's ``params`` and RQ's copy of its kwargs used to hold every uploaded row, so
each listing of jobs read them all and Redis kept a second copy. Now the server
stores the rows here and the job gets ``{"upload": id}``; only the server makes such
a reference (a user's params that name one are refused by the kind's strict model),
and reading one checks that it belongs to the job's user. An upload lives as long
as its job's record, so a retry still finds it; :mod:`myapp.worker.retention` deletes both.
"""

from __future__ import annotations

import json
import uuid
import zlib
from typing import Any

from myapp.db import db
from myapp.errors import MissingUpload
from myapp.models import Upload


def pack(rows: list[dict[str, Any]]) -> bytes:
    """The bytes an upload stores: compact JSON, compressed (contacts shrink ~4x)."""
    return zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), 6)


def new(user_id: int, job_id: str, data: bytes) -> Upload:
    """An upload of ``data`` (from :func:`pack`) for the job, added to the session."""
    upload = Upload(
        id=str(uuid.uuid4()), user_id=user_id, job_id=job_id, size_bytes=len(data), data=data
    )
    db.session.add(upload)
    return upload


def load(upload_id: str, user_id: int) -> list[dict[str, Any]]:
    """The rows of the user's upload; :class:`MissingUpload` for any other."""
    upload = db.session.get(Upload, upload_id)
    if upload is None or upload.user_id != user_id:
        raise MissingUpload(f"upload {upload_id} is gone; start the import again")
    return json.loads(zlib.decompress(upload.data))


def stored_bytes(user_id: int) -> int:
    """What the user's uploads take, counted against ``MAX_STORED_BYTES_PER_USER``."""
    total = db.session.scalar(
        db.select(db.func.sum(Upload.size_bytes)).where(Upload.user_id == user_id)
    )
    return int(total or 0)
