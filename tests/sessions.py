"""A Flask test client signed in as a person is: through the page's form, with its
CSRF token, holding a session cookie."""

from __future__ import annotations

import re


def csrf_token(client) -> str:
    """The CSRF token of the page ``client`` is shown now (sign-in starts a new one)."""
    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)


def sign_in(client, account, token: str | None = None):
    """Sign ``client`` in as ``account`` on the page's form; the response."""
    form = {"name": account.name, "password": account.password}
    response = client.post("/login", data={**form, "csrf_token": token or csrf_token(client)})
    assert response.status_code == 302
    return response


def session_cookie(client) -> str:
    return client.get_cookie("session").value
