"""The baseline: stock flask-sse, unmodified, as its README sets it up.

``gunicorn bench.stock_app:app`` with ``REDIS_URL`` set. Clients read
``/stream?channel=<channel>``; publishers call ``sse.publish(..., channel=...)``
inside ``app.app_context()`` (which opens a new Redis pool per call: that is
flask-sse's own behaviour, kept on purpose).
"""

import os

from flask import Flask
from flask_sse import sse

app = Flask(__name__)
app.config["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
app.register_blueprint(sse, url_prefix="/stream")


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
