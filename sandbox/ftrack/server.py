"""The loopback ftrack server: ``/api`` and the event hub on one port.

::

    with FtrackServer() as server:
        session = ftrack_api.Session(
            server_url=server.url, api_user="pipeline", api_key=server.api_key
        )

It binds a loopback address only. With ``state_dir`` it keeps its entities and keys in
a JSON file there and picks them up again on the next start.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import json
import logging
import pathlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from . import persistence, query
from .api import Api, Counters, Credentials, Stats
from .errors import InvalidCredentialsError, SandboxError
from .eventhub import EventHub, SubscriberInfo
from .faults import Faults
from .schema import Schema, default_schema
from .seed import SeedInfo, bootstrap, seed_demo
from .store import Record, Store
from .websocket import WebSocket, accept_key

log = logging.getLogger(__name__)

_HANDSHAKE_PATH = "/socket.io/1/"
_WEBSOCKET_PREFIX = "/socket.io/1/websocket/"


class FtrackServer:
    """An ftrack-compatible server for the unmodified ``ftrack_api.Session``.

    - ``url``, ``api_key`` (valid for any active user), ``user_key(username)``;
    - ``seed_info``: ids of the demo studio (``None`` with ``seed=False``, which leaves
      only the built-in locations and the ``pipeline`` service account);
    - ``stats`` / ``reset_stats()`` / ``request_log``: what clients sent;
    - ``query(expression)``: rows as the server sees them, without a session;
    - ``wait_for_subscribers(...)``, ``subscribers()``, ``publish_event(...)``,
      ``drop_event_hub_connections()``: the event hub;
    - ``faults``: failing, slow or dropped requests (:class:`~.faults.Faults`);
    - ``store``: the entity store itself (hold ``store.lock`` while reading it).

    ``heartbeat_interval`` is how long a hub connection may stay silent before the
    server sends a heartbeat; ``persist_interval`` how long a burst of commits is
    coalesced before the state file is rewritten.
    """

    def __init__(
        self,
        state_dir: pathlib.Path | str | None = None,
        seed: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        heartbeat_interval: float = 20.0,
        persist_interval: float = 0.2,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"The sandbox ftrack server binds loopback only, not {host!r}.")
        self.host = host
        self.port = port
        self.state_dir = pathlib.Path(state_dir) if state_dir is not None else None
        self.schema: Schema = default_schema()
        #: Direct access for tests that inspect state (take ``store.lock`` to read).
        self.store = Store(self.schema)
        self.faults = Faults()
        self.seed_info: SeedInfo | None = None
        self._seed = seed
        self._counters = Counters()
        self._credentials = Credentials()
        self.hub = EventHub(heartbeat_interval, on_delivery=self._delivered)
        self._api = Api(
            self.store,
            self._credentials,
            self._counters,
            publish=self._publish_update,
            wants_updates=self._wants_updates,
            on_commit=self._committed,
            source_id=self.hub.source_id,
        )
        self._persist_interval = persist_interval
        self._writer: persistence.StateWriter | None = None
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> FtrackServer:
        if self._httpd is not None:
            return self
        self._load_or_seed()
        self._httpd = _HttpServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"ftrack-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info("sandbox ftrack server on %s", self.url)
        return self

    def stop(self) -> None:
        """Close hub connections and open sockets, then save the state (with a state_dir)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.hub.close()
        httpd.shutdown()
        httpd.server_close()
        with self._sockets_lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        # A stopped server may be started again: the hub starts fresh.
        self.hub = EventHub(self.hub.heartbeat_interval, on_delivery=self._delivered)

    def __enter__(self) -> FtrackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    # -- what tests and demos use ---------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        """A server-wide API key, valid for any active user."""
        return self._credentials.api_key

    def user_key(self, username: str) -> str:
        """The personal API key of *username* (created on first use, then kept)."""
        with self.store.lock:
            if not self.store.lookup("User", "username", username):
                raise KeyError(f"No user '{username}' on this server.")
        key, created = self._credentials.key_for(username)
        if created:
            self._committed()
        return key

    @property
    def stats(self) -> Stats:
        return self._counters.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters and clear :attr:`request_log`."""
        self._counters.reset()

    @property
    def request_log(self) -> list[list[Any]]:
        """Every ``/api`` batch received (decoded), oldest first, since the last reset."""
        return self._counters.request_log()

    def wait_for_subscribers(
        self,
        predicate_or_count: int | str | Callable[[SubscriberInfo], bool] = 1,
        timeout: float = 10.0,
        *,
        count: int | None = None,
    ) -> list[SubscriberInfo]:
        """Wait until event hub subscribers are registered (see :meth:`EventHub.wait_for_subscribers`)."""
        return self.hub.wait_for_subscribers(predicate_or_count, timeout, count=count)

    def query(self, expression: str) -> list[dict[str, Any]]:
        """Rows of *expression* as the server would send them, all pages, no session needed.

        For tests that check what the server holds: ``server.query("select resource_identifier
        from ComponentLocation where location_id is <id>")``.
        """
        with self.store.lock:
            compiled = query.CompiledQuery(self.store, query.parse(expression))
            return compiled.all_rows()

    def subscribers(self) -> list[SubscriberInfo]:
        return self.hub.subscribers()

    def publish_event(
        self, topic: str, data: dict[str, Any], target: str = "", user: str | None = None
    ) -> str:
        """Publish a server-originated event to hub subscribers; return its id.

        With *user* (a username) the event's source carries that user, as events from
        the web UI do.
        """
        source_user: Record | None = None
        if user is not None:
            with self.store.lock:
                found = self.store.lookup("User", "username", user)
            if not found:
                raise KeyError(f"No user '{user}' on this server.")
            source_user = found[0]
        event = self.hub.server_event(topic, data, target, source_user)
        self.hub.publish(event)
        return str(event["id"])

    def drop_event_hub_connections(self) -> int:
        """Cut every event hub connection (clients reconnect on their own)."""
        return self.hub.drop_connections()

    def save(self) -> None:
        """Write the state file now (with a state_dir)."""
        if self._writer is not None:
            self._writer.flush()

    # -- internals ------------------------------------------------------------------------

    def _load_or_seed(self) -> None:
        state = persistence.load(self.state_dir) if self.state_dir is not None else None
        if state is not None:
            self.store.load(state.get("entities", []))
            self._credentials = Credentials(state.get("api_key"), state.get("user_keys"))
            seed_info = state.get("seed_info")
            self.seed_info = SeedInfo.from_json(seed_info) if seed_info else None
        elif self.store.count("Location") == 0:
            if self._seed:
                self.seed_info = seed_demo(self.store)
            else:
                bootstrap(self.store)
        self._api.credentials = self._credentials
        if self.state_dir is not None:
            self._writer = persistence.StateWriter(
                self.state_dir, self._state, interval=self._persist_interval
            )
            self._writer.flush()
            self._writer.start()

    def _state(self) -> dict[str, Any]:
        return {
            "api_key": self._credentials.api_key,
            "user_keys": dict(self._credentials.user_keys),
            "seed_info": self.seed_info.to_json() if self.seed_info else None,
            "entities": self.store.snapshot(),
        }

    def _committed(self) -> None:
        if self._writer is not None:
            self._writer.mark_dirty()

    def _wants_updates(self) -> bool:
        return self.hub.may_want("ftrack.update")

    def _publish_update(self, event: dict[str, Any]) -> None:
        self.hub.publish_later(event)

    def _delivered(self, count: int) -> None:
        self._counters.add("events_published")
        if count:
            self._counters.add("events_delivered", count)

    def _handle_api(self, handler: _Handler, body: bytes) -> tuple[int, bytes, str] | None:
        """Status, body and content type of an ``/api`` answer; ``None`` to drop it."""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            batch = self._api.decode(body)
        except SandboxError as error:
            self._counters.request([])
            status, payload = self._api.error_response(error, headers)
            return status, _json(payload), "application/json"
        self._counters.request(batch)
        faults = self.faults.take(batch)
        if faults:
            self._counters.add("faults")
        for fault in faults:
            if fault.kind == "delay":
                time.sleep(fault.seconds)
        final = next((f for f in faults if f.kind in ("fail", "drop")), None)
        if final is not None and not final.after_commit:
            return _fault_answer(final)
        status, payload = self._api.handle(headers, batch)
        if final is not None:
            return _fault_answer(final)
        return status, _json(payload), "application/json"

    def _handshake(self, handler: _Handler) -> tuple[int, str]:
        status = self.faults.take_handshake()
        if status is not None:
            self._counters.add("faults")
            return status, "Event server unavailable."
        try:
            user = self._credentials.authenticate(
                self.store,
                handler.headers.get("ftrack-user"),
                handler.headers.get("ftrack-api-key"),
            )
        except InvalidCredentialsError as error:
            return 401, error.message
        return 200, self.hub.handshake(user)

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._sockets_lock:
            if add:
                self._sockets.add(sock)
            else:
                self._sockets.discard(sock)


def _fault_answer(fault: Any) -> tuple[int, bytes, str] | None:
    if fault.kind == "drop":
        return None
    if fault.json_body:
        payload = {
            "exception": "ServiceUnavailableError",
            "content": f"Injected fault: the server answered {fault.status}.",
            "error_code": None,
        }
        return fault.status, _json(payload), "application/json"
    page = f"<html><body><h1>{fault.status}</h1>Injected fault.</body></html>"
    return fault.status, page.encode("utf-8"), "text/html"


def _json(payload: Any) -> bytes:
    return json.dumps(payload).encode("utf-8")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, app: FtrackServer) -> None:
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that drop a connection (killed processes, fault tests) are expected;
        # socketserver's default would print a traceback on stderr.
        log.debug("request from %s ended with an error", client_address, exc_info=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ftrack-sandbox"
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.app._track(self.connection, True)

    def finish(self) -> None:
        self.server.app._track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path != "/api":
            self._send(404, b"Not found.", "text/plain")
            return
        answer = self.server.app._handle_api(self, body)
        if answer is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(*answer)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        app = self.server.app
        if path.rstrip("/") == _HANDSHAKE_PATH.rstrip("/"):
            status, text = app._handshake(self)
            self._send(status, text.encode("utf-8"), "text/plain")
        elif path.startswith(_WEBSOCKET_PREFIX):
            self._upgrade(path[len(_WEBSOCKET_PREFIX) :].strip("/"))
        else:
            self._send(404, b"Not found.", "text/plain")

    def _upgrade(self, sid: str) -> None:
        app = self.server.app
        key = self.headers.get("Sec-WebSocket-Key")
        if "websocket" not in (self.headers.get("Upgrade") or "").lower() or not key:
            self._send(400, b"Expected a websocket upgrade.", "text/plain")
            return
        user = app.hub.claim(sid)
        if user is None:
            self._send(403, b"Unknown or expired session id.", "text/plain")
            return
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        app.hub.serve(sid, user, WebSocket(self.connection, self.rfile))

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True
