"""myapp: live progress for background jobs in Flask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; configuration from the environment, then ``test_config``."""
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    from myapp.config import check_secret_key, from_environment

    app.config.from_mapping(from_environment(app.instance_path))
    if test_config:
        app.config.from_mapping(test_config)
    check_secret_key(app.config)
    if app.config["PROXY_COUNT"] > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    from myapp import (
        api,
        auth,
        connections,
        contacts,
        dashboard,
        db,
        health,
        logs,
        metrics,
        openapi,
        pages,
        profiles,
        security,
        terminal,
        users,
    )
    from myapp.stream import sse

    logs.init_app(app)
    security.init_app(app)
    db.init_app(app)
    connections.init_app(app)
    auth.init_app(app)
    users.init_app(app)
    terminal.init_app(app)
    api.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(contacts.bp)
    app.register_blueprint(profiles.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(sse, url_prefix="/stream")
    dashboard.init_app(app)
    return app
