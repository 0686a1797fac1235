"""The web worker's client sockets: one ``send`` first, ``sendall`` for whatever is left."""

import socket
import subprocess
import sys
import threading

from myapp.web.sockets import SendFirst
from tests.conftest import ROOT


def test_a_write_larger_than_the_socket_buffer_arrives_whole_and_in_order():
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.settimeout(10)  # non-blocking underneath, as under gevent: a send may be partial
    data = bytes(range(256)) * 8192  # 2 MiB: one send cannot take it all
    received = bytearray()

    def read():
        while chunk := theirs.recv(65536):
            received.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        SendFirst(ours).sendall(data)
    finally:
        ours.close()
        reader.join(timeout=10)
        theirs.close()
    assert bytes(received) == data


def test_everything_else_is_the_socket_s_own():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        wrapped = SendFirst(ours)
        assert wrapped.fileno() == ours.fileno()
        wrapped.sendall(b"hello")
        assert theirs.recv(5) == b"hello"


def test_only_the_web_server_loads_gevent():
    """The app and the RQ worker import the socket helpers, not gevent (77 ms, and
    memory in every worker): only myapp's gunicorn worker class imports it."""
    code = "import sys, myapp, myapp.web.stream, myapp.worker; print('gevent' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert loaded.stdout.split()[-1:] == ["False"], loaded.stderr
