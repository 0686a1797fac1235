"""The OpenAPI description of the JSON API, at ``/api/openapi.json``.

Each kind's parameters come from its pydantic model, so the description cannot
drift from what :func:`myapp.jobs.submit.validate` accepts.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from pydantic.json_schema import models_json_schema

from myapp.job_json import STATUSES
from myapp.jobs import KINDS
from myapp.web.api import LIST_LIMIT

bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _job_schemas() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    progress = {
        "type": "object",
        "properties": {
            "done": {"type": ["integer", "null"]},
            "total": {"type": ["integer", "null"]},
            "percent": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
            "message": {"type": ["string", "null"]},
            "eta_seconds": {"type": ["number", "null"]},
        },
    }
    counted = ("total", "queued", "started", "finished", "failed", "canceled", "skipped")
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "Job": {
            "type": "object",
            "required": ["id", "kind", "status", "version", "progress", "created_at", "updated_at"],
            "properties": {
                "id": {"type": "string"},
                "kind": {"type": "string"},
                "status": {"type": "string", "enum": list(STATUSES)},
                "version": {
                    "type": "integer",
                    "description": "Grows with each state of the job: the larger is the newer.",
                },
                "progress": progress,
                "created_at": {"type": "string", "format": "date-time"},
                "started_at": nullable_time,
                "ended_at": nullable_time,
                "updated_at": {"type": "string", "format": "date-time"},
                "error": {"type": ["string", "null"]},
                "result": {},
                "retry": {
                    "type": ["object", "null"],
                    "properties": {
                        "attempt": {"type": "integer"},
                        "of": {"type": "integer"},
                        "at": nullable_time,
                    },
                },
                "parent": {"type": ["string", "null"], "description": "the batch it is a piece of"},
                "name": {"type": ["string", "null"], "description": "a piece's label"},
                "children": {"type": "array", "items": {"type": "string"}},
                "counts": {
                    "type": "object",
                    "properties": {name: {"type": "integer"} for name in counted},
                },
                "queue": {
                    "type": ["object", "null"],
                    "description": "a queued job's place in line, read when answered (not"
                    " in the stream's job events: event: queue moves it); null otherwise",
                    "properties": {
                        "position": {"type": "integer", "minimum": 1},
                        "eta_seconds": {"type": ["integer", "null"]},
                    },
                },
                "has_output": {
                    "type": "boolean",
                    "description": "whether the job wrote output (GET /api/jobs/{job_id}/output)",
                },
            },
        },
        "JobList": {
            "type": "object",
            "properties": {
                "jobs": {"type": "array", "items": _ref("Job")},
                "next_before": {
                    "type": ["string", "null"],
                    "description": "pass as ?before= for the next page; null on the last",
                },
            },
        },
    }


def _request_schemas() -> dict[str, Any]:
    """``{"kind": ..., "params": ...}``, one shape per kind users may start."""
    public = {name: spec for name, spec in KINDS.items() if not spec.internal}
    models = [(spec.params, "validation") for spec in public.values()]
    refs, defs = models_json_schema(models, ref_template=_REF)
    schemas = dict(defs.get("$defs", {}))
    shapes = []
    for name, spec in public.items():
        shape = f"Start_{name}"
        schemas[shape] = {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind"],
            "properties": {
                "kind": {"const": name},
                "params": refs[(spec.params, "validation")],
            },
        }
        shapes.append(_ref(shape))
    schemas["JobRequest"] = {"oneOf": shapes, "discriminator": {"propertyName": "kind"}}
    return schemas


def _output_path(unauthorized, not_found) -> dict[str, Any]:
    text = {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "offset": {"type": "integer", "description": "its end, in code points"},
            "truncated": {"type": "boolean"},
        },
    }
    after = {"type": "integer", "minimum": 0}
    return {
        "get": {
            "summary": "What the job wrote with progress.output",
            "parameters": [_job_id(), _query("after", after, "only the text past this offset")],
            "responses": {
                "200": {
                    "description": "the text",
                    "content": {"application/json": {"schema": text}},
                },
                "400": _error("a bad offset"),
                "401": unauthorized,
                "404": not_found,
            },
        }
    }


def _share_paths(unauthorized, not_found) -> dict[str, Any]:
    body = {
        "type": "object",
        "properties": {"expires_in": {"type": "integer", "minimum": 1, "maximum": 86400}},
    }
    link = {
        "type": "object",
        "properties": {"url": {"type": "string"}, "expires_at": {"type": "string"}},
    }
    return {
        "post": {
            "summary": "A link anyone may open to watch the job, read-only, until it expires",
            "parameters": [_job_id()],
            "requestBody": {"content": {"application/json": {"schema": body}}},
            "responses": {
                "201": {
                    "description": "the link",
                    "content": {"application/json": {"schema": link}},
                },
                "400": _error("a bad expires_in"),
                "401": unauthorized,
                "404": not_found,
            },
        },
        "delete": {
            "summary": "Revoke every link to the job; open views end within a heartbeat",
            "parameters": [_job_id()],
            "responses": {"204": {"description": "revoked"}, "401": unauthorized, "404": not_found},
        },
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _list_parameters() -> list[dict[str, Any]]:
    text, page = {"type": "string"}, {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT}
    return [
        _query("parent", text, "a batch or sequence: list its pieces, in order"),
        _query("before", text, "a job id: list the jobs older than it"),
        _query("limit", page, "at most this many"),
        _query("status", text, "only these statuses, comma-separated"),
        _query("kind", text, "only jobs of this kind"),
    ]


def _job_id() -> dict[str, Any]:
    return {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def description() -> dict[str, Any]:
    job = {"content": {"application/json": {"schema": _ref("Job")}}}
    unauthorized = _error("not signed in: no session and no valid Bearer token")
    not_found = _error("no such job (or another user's)")
    action = {
        "parameters": [_job_id()],
        "responses": {
            "202": {"description": "accepted; the stream tells the outcome", **job},
            "401": unauthorized,
            "404": not_found,
            "409": _error("not in a state that allows it"),
            "429": _error("too many active jobs"),
        },
    }
    csv_upload = {
        "type": "object",
        "required": ["kind", "file"],
        "properties": {
            "kind": {"const": "import_contacts"},
            "file": {"type": "string", "format": "binary"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "myapp", "version": "1", "description": "Live progress for jobs."},
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/jobs": {
                "get": {
                    "summary": "Your jobs, newest first, a page at a time",
                    "parameters": _list_parameters(),
                    "responses": {
                        "200": {
                            "description": "the jobs",
                            "content": {"application/json": {"schema": _ref("JobList")}},
                        },
                        "400": _error("a bad limit, status, kind or cursor"),
                        "401": unauthorized,
                        "404": not_found,
                    },
                },
                "post": {
                    "summary": "Start a job",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _ref("JobRequest")},
                            "multipart/form-data": {"schema": csv_upload},
                        },
                    },
                    "responses": {
                        "202": {"description": "started", **job},
                        "400": _error("refused: the message says why; nothing was started"),
                        "401": unauthorized,
                        "413": _error("the body is too large"),
                        "429": _error("too many active jobs"),
                        "503": _error("the queue is unavailable; nothing was started"),
                    },
                },
            },
            "/api/jobs/{job_id}": {
                "get": {
                    "parameters": [_job_id()],
                    "responses": {
                        "200": {"description": "the job", **job},
                        "401": unauthorized,
                        "404": not_found,
                    },
                },  # fmt: skip
            },
            "/api/jobs/{job_id}/output": _output_path(unauthorized, not_found),
            "/api/jobs/{job_id}/cancel": {"post": {"summary": "Cancel", **action}},
            "/api/jobs/{job_id}/retry": {"post": {"summary": "Retry", **action}},
            "/api/jobs/{job_id}/share": _share_paths(unauthorized, not_found),
            "/watch/{token}/stream": {
                "get": {
                    "summary": "A shared job's events, for anyone with the link",
                    "parameters": [
                        {
                            "name": "token",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {"description": "the stream", "content": {"text/event-stream": {}}},
                        "404": _error("not a link made here"),
                        "410": _error("the link expired or was revoked"),
                    },
                },
            },
            "/stream": {
                "get": {
                    "summary": "Server-sent events: a snapshot, then `job` events",
                    "parameters": [
                        {"name": "job", "in": "query", "schema": {"type": "string"}},
                        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {"description": "the stream", "content": {"text/event-stream": {}}},
                        "401": unauthorized,
                        "429": _error("too many open streams"),
                    },
                },
            },
        },
        "components": {
            "schemas": {**_job_schemas(), **_request_schemas()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
        },
    }


@bp.get("/api/openapi.json")
def openapi_json():
    return description()
