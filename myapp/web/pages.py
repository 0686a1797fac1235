"""The page: a signed-in user's jobs, live (``/``), and the favicon."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, send_from_directory
from flask_login import current_user

from myapp.jobs import KINDS

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    user = current_user if current_user.is_authenticated else None
    names = {kind: spec.title or kind for kind, spec in KINDS.items()}
    return render_template("index.html", user=user, error=None, kind_names=names)


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for this path whatever the page links; an SVG serves both."""
    return send_from_directory(
        current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )
