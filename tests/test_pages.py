"""The page's plain routes, over real HTTP."""

import requests


def test_the_favicon_is_served(server):
    response = requests.get(f"{server}/favicon.ico", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("image/svg+xml")
    assert response.content.startswith(b"<svg")
    page = requests.get(f"{server}/", timeout=5).text
    assert 'rel="icon"' in page


def test_bind_overrides_where_gunicorn_listens(monkeypatch):
    import importlib

    from myapp import gunicorn_config

    monkeypatch.setenv("BIND", "127.0.0.1:5999")
    assert importlib.reload(gunicorn_config).bind == "127.0.0.1:5999"
    monkeypatch.delenv("BIND")
    monkeypatch.setenv("PORT", "6001")
    assert importlib.reload(gunicorn_config).bind == "0.0.0.0:6001"  # the Procfile's platforms
