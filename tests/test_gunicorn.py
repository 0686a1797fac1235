"""gunicorn as the Procfile runs it: how it ends streams and slow connections."""

import socket
import subprocess
import time

import requests

from tests.conftest import ROOT, free_port, wait_until, web_command
from tests.sse_client import Stream, snapshot_sent


def start_gunicorn(service_env, *options: str, **env: str) -> tuple[subprocess.Popen, str]:
    """A gunicorn of its own (the session's server is shared), with extra options."""
    port = free_port()
    process = subprocess.Popen(
        [*web_command(port)[:-1], *options, "app:app"], cwd=ROOT, env={**service_env, **env}
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: process.poll() is None and requests.get(f"{base}/healthz", timeout=1).ok)
    return process, base


def test_sigterm_ends_open_streams_at_once(service_env, worker, accounts):
    process, base = start_gunicorn(service_env, "--graceful-timeout", "20")
    try:
        alice = accounts.create()
        stream = Stream(f"{base}/stream", alice.headers)
        stream.wait_for(snapshot_sent, timeout=5)
        began = time.monotonic()
        process.terminate()
        stream._thread.join(timeout=5)
        ended = time.monotonic() - began
        assert not stream._thread.is_alive(), "the stream is still open"
        assert ended < 2.5, ended
        process.wait(timeout=15)
        assert time.monotonic() - began < 10, "well before graceful_timeout (20 s)"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_request_whose_headers_never_end_is_closed(service_env, worker):
    process, base = start_gunicorn(service_env, HEADER_TIMEOUT_SECONDS="2")
    try:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HT")  # the request line never ends
            began = time.monotonic()
            assert sock.recv(1024) == b"", "the server closes the connection"
            waited = time.monotonic() - began
        assert 1 < waited < 4, waited
    finally:
        process.terminate()
        process.wait(timeout=15)
