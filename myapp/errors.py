"""Every error myapp raises on purpose, and the one place that answers them.

Views raise; :func:`init_app`'s handlers answer. A :class:`Refused` request gets
``{"error": <message>}`` with the status its class names, and so does every HTTP
error (404, 405, 413, ...) asked for by an API client or a stream; the page gets
HTML. Messages are written for the user who made the request.
"""

from __future__ import annotations

from flask import Flask, current_app, jsonify, request
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException


class Refused(Exception):
    """A request refused; answered with :attr:`status` and the message as ``error``."""

    status = 400


class InvalidJob(Refused, ValueError):
    """A job request that is refused; the message says why, for the user."""


class Unauthenticated(Refused):
    status = 401

    def __init__(self, message: str = "authentication required"):
        super().__init__(message)


class Forbidden(Refused):
    status = 403


class NotFound(Refused):
    status = 404


class WrongMethod(Refused):
    status = 405


class Conflict(Refused):
    """The job is not in a state that allows this."""

    status = 409


class Gone(Refused):
    """A share link that expired or was revoked: it will not work again."""

    status = 410


class StorageFull(Refused):
    """The user's uploads would take more than ``MAX_STORED_BYTES_PER_USER``."""

    status = 413


class TooManyJobs(Refused):
    """The user has as many active jobs, or has started as many this hour, as allowed."""

    status = 429


class TooManyStreams(Refused):
    """The user has as many open streams as allowed."""

    status = 429


class Unavailable(Refused):
    """Redis did not answer: nothing was done, and trying again later may work."""

    status = 503


class PermanentError(Exception):
    """An error that no retry can mend (a third party refused the input): the job
    fails at once, whatever retries its kind allows."""


class MissingUpload(PermanentError):
    """The upload a job names is gone, or is not its user's: no retry can mend that."""


class JobCanceled(BaseException):
    """The user canceled the job. A BaseException, so ``except Exception`` in a job
    body does not swallow it."""


class JobInterrupted(BaseException):
    """The worker is shutting down; the job is put back on the queue to resume."""


class JobSuperseded(BaseException):
    """This run no longer holds its job: its worker was cut off from Redis long enough
    to be taken for dead, and the job was failed or given to another worker. It must
    write nothing more (see :mod:`myapp.worker.tracking`)."""


def wants_json() -> bool:
    """API clients and the stream get JSON errors; the page gets HTML."""
    return request.path.startswith(("/api/", "/stream")) or request.authorization is not None


def init_app(app: Flask) -> None:
    app.register_error_handler(Refused, _refused)
    app.register_error_handler(HTTPException, _http_error)


def _refused(error: Refused):
    if isinstance(error.__cause__, RedisError):  # for the operator: what Redis said
        current_app.logger.warning(
            "%s %s: %s (%s)", request.method, request.path, error, error.__cause__
        )
    return jsonify(error=str(error)), error.status


def _http_error(error: HTTPException):
    if wants_json():
        return jsonify(error=error.description), error.code
    if isinstance(error, CSRFError):
        # A refusal must leave the session alone: a page with a form would call
        # csrf_token(), start a new session for a cross-site post (which carries no
        # cookie) and replace the visitor's cookie, signing them out.
        page = f"<!doctype html><title>Bad request</title><p>{escape(error.description)}</p>"
        return page, 400, {"Content-Type": "text/html; charset=utf-8"}
    return error
