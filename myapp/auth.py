"""Who is asking: a session cookie from the page, or a Bearer token from scripts.

Page forms carry a CSRF token; requests with an ``Authorization`` header need
none, because a browser never adds that header to a cross-site request.
"""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify, redirect, render_template, request, url_for
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from myapp import security
from myapp.db import db
from myapp.models import ApiToken, User

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # Flask's own default is None (setdefault would keep it): no cookie for cross-site posts.
    app.config["SESSION_COOKIE_SAMESITE"] = app.config["SESSION_COOKIE_SAMESITE"] or "Lax"
    login_manager.init_app(app)
    csrf.init_app(app)
    app.before_request(_protect_forms)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_blueprint(bp)


def wants_json() -> bool:
    """API clients and the stream get JSON errors; the page gets HTML."""
    return request.path.startswith(("/api/", "/stream")) or request.authorization is not None


def _protect_forms():
    if request.authorization is not None:
        return
    if wants_json() and not current_user.is_authenticated:
        return  # the API answers 401 itself; there is no session to forge
    csrf.protect()


def _csrf_error(error: CSRFError):
    if wants_json():
        return jsonify(error=error.description), 400
    return render_template("index.html", user=None, error=error.description), 400


@login_manager.user_loader
def _load_session_user(user_id: str) -> User | None:
    # A request that presents a token is judged by the token alone.
    if request.authorization is not None:
        return None
    return db.session.get(User, int(user_id))


@login_manager.request_loader
def _load_token_user(req) -> User | None:
    auth = req.authorization
    if auth is None or auth.type != "bearer" or not auth.token:
        return None
    owner = db.select(User).join(User.tokens)
    return db.session.scalar(owner.where(ApiToken.token_hash == ApiToken.hash(auth.token)))


@login_manager.unauthorized_handler
def _unauthorized():
    if wants_json():
        return jsonify(error="authentication required"), 401
    return redirect(url_for("pages.index"))


@bp.post("/login")
def login():
    """Sign in; after too many failures for a name or from an address in a few
    minutes (:mod:`myapp.security`), attempts answer 429 without checking anything."""
    name = request.form.get("name", "")[:200]
    if security.login_blocked(name):
        error = "Too many failed sign-ins. Wait a few minutes, then try again."
        return render_template("index.html", user=None, error=error), 429
    user = db.session.scalar(db.select(User).filter_by(name=name))
    if user is None or not user.check_password(request.form.get("password", "")):
        security.login_failed(name)
        return render_template("index.html", user=None, error="Wrong name or password."), 401
    security.login_succeeded(name)
    login_user(user)
    return redirect(url_for("pages.index"))


@bp.post("/logout")
def logout():
    logout_user()
    return redirect(url_for("pages.index"))


def is_admin() -> bool:
    return current_user.is_authenticated and current_user.is_admin
