"""The ``flask`` commands: ``flask jobs`` (:mod:`myapp.cli.jobs`) and ``flask user``
(:mod:`myapp.cli.users`)."""

from __future__ import annotations

from flask import Flask

from myapp.cli import jobs, users


def init_app(app: Flask) -> None:
    jobs.init_app(app)
    users.init_app(app)
