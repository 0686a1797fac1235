"""Response headers that keep the page's own content the only content, and a limit
on password guessing.

The page runs no inline script, so its Content-Security-Policy allows scripts,
styles and connections from this origin only. rq-dashboard (admins only, at
``/rq``) is a third party's page built on inline scripts and templates compiled in
the browser, so it gets the same policy with those two allowances.
"""

from __future__ import annotations

from flask import Flask, Response, request

from myapp.connections import get_redis

_POLICY = (
    "default-src 'self'; script-src 'self'{script}; style-src 'self'{style}; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PAGE_POLICY = _POLICY.format(script="", style="")
DASHBOARD_POLICY = _POLICY.format(script=" 'unsafe-inline' 'unsafe-eval'", style=" 'unsafe-inline'")

#: Failed sign-ins allowed in a window: per name (guessing one password), and per
#: client address (trying many names).
LOGIN_ATTEMPTS_PER_NAME = 5
LOGIN_ATTEMPTS_PER_ADDRESS = 30
LOGIN_WINDOW_SECONDS = 300


def init_app(app: Flask) -> None:
    app.after_request(_headers)


def _headers(response: Response) -> Response:
    dashboard = request.path == "/rq" or request.path.startswith("/rq/")
    response.headers["Content-Security-Policy"] = DASHBOARD_POLICY if dashboard else PAGE_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _login_keys(name: str) -> list[str]:
    return [f"myapp:login:name:{name}", f"myapp:login:addr:{request.remote_addr}"]


def login_blocked(name: str) -> bool:
    """Too many failed sign-ins lately, for this name or from this address."""
    by_name, by_address = get_redis().mget(_login_keys(name))
    return (
        int(by_name or 0) >= LOGIN_ATTEMPTS_PER_NAME
        or int(by_address or 0) >= LOGIN_ATTEMPTS_PER_ADDRESS
    )


def login_failed(name: str) -> None:
    with get_redis().pipeline() as pipe:
        for key in _login_keys(name):
            pipe.set(key, 0, ex=LOGIN_WINDOW_SECONDS, nx=True)  # the window opens
            pipe.incr(key)  # (keeps the key's expiry)
        pipe.execute()


def login_succeeded(name: str) -> None:
    get_redis().delete(_login_keys(name)[0])
