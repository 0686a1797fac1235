"""Profiles made by ``generate_profile``: the page its finished job links to, and JSON."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_login import current_user, login_required

from myapp.db import db
from myapp.models import Profile

bp = Blueprint("profiles", __name__)


def _own_profile(profile_id: int) -> Profile:
    """The signed-in user's profile; 404 for anyone else's, revealing nothing."""
    profile = db.session.get(Profile, profile_id)
    if profile is None or profile.user_id != current_user.id:
        abort(404, description="no such profile")
    return profile


@bp.get("/api/profiles/<int:profile_id>")
@login_required
def get_profile(profile_id: int):
    return _own_profile(profile_id).to_dict()


@bp.get("/profiles/<int:profile_id>")
@login_required
def profile_page(profile_id: int):
    return render_template("profile.html", user=current_user, profile=_own_profile(profile_id))
