"""The enqueue baseline over HTTP: a minimal Flask view around ``Queue.enqueue``.

``gunicorn bench.enqueue_app:app`` with ``REDIS_URL`` set. ``POST /api/jobs`` takes
myapp's body (``{"kind": "process_run", "params": {...}}``) and enqueues the same
job function on the same queue, with no user, no row, no limit and no event: what
the HTTP server and Flask cost by themselves, between bare ``Queue.enqueue`` and
myapp.
"""

import os

from flask import Flask, request
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

app = Flask(__name__)
queue = Queue(
    "default",
    connection=Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")),
    serializer=JSONSerializer,
)


@app.post("/api/jobs")
def create_job():
    payload = request.get_json()
    job = queue.enqueue("myapp.jobs.process_run.run", kwargs=payload["params"], job_timeout=3600)
    return {"id": job.id, "status": "queued"}, 202


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
