"""``import_contacts``: write a user's contacts from rows of ``name``, ``email``, ``phone``.

The rows come as JSON (``{"rows": [{"name": ..., "email": ...}, ...]}``) or as an
uploaded CSV that :mod:`myapp.web.contacts_csv` turns into that same payload before
:func:`myapp.jobs.submit.validate`. The parameters are strict on shape (types, keys, sizes)
and permissive on content: a row whose email is not an address is a *bad row*,
counted and reported in the result, not a refused request. The validated rows are
stored once, as an upload (:mod:`myapp.jobs.uploads`), and the job gets ``{"upload": id}``:
neither the job's record nor RQ's copy of it holds them.

The job is resumable (:mod:`myapp.steps`): rows are written in batches of
:data:`BATCH`, each committed together with the cursor, so a job killed at row
47,000 of 100,000 goes on from 47,000 when it runs again, and no row is written
twice (``contacts`` is unique on (job, row) as a last safety net).

Cells are stored as they were given (trimmed), not escaped: the page escapes them
when it shows them and the JSON API is data. Whatever one day exports contacts to
a spreadsheet (CSV, XLSX) MUST neutralise cells that start with ``=``, ``+``, ``-``
or ``@`` (CSV injection), because a name like ``=HYPERLINK(...)`` is stored as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rq import get_current_job
from sqlalchemy import func, select

from myapp.db import db
from myapp.jobs import uploads
from myapp.models import Contact
from myapp.steps import job_steps

#: Rows one import may have.
MAX_ROWS = 100_000
#: Longest cell the request accepts at all; longer ones are refused (400), shorter
#: ones that break the limits below are bad rows.
MAX_CELL = 1000
#: Rows written (and committed with the cursor) at a time.
BATCH = 500
#: Bad rows listed in the result (all of them are counted).
BAD_ROWS_LISTED = 100

NAME_MAX, EMAIL_MAX, PHONE_MAX = 200, 254, 50
COLUMNS = ("name", "email", "phone")
REQUIRED = ("name", "email")

# The WHATWG (HTML ``<input type="email">``) address syntax, with a dot in the domain.
_EMAIL = re.compile(
    r"[a-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+"
)
_PHONE = re.compile(r"[0-9 +()-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=MAX_CELL)
    email: str = Field(max_length=MAX_CELL)
    phone: str | None = Field(default=None, max_length=MAX_CELL)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[Row] = Field(min_length=1, max_length=MAX_ROWS)


# -- the job ------------------------------------------------------------------


def run(upload: str | None = None, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Import the rows of ``upload`` (or, for a job queued before uploads were
    stored apart, the ``rows`` themselves)."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("import_contacts runs on a worker: it needs its job's id and user")
    user_id, job_id = job.meta["user_id"], job.id
    rows = uploads.load(upload, user_id) if upload is not None else rows or []
    total = len(rows)
    bad = BadRows()
    with job_steps() as steps, steps.step("import", total=total) as step:
        # Rows before the cursor were written by an earlier attempt; only their bad
        # rows are needed again, for the result (validating is cheap; nothing is written).
        for index in range(step.cursor):
            bad.check(index, rows[index])
        for start in range(step.cursor, total, BATCH):
            end = min(start + BATCH, total)
            written = set(
                db.session.scalars(
                    select(Contact.row_number).where(
                        Contact.job_id == job_id, Contact.row_number.between(start + 1, end)
                    )
                )
            )
            for index in range(start, end):
                contact = bad.check(index, rows[index])
                if contact is not None and index + 1 not in written:
                    db.session.add(
                        Contact(user_id=user_id, job_id=job_id, row_number=index + 1, **contact)
                    )
            step.advance(end, f"{end:,} of {total:,} rows")
    imported = db.session.scalar(
        select(func.count()).select_from(Contact).where(Contact.job_id == job_id)
    )
    return {"imported": imported, "bad": bad.count, "bad_rows": bad.listed, "link": "/contacts"}


class BadRows:
    """Counts bad rows and keeps the first :data:`BAD_ROWS_LISTED` of them."""

    def __init__(self) -> None:
        self.count = 0
        self.listed: list[dict[str, Any]] = []

    def check(self, index: int, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """The clean contact of row ``index`` (0-based), or None when it is bad."""
        contact, reason = validate_row(row)
        if reason is not None:
            self.count += 1
            if len(self.listed) < BAD_ROWS_LISTED:
                self.listed.append({"row": index + 1, "reason": reason})
        return contact


def validate_row(row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """``(contact, None)`` for a good row, ``(None, reason)`` for a bad one."""
    name = (row.get("name") or "").strip()
    email = (row.get("email") or "").strip().lower()
    phone = (row.get("phone") or "").strip() or None
    problems = []
    if not name:
        problems.append("name is empty")
    elif len(name) > NAME_MAX:
        problems.append(f"name is longer than {NAME_MAX} characters")
    elif problem := _text_problem("name", name):
        problems.append(problem)
    if not email:
        problems.append("email is empty")
    elif len(email) > EMAIL_MAX:
        problems.append(f"email is longer than {EMAIL_MAX} characters")
    elif not _EMAIL.fullmatch(email):
        problems.append("email is not a valid address")
    if phone is not None:
        if len(phone) > PHONE_MAX:
            problems.append(f"phone is longer than {PHONE_MAX} characters")
        elif not _PHONE.fullmatch(phone) or not any(c.isdigit() for c in phone):
            problems.append("phone may only have digits, spaces and + - ( )")
    if problems:
        return None, "; ".join(problems)
    return {"name": name, "email": email, "phone": phone}, None


def _text_problem(field: str, value: str) -> str | None:
    """Text the database would refuse (NUL on PostgreSQL, lone surrogates anywhere)
    must be a bad row, not a job that fails on every attempt."""
    if _CONTROL.search(value):
        return f"{field} has control characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{field} is not valid text"
    return None
