"""A loopback TCP relay: counts the bytes a client sends, and can hold them back.

How much an interrupted transfer sends again has to be measured outside the product:
the client is pointed at the relay instead of the server, and the relay counts every
byte on the way up. Comparing an uninterrupted run with a killed-and-resumed one gives
the bytes sent twice, protocol overhead included on both sides. An optional rate limit
(bytes per second, shared by all connections) makes the half-way point easy to hit
with small files.

An optional one-way *delay* makes it a link between two sites: every byte is passed on
that long after it arrived, in both directions, so each connection sees the round-trip
time of a WAN while bandwidth stays loopback's (the ``wan`` cases). The bytes in transit
are bounded per direction, as a real link's are by its bandwidth-delay product.

*reset_first* resets that many connections on arrival, as a server dropping sessions
does (the SFTP tests' dropped login).
"""

from __future__ import annotations

import collections
import contextlib
import socket
import struct
import threading
import time

HOST = "127.0.0.1"
_BLOCK = 256 * 1024
#: Bytes held in transit per direction of a delayed connection (a 20 ms round trip at
#: 3 GiB/s): far above what any SSH window or TCP buffer puts in flight, so the link's
#: latency, not this bound, is what the connection sees.
_IN_TRANSIT = 64 * 1024 * 1024


def host_port(url: str) -> tuple[str, int]:
    """``(host, port)`` of an ``http://host:port`` URL (a server to relay to)."""
    host, _, port = url.split("://", 1)[1].rstrip("/").rpartition(":")
    return host, int(port)


class Relay:
    def __init__(
        self,
        target_host: str,
        target_port: int,
        rate: float | None = None,
        delay: float = 0.0,
        reset_first: int = 0,
    ) -> None:
        self.target = (target_host, target_port)
        self.rate = rate
        self.delay = delay
        #: Connections to reset on arrival, as a server dropping sessions does.
        self.reset_first = reset_first
        #: Connections accepted so far, reset ones included.
        self.accepted = 0
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
            self.accepted += 1
            if self.accepted <= self.reset_first:
                # SO_LINGER 0: the close is a reset, not an orderly end.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.update((client, server))
            ends = [2]  # pumps still running on this pair
            for source, sink, up in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, up, ends), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool, ends: list[int]) -> None:
        line = _DelayLine(sink, self.delay) if self.delay > 0 else None
        clean = False
        try:
            while True:
                data = source.recv(_BLOCK)
                if not data:
                    clean = True
                    break
                if up:
                    self._pace(len(data))
                if line is None:
                    sink.sendall(data)
                elif not line.put(data):
                    break
        except OSError:
            pass
        finally:
            if line is not None:
                line.drain()  # what is in transit still arrives, then the end of stream
            with self._lock:
                ends[0] -= 1
                last = ends[0] == 0
            # An end of stream is passed on as one (the other direction keeps going, as
            # TCP allows); a failure cuts both directions.
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR if clean and not last else socket.SHUT_RDWR)
            if last or not clean:
                self._close_pair(source, sink)

    def _close_pair(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            self._sockets.difference_update(sockets)

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


class _DelayLine:
    """Passes data on to *sink* *delay* seconds after it was put, in order."""

    def __init__(self, sink: socket.socket, delay: float) -> None:
        self.sink = sink
        self.delay = delay
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.held = 0
        self.ended = False
        self.broken = False
        self.changed = threading.Condition()
        self.sender = threading.Thread(target=self._send, name="relay-delay", daemon=True)
        self.sender.start()

    def put(self, data: bytes) -> bool:
        """Queue *data*; False once the sink is gone."""
        with self.changed:
            while self.held > _IN_TRANSIT and not self.broken:
                self.changed.wait()
            if self.broken:
                return False
            self.queue.append((time.monotonic() + self.delay, data))
            self.held += len(data)
            self.changed.notify_all()
        return True

    def drain(self) -> None:
        with self.changed:
            self.ended = True
            self.changed.notify_all()
        self.sender.join(timeout=self.delay + 5)

    def _send(self) -> None:
        while True:
            with self.changed:
                while not self.queue and not self.ended:
                    self.changed.wait()
                if not self.queue:
                    return
                due, data = self.queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                self.sink.sendall(data)
            except OSError:
                with self.changed:
                    self.broken = True
                    self.changed.notify_all()
                return
            with self.changed:
                self.held -= len(data)
                self.changed.notify_all()
