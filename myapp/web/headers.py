"""Response headers that keep the page's own content the only content.

The page runs no inline script, so its Content-Security-Policy allows scripts,
styles and connections from this origin only. rq-dashboard (admins only, at
``/rq``) is a third party's page with one inline script and templates compiled in
the browser: its script runs by the response's nonce (see
``templates/rq_dashboard/base.html``), its templates need ``'unsafe-eval'``, and its
markup has inline styles. Nothing else inline runs there, so markup that slipped into
a job field could not run a script even if it were not escaped.
"""

from __future__ import annotations

import secrets

from flask import Flask, Response, g, request

_POLICY = (
    "default-src 'self'; script-src 'self'{script}; style-src 'self'{style}; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PAGE_POLICY = _POLICY.format(script="", style="")
#: rq-dashboard's policy, with ``{nonce}`` left to fill in per response.
DASHBOARD_POLICY = _POLICY.format(script=" 'nonce-{nonce}' 'unsafe-eval'", style=" 'unsafe-inline'")


def init_app(app: Flask) -> None:
    app.after_request(_headers)
    app.add_template_global(csp_nonce)


def csp_nonce() -> str:
    """This response's nonce for an inline script: random, so a page that is made to
    show an attacker's markup gives the attacker no nonce to copy."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def _headers(response: Response) -> Response:
    dashboard = request.path == "/rq" or request.path.startswith("/rq/")
    policy = DASHBOARD_POLICY.format(nonce=csp_nonce()) if dashboard else PAGE_POLICY
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response
