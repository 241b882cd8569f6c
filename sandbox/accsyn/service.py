"""The loopback accsyn service: an HTTP server the unmodified ``accsyn_api.Session`` talks
to, and the Python handle tests and the demo drive it with.

Wire protocol as the 3.4 client speaks it: ``PUT /api/v3/api/login`` with
``Authorization: basic <b64 user>:<b64 key>`` and ``X-Accsyn-Workspace``; every other
call on ``/api/v3/event`` with an envelope (URL-quoted JSON as the whole query string for
GET/DELETE, a JSON body for POST/PUT, ``gz_data`` = base64 of gzipped JSON for large
payloads); replies ``{"result": ...}``, refusals ``{"message", "message_hr"}``, crashes
``{"exception"}``. The workspace host lookup the client makes when it has no hostname
(``GET /api/v3/J3PKTtDvolDMBtTy6AFGA``) answers with this server's own address.

Admin endpoints for other processes: ``GET /sandbox/health`` and
``GET|POST|DELETE /sandbox/faults`` (``Authorization: Bearer <api key>``).
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import dataclasses
import gzip
import http.server
import json
import logging
import os
import pathlib
import secrets
import socket
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from .api import Api, entity_type
from .executor import Executor
from .faults import FaultRule, Faults
from .model import ServiceError
from .parties import PartyDirectory
from .store import Store

logger = logging.getLogger(__name__)

T = TypeVar("T")

MASTER_PATH = "/api/v3/J3PKTtDvolDMBtTy6AFGA"
LOGIN_PATH = "/api/v3/api/login"
EVENT_PATH = "/api/v3/event"
STATE_FILE = "accsyn-state.json"
CREDENTIALS_FILE = "accsyn-credentials.env"
_LOOPBACK = ("127.0.0.1", "localhost")


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request as the service saw it (tests assert on these)."""

    method: str
    path: str
    uri: str  # envelope uri, "api/login" or "master"
    gz_data: bool = False
    fault: str | None = None
    error: str | None = None


class AccsynService:
    """An accsyn workspace on loopback whose transfers really copy files between folders.

    Each party (``site=<code>`` or a user e-mail) has a root folder; transfer paths are
    relative to it (see :mod:`.parties`). Use as a context manager or call
    :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        state_dir: pathlib.Path,
        workspace: str = "sandbox",
        parties: dict[str, pathlib.Path] | None = None,
        api_user: str = "pipeline@studio.example",
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_size: int = 1 << 20,
        bandwidth: float | None = None,
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError(f"The sandbox binds loopback only, not {host!r}")
        self.state_dir = pathlib.Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.workspace = workspace
        self.api_user = api_user
        self.host = host
        self._requested_port = port
        self.faults = Faults()
        self.store = Store(workspace, PartyDirectory(workspace))
        self.executor = Executor(self.store, self.faults, chunk_size, bandwidth)
        self.requests: collections.deque[RequestRecord] = collections.deque(maxlen=10_000)
        self._api = Api(self.store)
        self._sessions: dict[str, str] = {}  # session id -> user id
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        state = self.state_dir / STATE_FILE
        if state.is_file():
            self.store.load_json(json.loads(state.read_text()))
        self.api_key = self.store.api_keys.get(api_user.lower()) or secrets.token_urlsafe(24)
        self.store.add_user(api_user, None, "admin", self.api_key)
        if not self.store.entities["volume"]:
            self.store.add_volume("root", "", default=True)
        default_parties = {"site=hq": self.state_dir / "roots" / "hq"}
        for party, root in (parties if parties is not None else default_parties).items():
            if party.lower().startswith("site="):
                self.add_site(party[5:], root)
            else:
                self.add_user(party, root)
        # Always empty: the client loads this instead of a ./.env that could override us.
        self.credentials_path = self.state_dir / CREDENTIALS_FILE
        self.credentials_path.write_text("")

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> AccsynService:
        if self._server is not None:
            return self
        self._closing.clear()
        self._server = _Server((self.host, self._requested_port), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="accsyn-http",
            daemon=True,
        )
        self._thread.start()
        self.executor.start()
        return self

    def stop(self) -> None:
        """Stop serving, stop transfers after their current chunk, and save the state."""
        if self._server is None:
            return
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None
        self.executor.stop()
        self.save()

    def __enter__(self) -> AccsynService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def save(self) -> None:
        """Write the state so a service started on the same folder carries on."""
        path = self.state_dir / STATE_FILE
        temporary = path.with_suffix(".tmp")
        # The state holds API keys: readable by the owner only.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.store.to_json(), handle)
        os.replace(temporary, path)

    # -- addresses and credentials --------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The service is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """What ``accsyn_api.Session()`` needs, with no arguments, to use this service."""
        return {
            "ACCSYN_WORKSPACE": self.workspace,
            "ACCSYN_API_USER": self.api_user,
            "ACCSYN_API_KEY": self.api_key,
            "ACCSYN_PROXY": f"{self.host}:{self.port}",
            # An empty file, so the client never loads a ./.env over these values.
            "ACCSYN_CREDENTIALS_PATH": str(self.credentials_path),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    def api_key_for(self, email: str) -> str:
        return self.store.api_keys[email.lower()]

    def expire_sessions(self) -> None:
        """Forget every login, as a backend restart would: clients must log in again."""
        with self.store.lock:
            self._sessions.clear()

    # -- parties --------------------------------------------------------------------------

    def add_site(
        self, code: str, root: pathlib.Path | None = None, *, main: bool = False
    ) -> pathlib.Path:
        root = pathlib.Path(root) if root is not None else self.state_dir / "roots" / code
        root.mkdir(parents=True, exist_ok=True)
        self.store.add_site(code, root, main=main)
        return root

    def add_user(
        self, email: str, root: pathlib.Path | None = None, role: str = "standard"
    ) -> pathlib.Path:
        """Register a user with their own folder and API key (see :meth:`api_key_for`)."""
        root = pathlib.Path(root) if root is not None else self.state_dir / "roots" / email
        root.mkdir(parents=True, exist_ok=True)
        self.store.add_user(email, root, role, secrets.token_urlsafe(24))
        return root

    def add_volume(self, code: str, folder: str = "", *, default: bool = False) -> None:
        """A volume is a folder inside every party root (``""`` = the root itself)."""
        self.store.add_volume(code, folder, default=default)

    def root(self, party: str) -> pathlib.Path:
        found = self.store.directory.find(party)
        if found is None:
            raise KeyError(f"No party {party!r}")
        return found.root

    def path(self, spec: str) -> pathlib.Path:
        """The local file behind ``<party>:<path>``."""
        return self.store.directory.resolve(spec).local()

    def set_setting(self, name: str, value: Any, **scope: Any) -> None:
        """Scope keys: ``entitytype``, ``entity_id``, ``integration``, ``data``."""
        self.store.set_setting(name, value, **scope)

    # -- observing ------------------------------------------------------------------------

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        with self.store.lock:
            found = self.store.find("transfer", None, {}, transfer_id)
        if not found:
            raise KeyError(f"No transfer {transfer_id}")
        return found[0]

    def transfers(self, include_finished: bool = True) -> list[dict[str, Any]]:
        return self.store.find("transfer", None, {"finished": include_finished}, None)

    def tasks(self, transfer_id: str) -> list[dict[str, Any]]:
        return self.store.find("task", None, {"parent": transfer_id}, None)

    def calls(self, uri: str | None = None) -> list[RequestRecord]:
        """Requests received, optionally only those for one envelope uri (aliases folded)."""
        records = list(self.requests)
        if uri is None:
            return records
        wanted = _fold(uri)
        return [r for r in records if _fold(r.uri) == wanted]

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, message: str = "") -> T:
        """Wait until *predicate* returns something truthy, and return it.

        Wakes on every state change (and at least every 20 ms, for conditions on files),
        so tests never sleep a fixed time. Raises ``TimeoutError`` with *message*.
        """
        deadline = time.monotonic() + timeout
        while True:
            checked = time.monotonic()
            # Evaluated without the lock: a predicate may call this service over HTTP.
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(message or f"Condition not met within {timeout} s")
            with self.store.lock:
                self.store.changed.wait(min(left, 0.02))
            # Changes come once per chunk: re-checking on each would starve the copying.
            time.sleep(max(0.0, checked + 0.01 - time.monotonic()))

    def wait_for_transfer(
        self,
        transfer_id: str,
        statuses: tuple[str, ...] = ("done", "failed", "aborted"),
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """The transfer once its status is one of *statuses*."""

        def reached() -> dict[str, Any] | None:
            view = self.transfer(transfer_id)
            return view if view["status"] in statuses else None

        try:
            return self.wait_for(reached, timeout)
        except TimeoutError:
            view = self.transfer(transfer_id)
            raise TimeoutError(
                f"Transfer {transfer_id} is {view['status']} ({view['progress']}%), "
                f"not {'/'.join(statuses)}, after {timeout} s"
            ) from None

    # -- request handling (called by the HTTP handler) ------------------------------------

    def _login(self, headers: Any) -> dict[str, Any]:
        user = self._authenticate(headers)
        session_id = secrets.token_hex(16)
        with self.store.lock:
            self._sessions[session_id] = user["id"]
        return {"id": user["id"], "role": user["role"], "session_id": session_id}

    def _authenticate(self, headers: Any) -> dict[str, Any]:
        scheme, _, credentials = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic" or ":" not in credentials:
            raise ServiceError("Authentication required: no accsyn API user and key were sent")
        encoded_user, _, encoded_key = credentials.partition(":")
        try:
            email = base64.b64decode(encoded_user, validate=True).decode()
            key = base64.b64decode(encoded_key, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ServiceError("Authentication failed: malformed Authorization header") from None
        workspace = headers.get("X-Accsyn-Workspace") or ""
        if workspace.lower() != self.workspace.lower():
            raise ServiceError(
                f"Authentication failed: unknown workspace {workspace!r} "
                f"(this service hosts {self.workspace!r})"
            )
        with self.store.lock:
            user = self.store.user_by_email(email)
            expected = self.store.api_keys.get(email.lower(), "")
        if user is None or not secrets.compare_digest(key.encode(), expected.encode()):
            raise ServiceError(
                f"Authentication failed: invalid API key for {email} in workspace "
                f"{self.workspace}, check ACCSYN_API_USER and ACCSYN_API_KEY"
            )
        if user.get("status") == "disabled":
            raise ServiceError(f"Authentication failed: user {email} is disabled")
        return user

    def _event(self, method: str, headers: Any, envelope: dict[str, Any]) -> Any:
        user = self._authenticate(headers)
        with self.store.lock:
            session_user = self._sessions.get(str(envelope.get("session")))
        if session_user != user["id"]:
            raise ServiceError(
                "Session unknown or expired: log in again",
                "Your accsyn session has expired, please log in again.",
            )
        if str(envelope.get("workspace", "")).lower() != self.workspace.lower():
            raise ServiceError(f"The event is for workspace {envelope.get('workspace')!r}")
        return self._api.handle(method, envelope, user)

    def _master(self, query: str) -> dict[str, Any]:
        try:
            ident = json.loads(urllib.parse.unquote(query)).get("ident", "")
        except ValueError:
            raise ServiceError("Malformed workspace lookup") from None
        if str(ident).lower() != self.workspace.lower():
            raise ServiceError(f"Workspace {ident!r} does not exist")
        return {"hostname": self.host, "port": self.port}

    def _admin_allowed(self, headers: Any) -> bool:
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer":
            return secrets.compare_digest(token.strip().encode(), self.api_key.encode())
        try:
            return self._authenticate(headers)["role"] == "admin"
        except ServiceError:
            return False


def _fold(uri: str) -> str:
    head, sep, tail = uri.strip("/").lower().partition("/")
    return entity_type(head) + sep + tail


def decode_envelope(method: str, query: str, body: bytes) -> tuple[dict[str, Any], bool]:
    """The event envelope of a request, with ``gz_data`` expanded into ``data``."""
    raw = urllib.parse.unquote(query) if method in ("GET", "DELETE") else body.decode()
    if not raw.strip():
        raise ServiceError("No event envelope was sent")
    try:
        envelope = json.loads(raw)
    except ValueError:
        raise ServiceError("The event envelope is not JSON") from None
    if not isinstance(envelope, dict) or "uri" not in envelope:
        raise ServiceError("The event envelope has no uri")
    compressed = "gz_data" in envelope
    if compressed:
        try:
            packed = base64.b64decode(envelope.pop("gz_data"), validate=True)
            envelope["data"] = json.loads(gzip.decompress(packed))
        except (binascii.Error, OSError, ValueError):
            raise ServiceError("gz_data is not base64 of gzipped JSON") from None
    return envelope, compressed


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, service: AccsynService) -> None:
        self.service = service
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, dropped socket) is part of the game here.
        logger.debug("Request from %s ended with an error", client_address, exc_info=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    server_version = "accsyn-sandbox"
    timeout = 60

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _dispatch(self, method: str) -> None:
        service = self.server.service
        url = urllib.parse.urlsplit(self.path)
        uri, compressed, fault_mode = url.path, False, None
        try:
            body = self._body()
            if url.path.startswith("/sandbox/"):
                self._admin(method, url, body)
                return
            if url.path == MASTER_PATH and method == "GET":
                uri, action = "master", lambda: service._master(url.query)
            elif url.path == LOGIN_PATH and method == "PUT":
                uri, action = "api/login", lambda: service._login(self.headers)
            elif url.path == EVENT_PATH:
                envelope, compressed = decode_envelope(method, url.query, body)
                uri = str(envelope["uri"])
                action = lambda: service._event(method, self.headers, envelope)  # noqa: E731
            else:
                raise ServiceError(f"No such endpoint: {method} {url.path}")
            fault = service.faults.take_request(uri, method)
            if fault is not None:
                fault_mode = fault.mode
                if fault.mode != "slow":  # recorded before the client can see the reply
                    record = RequestRecord(method, url.path, uri, compressed, fault_mode)
                    service.requests.append(record)
                if self._fault(fault):
                    return
            result = action()
        except ServiceError as refusal:
            service.requests.append(
                RequestRecord(method, url.path, uri, compressed, fault_mode, refusal.message)
            )
            self._json(400, {"message": refusal.message, "message_hr": refusal.message_hr})
            return
        except Exception:
            logger.exception("The sandbox failed on %s %s", method, uri)
            service.requests.append(
                RequestRecord(method, url.path, uri, compressed, fault_mode, "exception")
            )
            self._json(500, {"exception": traceback.format_exc()})
            return
        service.requests.append(RequestRecord(method, url.path, uri, compressed, fault_mode))
        self._json(200, {"result": result})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _fault(self, fault: FaultRule) -> bool:
        """Apply *fault*; True when the request is answered (or dropped) by it."""
        if fault.mode == "slow":
            self.server.service._closing.wait(fault.delay)
            return False  # then answer normally: the client has given up by now
        if fault.mode == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if fault.mode == "error":
            self._json(400, {"message": fault.message, "message_hr": fault.message})
        elif fault.mode == "exception":
            self._json(500, {"exception": f"Traceback (most recent call last):\n{fault.message}"})
        else:
            code = 429 if fault.mode == "http429" else 502
            reason = "Too Many Requests" if code == 429 else "Bad Gateway"
            page = f"<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}"
            self._send(
                code,
                (page + "</h1></body></html>").encode(),
                "text/html",
                {"Retry-After": "1"} if code == 429 else {},
            )
        return True

    def _admin(self, method: str, url: urllib.parse.SplitResult, body: bytes) -> None:
        service = self.server.service
        if url.path == "/sandbox/health" and method == "GET":
            self._json(200, {"result": {"workspace": service.workspace, "port": service.port}})
            return
        if url.path != "/sandbox/faults":
            self._json(404, {"message": f"No such endpoint: {method} {url.path}"})
            return
        if not service._admin_allowed(self.headers):
            self._json(401, {"message": "The fault API needs the service's API key"})
            return
        if method == "GET":
            self._json(200, {"result": [r.to_json() for r in service.faults.rules]})
        elif method == "POST":
            try:
                rule = service.faults.add_rule(FaultRule.from_json(json.loads(body or b"{}")))
            except (TypeError, ValueError) as error:
                self._json(400, {"message": f"Invalid fault rule: {error}"})
                return
            self._json(200, {"result": rule.to_json()})
        elif method == "DELETE":
            rule_id = urllib.parse.parse_qs(url.query).get("id", [None])[0]
            if rule_id:
                self._json(200, {"result": service.faults.remove(rule_id)})
            else:
                service.faults.clear()
                self._json(200, {"result": True})
        else:
            self._json(405, {"message": f"{method} is not supported on /sandbox/faults"})

    def _json(self, code: int, payload: dict[str, Any]) -> None:
        self._send(code, json.dumps(payload).encode(), "application/json")

    def _send(
        self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client is gone (it timed out, or the socket was dropped)
