"""Logging: one line per job lifecycle change, as JSON when ``LOG_FORMAT=json``.

Lines carry the job id, user id, kind and status as fields, never tokens,
passwords or job parameters.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask

#: The logger of job lifecycle changes.
jobs_log = logging.getLogger("myapp.jobs")

_FIELDS = ("job_id", "user_id", "kind", "status", "error")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({f: getattr(record, f) for f in _FIELDS if hasattr(record, f)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def init_app(app: Flask) -> None:
    """Configure the root handler once per process (tests build many apps)."""
    root = logging.getLogger()
    if getattr(root, "_myapp_configured", False):
        return
    root._myapp_configured = True
    handler = logging.StreamHandler()
    if app.config["LOG_FORMAT"] == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])


def job_changed(job: dict[str, Any], user_id: int) -> None:
    """Log a lifecycle change (not a progress report) of ``job``."""
    fields = {"job_id": job["id"], "user_id": user_id, "kind": job["kind"], "status": job["status"]}
    if job.get("error"):
        fields["error"] = job["error"]
    jobs_log.info("job %s %s", job["id"], job["status"], extra=fields)
