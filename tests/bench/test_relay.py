"""The benchmark relay: bytes pass both ways unchanged, and a delayed relay holds them
back for its delay (the ``wan`` cases stand on both)."""

from __future__ import annotations

import os
import socket
import threading
import time

from bench.relay import Relay


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            while data := connection.recv(65536):
                connection.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def _round_trip(relay: Relay, payload: bytes) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", relay.port)) as client:
        started = time.monotonic()
        sender = threading.Thread(
            target=lambda: (client.sendall(payload), client.shutdown(socket.SHUT_WR))
        )
        sender.start()
        back = bytearray()
        while data := client.recv(65536):
            back += data
        sender.join()
        return bytes(back), time.monotonic() - started


def test_a_delayed_relay_passes_every_byte_in_order_after_its_delay() -> None:
    server, port = _echo_server()
    relay = Relay("127.0.0.1", port, delay=0.05)
    try:
        payload = os.urandom(3 * 1024 * 1024)
        back, seconds = _round_trip(relay, payload)
        assert back == payload
        assert relay.bytes_up == len(payload)
        # Up and back down: each byte waits the delay twice (a lower bound, not a speed).
        assert seconds >= 0.1
    finally:
        relay.close()
        server.close()


def test_an_undelayed_relay_passes_every_byte() -> None:
    server, port = _echo_server()
    relay = Relay("127.0.0.1", port)
    try:
        payload = os.urandom(1024 * 1024)
        back, _ = _round_trip(relay, payload)
        assert back == payload
    finally:
        relay.close()
        server.close()
