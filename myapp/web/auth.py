"""Who is asking: a session cookie from the page, or a Bearer token from scripts.

Page forms carry a CSRF token; requests with an ``Authorization`` header need
none, because a browser never adds that header to a cross-site request.

A process remembers the user of each token it has seen for up to
``TOKEN_MEMORY_SECONDS``, as of the value of :data:`myapp.keys.TOKENS`, which every
deletion of a token or a user replaces (:mod:`myapp.models`): a request reads that
value (one Redis command) instead of the database, and a revoked token stops working
at once. Without Redis, the database answers.
"""

from __future__ import annotations

import functools
import secrets
import time

from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect
from redis.exceptions import RedisError
from werkzeug.security import check_password_hash, generate_password_hash

from myapp.connections import get_redis
from myapp.db import db
from myapp.errors import Unauthenticated, wants_json
from myapp.keys import TOKENS
from myapp.models import ApiToken, User
from myapp.web.throttle import login_reserve, login_succeeded

#: The session key holding :attr:`User.session_version` from sign-in.
_VERSION_KEY = "session_version"
#: Seconds a token's user is remembered at most, even while :data:`myapp.keys.TOKENS`
#: holds: a failover that lost the newest value cannot revive a token for longer.
TOKEN_MEMORY_SECONDS = 60.0
#: Tokens remembered per process at most; past it, the memory starts again empty.
TOKEN_MEMORY_SIZE = 10_000
_MEMORY = "myapp.token_users"


class HeaderFirstCSRFProtect(CSRFProtect):
    """Flask-WTF's check, taking the token from its header before the form: a fetch
    that sends it there (the page's do) is checked without reading its body, which
    may be a large upload that the limits refuse unread (:func:`myapp.jobs.limits.precheck`)."""

    def _get_csrf_token(self):
        for header in current_app.config["WTF_CSRF_HEADERS"]:
            if token := request.headers.get(header):
                return token
        return super()._get_csrf_token()


bp = Blueprint("auth", __name__)
login_manager = LoginManager()
csrf = HeaderFirstCSRFProtect()


def init_app(app: Flask) -> None:
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # Flask's own default is None (setdefault would keep it): no cookie for cross-site posts.
    app.config["SESSION_COOKIE_SAMESITE"] = app.config["SESSION_COOKIE_SAMESITE"] or "Lax"
    login_manager.init_app(app)
    csrf.init_app(app)
    app.before_request(_protect_forms)
    app.register_blueprint(bp)


def _protect_forms():
    if request.authorization is not None:
        return
    if wants_json() and not current_user.is_authenticated:
        return  # the API answers 401 itself; there is no session to forge
    csrf.protect()


@login_manager.user_loader
def _load_session_user(user_id: str) -> User | None:
    # A request that presents a token is judged by the token alone.
    if request.authorization is not None:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or session.get(_VERSION_KEY) != user.session_version:
        return None  # signed out since, everywhere: sign-out, revoke or a new password
    return user


@login_manager.request_loader
def _load_token_user(req) -> User | None:
    auth = req.authorization
    if auth is None or auth.type != "bearer" or not auth.token:
        return None
    digest = ApiToken.hash(auth.token)
    memory: dict[str, tuple[User, bytes, float]] = current_app.extensions.setdefault(_MEMORY, {})
    try:
        generation = _token_generation()
    except RedisError:
        memory.clear()  # a deletion may pass unseen meanwhile: ask the database alone
        return _token_owner(digest)
    known = memory.get(digest)
    if known is not None and known[1] == generation and time.monotonic() < known[2]:
        return known[0]
    user = _token_owner(digest)
    if user is not None:
        # Detached, it is the same for every request: loaded columns only, no session.
        db.session.expunge(user)
        if len(memory) >= TOKEN_MEMORY_SIZE:
            memory.clear()
        memory[digest] = user, generation, time.monotonic() + TOKEN_MEMORY_SECONDS
    return user


def _token_owner(digest: str) -> User | None:
    owner = db.select(User).join(User.tokens)
    return db.session.scalar(owner.where(ApiToken.token_hash == digest))


def _token_generation() -> bytes:
    """The value of :data:`myapp.keys.TOKENS`, made if Redis has none (new, or lost)."""
    redis = get_redis()
    generation = redis.get(TOKENS)
    if generation is None:
        redis.set(TOKENS, secrets.token_hex(16), nx=True)
        generation = redis.get(TOKENS)
    return generation


@login_manager.unauthorized_handler
def _unauthorized():
    if wants_json():
        raise Unauthenticated
    return redirect(url_for("pages.index"))


@bp.post("/login")
def login():
    """Sign in; after too many failures for a name or from an address in a few
    minutes (:mod:`myapp.web.throttle`), attempts answer 429 without checking anything."""
    name = request.form.get("name", "")[:200]
    if not login_reserve(name):
        error = "Too many failed sign-ins. Wait a few minutes, then try again."
        return render_template("index.html", user=None, error=error), 429
    user = db.session.scalar(db.select(User).filter_by(name=name))
    if not _password_matches(user, request.form.get("password", "")):
        return render_template("index.html", user=None, error="Wrong name or password."), 401
    login_succeeded(name)
    session.clear()  # nothing from before sign-in survives it, the CSRF secret included
    login_user(user)
    session[_VERSION_KEY] = user.session_version
    return redirect(url_for("pages.index"))


def _password_matches(user: User | None, password: str) -> bool:
    """An unknown name costs the same hash as a known one, so the answer's time
    does not tell which names exist."""
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return False
    return user.check_password(password)


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))  # the method set_password uses


@bp.post("/logout")
def logout():
    """Sign out this session and every copy of its cookie."""
    if current_user.is_authenticated and request.authorization is None:
        current_user.end_sessions()
        db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("pages.index"))


def is_admin() -> bool:
    return current_user.is_authenticated and current_user.is_admin
