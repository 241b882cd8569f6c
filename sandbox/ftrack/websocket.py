"""The server side of RFC 6455, as much as the event hub needs.

Text messages (fragmented or not), ping/pong, and a prompt reply to a close frame: the
client's ``close()`` waits up to three seconds for that reply, so answering at once
keeps session shutdown fast.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import struct
import threading
from typing import BinaryIO

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Larger messages close the connection rather than fill memory.
MAX_MESSAGE = 64 * 1024 * 1024

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key + _GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


class ConnectionClosed(Exception):
    pass


class WebSocket:
    """An upgraded connection: *reader* is the HTTP handler's buffered input."""

    def __init__(self, sock: socket.socket, reader: BinaryIO) -> None:
        self._sock = sock
        self._reader = reader
        self._send_lock = threading.Lock()
        self.closed = False

    def recv(self) -> str | None:
        """The next text message, or ``None`` once the connection is closed."""
        fragments: list[bytes] = []
        size = 0
        try:
            while True:
                fin, opcode, payload = self._frame()
                if opcode == OP_CLOSE:
                    self._answer_close(payload)
                    return None
                if opcode == OP_PING:
                    self._send(OP_PONG, payload)
                    continue
                if opcode == OP_PONG:
                    continue
                if opcode in (OP_TEXT, OP_BINARY):
                    fragments, size = [payload], len(payload)
                elif opcode == OP_CONTINUATION:
                    fragments.append(payload)
                    size += len(payload)
                if size > MAX_MESSAGE:
                    raise ConnectionClosed("message too large")
                if fin:
                    return b"".join(fragments).decode("utf-8", errors="replace")
        except (ConnectionClosed, OSError, ValueError):
            self.abort()
            return None

    def send_text(self, text: str) -> None:
        """Send one text message; raises :class:`ConnectionClosed` if that fails."""
        try:
            self._send(OP_TEXT, text.encode("utf-8"))
        except OSError as error:
            self.abort()
            raise ConnectionClosed(str(error)) from error

    def close(self, code: int = 1000) -> None:
        """Say goodbye with a close frame, then close the socket."""
        if not self.closed:
            with contextlib.suppress(OSError):
                self._send(OP_CLOSE, struct.pack("!H", code))
        self.abort()

    def abort(self) -> None:
        """Close the socket at once (a network failure, as far as the client can tell)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def _answer_close(self, payload: bytes) -> None:
        code = payload[:2] if len(payload) >= 2 else struct.pack("!H", 1000)
        with contextlib.suppress(OSError):
            self._send(OP_CLOSE, code)
        self.abort()

    def _frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read(2)
        fin = bool(first & 0x80)
        opcode = first & 0x0F
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        if length > MAX_MESSAGE:
            raise ConnectionClosed("frame too large")
        mask = self._read(4) if second & 0x80 else b""
        payload = self._read(length)
        return fin, opcode, _unmask(payload, mask) if mask else payload

    def _read(self, n: int) -> bytes:
        if n == 0:
            return b""
        data = self._reader.read(n)
        if not data or len(data) < n:
            raise ConnectionClosed("connection closed by peer")
        return data

    def _send(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        with self._send_lock:
            self._sock.sendall(header + payload)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
