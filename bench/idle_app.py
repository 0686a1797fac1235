"""The capacity floor: the least a stream can hold on the same server and framework.

``gunicorn bench.idle_app:app``: ``GET /stream`` answers an SSE response that sends
one event at once (what the clients wait for) and then a comment every
``STREAM_HEARTBEAT_SECONDS`` (15 s, as myapp's default), from a Flask view's
generator on the same gunicorn gevent worker: no user, no Redis, no database.
"""

import os
import time

from flask import Flask

app = Flask(__name__)
HEARTBEAT = float(os.environ.get("STREAM_HEARTBEAT_SECONDS", "15"))


@app.get("/stream")
def stream():
    def events():
        yield "event:snapshot\ndata:{}\n\n"
        while True:
            time.sleep(HEARTBEAT)  # gevent's, once gunicorn's worker has patched time
            yield ": keepalive\n\n"

    return app.response_class(events(), mimetype="text/event-stream")


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
