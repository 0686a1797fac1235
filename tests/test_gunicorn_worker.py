"""The web worker's write: one ``send`` first, ``sendall`` for whatever is left."""

import socket
import threading

from myapp.gunicorn_worker import SendFirst


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
