"""myapp: live progress for background jobs in Flask.

The package by role (docs/architecture.md has the map):

- the base: ``config``, ``db``, ``models``, ``connections``, ``keys`` (Redis names),
  ``wire`` (the event format), ``job_json`` (a job's JSON), ``ordering``, ``errors``,
  ``logs``;
- what job bodies call: ``progress`` and ``steps``;
- ``pipeline/``: where a job's state becomes a record and an event;
- ``jobs/``: the kinds, and starting, canceling and retrying them;
- ``worker/``, ``web/`` and ``cli/``: the three kinds of process;
- entry points: this factory, ``devserver``, ``gunicorn_config``, ``gunicorn_worker``.

A module imports from its own entry of that list or the ones before it, never from
a later one (``tests/test_layout.py`` holds them to it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; configuration from the environment, then ``test_config``."""
    # The factory imports its parts when it runs, as flaskr's does: every import of
    # a myapp module runs this file first, and importing a job's module (as RQ does)
    # must not load the web side.
    from werkzeug.middleware.proxy_fix import ProxyFix

    from myapp import cli, clock, connections, db, errors, logs
    from myapp.config import check_redis, check_secret_key, from_environment
    from myapp.web import (
        api,
        auth,
        contacts,
        headers,
        health,
        metrics,
        openapi,
        pages,
        profiles,
        rq_admin,
        share,
    )
    from myapp.web.stream import sse

    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.from_mapping(from_environment(app.instance_path))
    if test_config:
        app.config.from_mapping(test_config)
    check_secret_key(app.config)
    check_redis(app.config)
    if app.config["PROXY_COUNT"] > 0:
        hops = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    logs.init_app(app)
    headers.init_app(app)
    errors.init_app(app)
    db.init_app(app)
    connections.init_app(app)
    auth.init_app(app)
    cli.init_app(app)
    api.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(contacts.bp)
    app.register_blueprint(profiles.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(sse, url_prefix="/stream")
    app.register_blueprint(share.bp)
    rq_admin.init_app(app)
    # RQ's modules are loaded by now: its times are on Redis's clock too.
    clock.install_in_rq()
    return app
