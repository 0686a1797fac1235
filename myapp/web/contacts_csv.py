"""A CSV upload for ``import_contacts``, turned into the same payload as JSON rows.

The page's import form and ``curl -F file=@contacts.csv`` send a multipart body;
:func:`form_payload` reads it (at most :data:`MAX_CSV_BYTES`) before the usual
validation, so both ways in meet the same rules.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from myapp.errors import InvalidJob
from myapp.jobs.import_contacts import COLUMNS, MAX_ROWS, REQUIRED

#: Largest CSV upload, in bytes.
MAX_CSV_BYTES = 32 * 1024 * 1024


def form_payload(form: Mapping[str, Any], files: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON payload of a multipart upload: ``kind=import_contacts`` and a CSV ``file``.

    Raises :class:`myapp.errors.InvalidJob` for anything else.
    """
    unknown = (set(form) - {"kind", "csrf_token"}) | (set(files) - {"file"})
    if unknown:
        raise InvalidJob(f"unknown field(s): {', '.join(sorted(unknown))}")
    if form.get("kind") != "import_contacts":
        raise InvalidJob(
            "a file upload must be kind=import_contacts, with the CSV in the 'file' field"
        )
    upload = files.get("file")
    if upload is None:
        raise InvalidJob("no file: send the CSV in the 'file' field")
    data = upload.stream.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise InvalidJob(f"the file is larger than {MAX_CSV_BYTES // 2**20} MiB")
    return {"kind": "import_contacts", "params": {"rows": parse_csv(data)}}


def parse_csv(data: bytes) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV whose header names the columns ``name``, ``email`` and
    optionally ``phone`` (any case, any order). Blank lines are skipped; a short
    line's missing cells are empty (a bad row if that leaves no email).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidJob(
            f"the file is not UTF-8 text (byte {exc.start + 1}); save it as 'CSV UTF-8'"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[dict[str, str]] = []
    try:
        header = next((cells for cells in reader if _filled(cells)), None)
        if header is None:
            raise InvalidJob(
                "the file is empty: expected a header row 'name,email' "
                "(optionally with 'phone') and one line per contact"
            )
        columns = _columns(header)
        for cells in reader:
            if not _filled(cells):
                continue
            if len(cells) > len(columns):
                raise InvalidJob(
                    f"line {reader.line_num} has {len(cells)} values but the header has "
                    f"{len(columns)} columns; put values that contain commas in double quotes"
                )
            if len(rows) == MAX_ROWS:
                raise InvalidJob(f"the file has more than {MAX_ROWS:,} rows; split it")
            cells += [""] * (len(columns) - len(cells))
            rows.append(dict(zip(columns, cells, strict=True)))
    except csv.Error as exc:
        raise InvalidJob(f"the file is not valid CSV (line {reader.line_num}): {exc}") from None
    if not rows:
        raise InvalidJob("the file has a header row but no contacts")
    return rows


def _filled(cells: list[str]) -> bool:
    return any(cell.strip() for cell in cells)


def _columns(header: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in header]
    problems = []
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        shown = ", ".join(f'"{name[:40]}"' for name in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        problems.append(f"unknown column(s): {shown}{more}")
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    duplicated = sorted({name for name in names if name in COLUMNS and names.count(name) > 1})
    if duplicated:
        problems.append(f"repeated column(s): {', '.join(duplicated)}")
    if problems:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
            hint = " (columns must be separated by commas)"
        raise InvalidJob(
            f"{'; '.join(problems)}{hint}. The header row must name the columns name and "
            "email, and may name phone"
        )
    return names
