"""The page: a signed-in user's jobs, live (``/``), and the favicon."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, send_from_directory
from flask_login import current_user

from myapp.jobs import KINDS

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    user = current_user if current_user.is_authenticated else None
    return render_template("index.html", user=user, error=None)


@bp.app_context_processor
def kind_names():
    """What the page calls each kind, for every template that shows jobs."""
    return {"kind_names": {kind: spec.title or kind for kind, spec in KINDS.items()}}


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for this path whatever the page links; an SVG serves both."""
    return send_from_directory(
        current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )
