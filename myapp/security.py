"""Response headers that keep the page's own content the only content, and a limit
on password guessing.

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

from myapp.connections import get_redis

_POLICY = (
    "default-src 'self'; script-src 'self'{script}; style-src 'self'{style}; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PAGE_POLICY = _POLICY.format(script="", style="")
#: rq-dashboard's policy, with ``{nonce}`` left to fill in per response.
DASHBOARD_POLICY = _POLICY.format(script=" 'nonce-{nonce}' 'unsafe-eval'", style=" 'unsafe-inline'")

#: Failed sign-ins allowed in a window. Per (name, client address): guessing one
#: password from one place; per address: trying many names. Both block only that
#: address, so nobody can lock a user out from elsewhere. Per name, from anywhere: a
#: higher bound on guessing one account from many addresses; past it, only
#: addresses with no failure on record still get their password checked.
LOGIN_ATTEMPTS_PER_NAME = 5
LOGIN_ATTEMPTS_PER_ADDRESS = 30
LOGIN_ATTEMPTS_PER_NAME_ANYWHERE = 100
LOGIN_WINDOW_SECONDS = 300

#: Check the limits and count the attempt in one step, so a burst of concurrent
#: guesses cannot all pass the check before any of them is counted.
#: KEYS: (name, address), address, name. ARGV: the three limits, the window (s).
_RESERVE = """
local pair = tonumber(redis.call('GET', KEYS[1]) or 0)
local addr = tonumber(redis.call('GET', KEYS[2]) or 0)
local name = tonumber(redis.call('GET', KEYS[3]) or 0)
if pair >= tonumber(ARGV[1]) or addr >= tonumber(ARGV[2])
        or (name >= tonumber(ARGV[3]) and addr > 0) then
    return 0
end
for _, key in ipairs(KEYS) do
    if redis.call('INCR', key) == 1 then
        redis.call('EXPIRE', key, ARGV[4])
    end
end
return 1
"""
_REFUND = """
redis.call('DEL', KEYS[1])
for i = 2, 3 do
    if tonumber(redis.call('GET', KEYS[i]) or 0) > 0 then
        redis.call('DECR', KEYS[i])
    end
end
"""


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


def _login_keys(name: str) -> list[str]:
    address = request.remote_addr
    return [
        f"myapp:login:pair:{address}:{name}",
        f"myapp:login:addr:{address}",
        f"myapp:login:name:{name}",
    ]


def login_reserve(name: str) -> bool:
    """Count a sign-in attempt before its password is checked; ``False`` when the
    limits are spent for this name from this address, and nothing is counted."""
    limits = (LOGIN_ATTEMPTS_PER_NAME, LOGIN_ATTEMPTS_PER_ADDRESS, LOGIN_ATTEMPTS_PER_NAME_ANYWHERE)
    keys = _login_keys(name)
    return bool(get_redis().eval(_RESERVE, len(keys), *keys, *limits, LOGIN_WINDOW_SECONDS))


def login_succeeded(name: str) -> None:
    """Give back the attempt :func:`login_reserve` counted: only failures count."""
    keys = _login_keys(name)
    get_redis().eval(_REFUND, len(keys), *keys)
