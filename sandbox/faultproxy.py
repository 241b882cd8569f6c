"""A loopback HTTP proxy that injects S3 failures, for retry tests.

Point an S3 client's ``endpoint_url`` at :attr:`FaultProxy.url`: requests are forwarded
to the real endpoint behind it, except those matching a :class:`Rule`, which get what
a busy or failing S3 sends: ``503 SlowDown``, ``500 InternalError`` or ``403
AccessDenied`` with S3's XML error body, or a connection reset in the middle of the
request (``reset``) or of the response body (``reset_body``).

Rules match on the method, a query key (``partNumber``, ``uploadId``, ``uploads``), the
presence of a ``Range`` header and a key substring, and fire ``count`` times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import http.server
import re
import secrets
import socket
import struct
import threading
import urllib.parse
from collections.abc import Iterable

HOST = "127.0.0.1"

#: Fault name -> (HTTP status, S3 error code, message).
ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
    "denied": (403, "AccessDenied", "Access Denied"),
}
#: ``unchecked``: answer as a server that ignores SHA-256 checksums (none echoed);
#: ``corrupt``: the same, answering with the ETag of other bytes than were sent;
#: ``signed_only``: answer as radosgw 16 does, ignoring checksum headers but refusing a
#: body whose SHA-256 is not the one it is signed with (``x-amz-content-sha256``);
#: ``corrupt_signed``: the same, with one byte of the body changed on the way.
SIGNED_ONLY = ("signed_only", "corrupt_signed")
FAULTS = (*ERRORS, "reset", "reset_body", "unchecked", "corrupt", *SIGNED_ONLY)
_CHECKSUM_HEADER = "x-amz-checksum-"
_PAYLOAD_MISMATCH = (
    "XAmzContentSHA256Mismatch",
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}


@dataclasses.dataclass
class Rule:
    """Which requests to break, how, and how many times (``count=-1``: always)."""

    fault: str
    method: str | None = None
    query: str | None = None
    range_header: bool | None = None
    key_contains: str | None = None
    count: int = 1
    #: Requests this rule has broken so far.
    hits: int = 0

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; use one of {', '.join(FAULTS)}")

    def matches(self, method: str, path: str, query: dict[str, list[str]], has_range: bool) -> bool:
        if self.count >= 0 and self.hits >= self.count:
            return False
        if self.method and self.method.upper() != method:
            return False
        if self.query and self.query not in query:
            return False
        if self.range_header is not None and self.range_header != has_range:
            return False
        return not (self.key_contains and self.key_contains not in urllib.parse.unquote(path))


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request as the proxy received it, and what it did with it."""

    method: str
    path: str
    query: str
    fault: str | None
    #: Its headers, names in lower case.
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class FaultProxy:
    """Forwards to *upstream* (``http://host:port``) and breaks requests matching rules."""

    def __init__(self, upstream: str, rules: Iterable[Rule] = ()) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"upstream must be an http://host:port URL, not {upstream!r}")
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.rules: list[Rule] = list(rules)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.seen.clear()

    def faults(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.fault]

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _decide(self, method: str, path: str, query: str, headers: dict[str, str]) -> str | None:
        parsed = urllib.parse.parse_qs(query, keep_blank_values=True)
        has_range = "range" in headers
        with self._lock:
            fault = None
            for rule in self.rules:
                if rule.matches(method, path, parsed, has_range):
                    rule.hits += 1
                    fault = rule.fault
                    break
            self.seen.append(Seen(method, path, query, fault, headers))
            return fault


def _other_etag(etag: str) -> str:
    """The ETag of different bytes: the first hex digit of the MD5 changed."""
    digits = etag.strip('"')
    changed = ("0" if digits[:1] != "0" else "1") + digits[1:]
    return f'"{changed}"'


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Broken connections are what this server is for; nothing to report.
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault = self.owner._decide(self.command, path, query, headers)
        if fault == "reset":
            # Take part of the body, then drop the connection the hard way (RST).
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(min(length, max(1, length // 2)))
            self._reset()
            return
        body = self._read_body()
        if fault in ERRORS:
            self._send_error_xml(*ERRORS[fault], path)
            return
        if fault == "corrupt_signed" and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        signed = headers.get("x-amz-content-sha256", "")
        if (
            fault in SIGNED_ONLY
            and re.fullmatch(r"[0-9a-f]{64}", signed)
            and hashlib.sha256(body).hexdigest() != signed
        ):
            self._send_error_xml(400, *_PAYLOAD_MISMATCH, path)
            return
        status, reason, answer, payload = self._forward(body)
        if fault in ("unchecked", "corrupt", *SIGNED_ONLY):
            answer = [(k, v) for k, v in answer if not k.lower().startswith(_CHECKSUM_HEADER)]
        if fault == "corrupt":
            answer = [(k, _other_etag(v) if k.lower() == "etag" else v) for k, v in answer]
        if fault == "reset_body" and self.command != "HEAD":
            self.send_response(status, reason)
            for name, value in answer:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._reset()
            return
        self.send_response(status, reason)
        for name, value in answer:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            pieces = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(pieces)
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            out = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            if not any(k.lower() == "content-length" for k, _ in out):
                out.append(("Content-Length", str(len(payload))))
            return response.status, response.reason, out, payload
        finally:
            connection.close()

    def _send_error_xml(self, status: int, code: str, message: str, resource: str) -> None:
        request_id = secrets.token_hex(8).upper()
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{resource}</Resource><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", request_id)
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()
