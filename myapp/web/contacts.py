"""The user's contacts (written by ``import_contacts``): JSON for scripts, a page for people.

Cells are stored as they were imported. The page escapes them (Jinja autoescape)
and the JSON API is data; anything that ever exports contacts to a spreadsheet
must neutralise cells that start with ``=``, ``+``, ``-`` or ``@`` (CSV injection).
"""

from __future__ import annotations

import math
import re

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from myapp.db import db
from myapp.models import Contact

bp = Blueprint("contacts", __name__)

PER_PAGE = 50
PER_PAGE_MAX = 200
PAGE_MAX = 1_000_000_000

_WHOLE = re.compile(r"[0-9]{1,10}")


@bp.get("/api/contacts")
@login_required
def list_contacts():
    """``{"total", "page", "per_page", "contacts"}``, newest first; 401 JSON when signed out."""
    page, per_page = _page_args()
    total, contacts = _page_of_contacts(page, per_page)
    return {
        "total": total,
        "page": page,
        "per_page": per_page,
        "contacts": [contact.to_dict() for contact in contacts],
    }


@bp.get("/contacts")
@login_required
def contacts_page():
    """The same list as a page; signed-out visitors are sent to ``/`` to sign in."""
    page, per_page = _page_args()
    total, contacts = _page_of_contacts(page, per_page)
    pages = max(1, math.ceil(total / per_page))

    def page_url(number: int) -> str | None:
        if not 1 <= number <= pages:
            return None
        size = per_page if per_page != PER_PAGE else None  # url_for leaves out None
        return url_for("contacts.contacts_page", page=number, per_page=size)

    return render_template(
        "contacts.html",
        user=current_user,
        contacts=contacts,
        total=total,
        page=page,
        pages=pages,
        first=(page - 1) * per_page + 1,
        previous_url=page_url(min(page - 1, pages)),
        next_url=page_url(page + 1),
    )


def _page_args() -> tuple[int, int]:
    page = _whole_arg("page", 1, 1, PAGE_MAX)
    per_page = _whole_arg("per_page", PER_PAGE, 1, PER_PAGE_MAX)
    return page, per_page


def _whole_arg(name: str, default: int, low: int, high: int) -> int:
    """A query argument that must be a whole number in [low, high]; 400 otherwise
    (JSON under ``/api/``, see :func:`myapp.web.api._http_error`)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    value = int(raw) if _WHOLE.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        abort(400, description=f"{name} must be a whole number from {low} to {high:,}")
    return value


def _page_of_contacts(page: int, per_page: int) -> tuple[int, list[Contact]]:
    mine = Contact.user_id == current_user.id
    total = db.session.scalar(select(func.count()).select_from(Contact).where(mine))
    offset = (page - 1) * per_page
    if offset >= total:
        return total, []
    contacts = db.session.scalars(
        select(Contact)
        .where(mine)
        .order_by(Contact.created_at.desc(), Contact.id.desc())
        .offset(offset)
        .limit(per_page)
    ).all()
    return total, list(contacts)
