"""Share links: anyone with the link watches one job live, read-only, until it expires.

A link is ``/watch/<token>``: the job's id, the time it expires and the job's *share
generation*, signed with the app's secret (itsdangerous, as Flask signs its cookies).
Revoking the job's links makes its generation grow (in its record, the truth, and in
Redis, where open watch streams look at each heartbeat), so every link made before
stops working at once. The page and its stream (``/watch/<token>/stream``) show that
job and its pieces and nothing else of the owner's; nobody can act on it there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeSerializer

from myapp import clock, job_json
from myapp.db import db
from myapp.errors import Gone, InvalidJob, NotFound
from myapp.keys import share_generation_key
from myapp.models import TrackedJob
from myapp.web.stream import sse

bp = Blueprint("share", __name__)

#: Seconds a link lives unless asked otherwise, and at most.
DEFAULT_SECONDS = 3600
MOST_SECONDS = 86400
_SALT = "myapp.share"


def issue(row: TrackedJob, expires_in: Any) -> dict[str, Any]:
    """A new link to ``row``: its URL and when it expires."""
    if expires_in is None:
        expires_in = DEFAULT_SECONDS
    if type(expires_in) is not int or not 1 <= expires_in <= MOST_SECONDS:
        raise InvalidJob(f"expires_in: a whole number of seconds from 1 to {MOST_SECONDS}")
    expires = int(clock.time()) + expires_in
    token = _signer().dumps({"j": row.id, "g": row.share_generation, "e": expires})
    return {
        "url": url_for("share.page", token=token, _external=True),
        "expires_at": job_json.iso(datetime.fromtimestamp(expires, UTC).replace(tzinfo=None)),
    }


def revoke(row: TrackedJob, redis) -> None:
    """End every link to ``row``: those made before no longer open, and open watch
    streams end at their next heartbeat."""
    row.share_generation += 1
    db.session.commit()
    redis.set(share_generation_key(row.id), row.share_generation, ex=MOST_SECONDS)


class Link:
    """A link that checked out: its job, and whether it still holds (for its stream)."""

    def __init__(self, row: TrackedJob, generation: int, expires: int):
        self.row, self.generation, self.expires = row, generation, expires

    def holds(self, redis) -> bool:
        """Not expired, and not revoked since: one Redis read, for each heartbeat."""
        if clock.time() >= self.expires:
            return False
        current = redis.get(share_generation_key(self.row.id))
        return current is None or int(current) == self.generation


def resolve(token: str) -> Link:
    """The link ``token`` names; 404 when it is not one this app signed (or its job is
    gone), 410 when it expired or was revoked."""
    try:
        claims = _signer().loads(token)
        job_id, generation, expires = claims["j"], int(claims["g"]), int(claims["e"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise NotFound("no such link") from None
    row = db.session.get(TrackedJob, job_id)
    if row is None:
        raise NotFound("no such link")
    if generation != row.share_generation:
        raise Gone("this link was revoked by its owner")
    if clock.time() >= expires:
        raise Gone("this link has expired")
    return Link(row, generation, expires)


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


@bp.get("/watch/<token>")
def page(token: str):
    """The read-only page; a browser gets a page that says why a link no longer works,
    a script its JSON."""
    try:
        link = resolve(token)
    except (NotFound, Gone) as refused:
        if request.accept_mimetypes.best_match(["text/html", "application/json"]) != "text/html":
            raise
        return render_template("watch.html", error=str(refused), token=None), refused.status
    return render_template("watch.html", error=None, token=token, job_id=link.row.id)


@bp.get("/watch/<token>/stream")
def stream(token: str):
    """The job's stream, as ``/stream?job=<id>`` with its pieces, for anyone with the link."""
    link = resolve(token)
    return sse.stream_job(link.row, pieces=True, holds=link.holds)
