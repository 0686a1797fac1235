"""gunicorn settings for production: ``gunicorn -c python:myapp.gunicorn_config app:app``.

Streams are long-lived and mostly idle, so each process is one gevent worker
serving thousands of connections; add processes (``WEB_CONCURRENCY``) for CPU.
"""

import os

#: ``BIND`` (host:port) overrides; platforms that route to ``$PORT`` need all
#: interfaces, but only the proxy in front should reach gunicorn (docs/deploy.md).
bind = os.environ.get("BIND") or f"0.0.0.0:{os.environ.get('PORT', '5000')}"
#: gevent, with a cheaper write for streams (see :mod:`myapp.gunicorn_worker`).
worker_class = "myapp.gunicorn_worker.StreamingWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
#: Open connections (mostly SSE streams) per process.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "10000"))
#: For gevent workers this is the heartbeat deadline, not a request limit: a stream
#: may stay open for hours.
timeout = 30
#: On SIGTERM, streams get this long to end; clients then reconnect elsewhere and
#: replay what they missed (Last-Event-ID).
graceful_timeout = 10
#: Seconds a connection may take to send a request's headers, the first request's
#: included (gevent bounds the read with this), and may then idle between requests.
#: Kept short so half-open connections do not pile up; nginx retries a request on an
#: upstream connection that closed under it.
keepalive = int(os.environ.get("HEADER_TIMEOUT_SECONDS", "10"))
#: Trust X-Forwarded-* from the proxy in front (nginx on the same host by default).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
control_socket_disable = True
accesslog = "-"
