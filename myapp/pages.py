"""The dashboard page."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    user = current_user if current_user.is_authenticated else None
    return render_template("index.html", user=user, error=None)
