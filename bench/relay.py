"""A loopback TCP relay that counts the bytes a client sends, for the resume case.

How much an interrupted transfer sends again has to be measured outside the product:
the client is pointed at the relay instead of the server, and the relay counts every
byte on the way up. Comparing an uninterrupted run with a killed-and-resumed one gives
the bytes sent twice, protocol overhead included on both sides. An optional rate limit
(bytes per second, shared by all connections) makes the half-way point easy to hit
with small files.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

HOST = "127.0.0.1"
_BLOCK = 256 * 1024


class Relay:
    def __init__(self, target_host: str, target_port: int, rate: float | None = None) -> None:
        self.target = (target_host, target_port)
        self.rate = rate
        self._lock = threading.Lock()
        self._up = 0
        self._allowance = 0.0
        self._last = time.monotonic()
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    @property
    def bytes_up(self) -> int:
        with self._lock:
            return self._up

    def reset(self) -> None:
        with self._lock:
            self._up = 0

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.update((client, server))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while True:
                data = source.recv(_BLOCK)
                if not data:
                    break
                if up:
                    self._pace(len(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)

    def _pace(self, nbytes: int) -> None:
        with self._lock:
            self._up += nbytes
            if not self.rate:
                return
            now = time.monotonic()
            self._allowance = min(self.rate, self._allowance + (now - self._last) * self.rate)
            self._last = now
            self._allowance -= nbytes
            wait = -self._allowance / self.rate if self._allowance < 0 else 0.0
        if wait:
            time.sleep(wait)
