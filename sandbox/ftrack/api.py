"""``POST /api``: authentication, the six actions, error shapes, counters.

A request is a JSON list of operations answered by a list of results in the same order.
A batch with writes runs in one store transaction: if any operation fails, nothing of
the batch stays and the client gets one error object (``exception``, ``content``,
``error_code``), with HTTP 200 unless it sent ``ftrack-strict-api: true``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any

from . import query
from .errors import (
    InvalidCredentialsError,
    MalformedRequestError,
    SandboxError,
    UnsupportedActionError,
)
from .schema import Scalar
from .store import TYPE, Record, Store
from .updates import update_event
from .writes import Writer

log = logging.getLogger(__name__)

SERVER_VERSION = "4.14.0"
WRITE_ACTIONS = frozenset({"create", "update", "delete"})
ACTIONS = frozenset({"query_server_information", "query_schemas", "query", *WRITE_ACTIONS})
#: Most recent batches kept for :attr:`FtrackServer.request_log`.
REQUEST_LOG_SIZE = 100_000


@dataclasses.dataclass(frozen=True)
class Stats:
    """A snapshot of the server's counters (subtract two to measure a step)."""

    requests: int = 0
    write_requests: int = 0
    operations: Mapping[str, int] = dataclasses.field(default_factory=dict)
    errors: int = 0
    faults: int = 0
    events_published: int = 0
    events_delivered: int = 0

    @property
    def queries(self) -> int:
        return self.operations.get("query", 0)

    def __sub__(self, other: Stats) -> Stats:
        actions = set(self.operations) | set(other.operations)
        return Stats(
            requests=self.requests - other.requests,
            write_requests=self.write_requests - other.write_requests,
            operations={a: self.operations.get(a, 0) - other.operations.get(a, 0) for a in actions},
            errors=self.errors - other.errors,
            faults=self.faults - other.faults,
            events_published=self.events_published - other.events_published,
            events_delivered=self.events_delivered - other.events_delivered,
        )


class Counters:
    """Thread-safe counters and the request log behind :class:`Stats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: collections.Counter[str] = collections.Counter()
        self._operations: collections.Counter[str] = collections.Counter()
        self._log: collections.deque[list[Any]] = collections.deque(maxlen=REQUEST_LOG_SIZE)

    def request(self, batch: list[Any]) -> None:
        with self._lock:
            self._values["requests"] += 1
            self._log.append(batch)
            actions = [op.get("action") for op in batch if isinstance(op, dict)]
            self._operations.update(str(a) for a in actions)
            if any(a in WRITE_ACTIONS for a in actions):
                self._values["write_requests"] += 1

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> Stats:
        with self._lock:
            return Stats(
                requests=self._values["requests"],
                write_requests=self._values["write_requests"],
                operations=dict(self._operations),
                errors=self._values["errors"],
                faults=self._values["faults"],
                events_published=self._values["events_published"],
                events_delivered=self._values["events_delivered"],
            )

    def request_log(self) -> list[list[Any]]:
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        with self._lock:
            self._values.clear()
            self._operations.clear()
            self._log.clear()


class Credentials:
    """The server-wide API key (valid for any user) and personal keys per user."""

    def __init__(self, api_key: str | None = None, user_keys: Mapping[str, str] | None = None):
        self.api_key = api_key or _new_key()
        self.user_keys: dict[str, str] = dict(user_keys or {})
        self._lock = threading.Lock()

    def key_for(self, username: str) -> tuple[str, bool]:
        """The personal key of *username* and whether it was just created."""
        with self._lock:
            if username in self.user_keys:
                return self.user_keys[username], False
            key = self.user_keys[username] = _new_key()
            return key, True

    def authenticate(self, store: Store, username: str | None, api_key: str | None) -> Record:
        """Return the active user *username* if *api_key* is valid for them."""
        if not username or not api_key:
            raise InvalidCredentialsError(
                "Missing credentials: send the ftrack-user and ftrack-api-key headers."
            )
        with store.lock:
            users = store.lookup("User", "username", username)
        if not users:
            raise InvalidCredentialsError(f"The user '{username}' does not exist.")
        user = users[0]
        with self._lock:
            valid = secrets.compare_digest(api_key, self.api_key) or secrets.compare_digest(
                api_key, self.user_keys.get(username, "")
            )
        if not valid:
            raise InvalidCredentialsError(f"The API key is not valid for user '{username}'.")
        if not user.get("is_active"):
            raise InvalidCredentialsError(f"The user '{username}' is not active.")
        return user


def _new_key() -> str:
    # ftrack API keys look like UUIDs; so do these, drawn from the OS's CSPRNG.
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-a{raw[17:20]}-{raw[20:]}"


class Api:
    def __init__(
        self,
        store: Store,
        credentials: Credentials,
        counters: Counters,
        *,
        publish: Callable[[dict[str, Any]], None],
        wants_updates: Callable[[], bool],
        on_commit: Callable[[], None],
        source_id: str,
    ) -> None:
        self.store = store
        self.schema = store.schema
        self.credentials = credentials
        self.counters = counters
        self._publish = publish
        self._wants_updates = wants_updates
        self._on_commit = on_commit
        self._source_id = source_id

    def decode(self, body: bytes) -> list[Any]:
        try:
            batch = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise MalformedRequestError(f"The request body is not valid JSON: {error}.") from None
        if not isinstance(batch, list):
            raise MalformedRequestError("The request body must be a JSON list of operations.")
        return batch

    def handle(self, headers: Mapping[str, str], batch: list[Any]) -> tuple[int, Any]:
        """Run a decoded batch; return the HTTP status and the JSON-able response."""
        strict = str(headers.get("ftrack-strict-api", "")).lower() == "true"
        try:
            actor = self.credentials.authenticate(
                self.store, headers.get("ftrack-user"), headers.get("ftrack-api-key")
            )
            return 200, self._process(batch, actor)
        except SandboxError as error:
            self.counters.add("errors")
            log.debug("api error: %s", error.message)
            return (error.status if strict else 200), error.payload()
        except Exception as error:  # a server bug must still reach the client readably
            self.counters.add("errors")
            log.exception("sandbox ftrack server failed on a request")
            payload = {
                "exception": "ServerError",
                "content": f"Internal sandbox server error: {error!r}",
                "error_code": None,
            }
            return (500 if strict else 200), payload

    def error_response(self, error: SandboxError, headers: Mapping[str, str]) -> tuple[int, Any]:
        strict = str(headers.get("ftrack-strict-api", "")).lower() == "true"
        self.counters.add("errors")
        return (error.status if strict else 200), error.payload()

    def _process(self, batch: list[Any], actor: Record) -> list[Any]:
        for op in batch:
            if not isinstance(op, dict) or not isinstance(op.get("action"), str):
                raise MalformedRequestError(
                    f"Each operation must be an object with an action: {op!r}."
                )
            if op["action"] not in ACTIONS:
                raise UnsupportedActionError(
                    f"Unsupported action '{op['action']}'; this server answers "
                    + ", ".join(sorted(ACTIONS))
                    + "."
                )
        if not any(op["action"] in WRITE_ACTIONS for op in batch):
            with self.store.lock:
                return [self._read(op) for op in batch]

        event = None
        with self.store.transaction():
            writer = Writer(self.store, actor)
            pending = [self._apply(op, writer) for op in batch]
            changes = writer.finish()
            results = [p() for p in pending]
            if changes and self._wants_updates():
                event = update_event(self.store, changes, actor, self._source_id)
        if changes:
            self._on_commit()
        if event is not None:
            self._publish(event)
        return results

    def _read(self, op: dict[str, Any]) -> Any:
        action = op["action"]
        if action == "query_server_information":
            return {
                "version": SERVER_VERSION,
                "schema_hash": self.schema.hash,
                "storage_scenario": {"scenario": None, "data": {}},
                "is_timezone_support_enabled": False,
            }
        if action == "query_schemas":
            return self.schema.client_schemas
        expression = op.get("expression")
        if not isinstance(expression, str):
            raise MalformedRequestError("A query operation needs an 'expression' string.")
        return query.execute(self.store, expression)

    def _apply(self, op: dict[str, Any], writer: Writer) -> Callable[[], Any]:
        """Apply *op*; return a function producing its result once the batch is final."""
        action = op["action"]
        if action not in WRITE_ACTIONS:
            result = self._read(op)
            return lambda: result
        entity_type = op.get("entity_type")
        if not isinstance(entity_type, str):
            raise MalformedRequestError(f"A {action} operation needs an 'entity_type'.")
        if action == "create":
            record = writer.create(entity_type, op.get("entity_key"), op.get("entity_data"))
            return self._row_result("create", record, None)
        if action == "update":
            record, sent = writer.update(entity_type, op.get("entity_key"), op.get("entity_data"))
            return self._row_result("update", record, sent)
        writer.delete(entity_type, op.get("entity_key"))
        return lambda: {"action": "delete", "data": True}

    def _row_result(self, action: str, record: Record, sent: list[str] | None) -> Callable[[], Any]:
        type_name = record[TYPE]
        key = self.store.key_of(type_name, record)

        def result() -> dict[str, Any]:
            final = self.store.get(type_name, key) or record
            return {"action": action, "data": self._row(final, sent)}

        return result

    def _row(self, record: Record, sent: list[str] | None) -> dict[str, Any]:
        """Create: every plain scalar; update: the scalars sent. Relations load lazily,
        as after a commit against a real server."""
        t = self.schema.types[record[TYPE]]
        row: dict[str, Any] = {TYPE: t.name}
        for column in (*t.primary_key, *t.system_projections):
            row[column] = query.encode_value(t.properties[column], record.get(column))
        for name, prop in t.properties.items():
            if not isinstance(prop, Scalar) or name in row:
                continue
            if sent is None and prop.format == "foreign_key":
                continue
            if sent is not None and name not in sent:
                continue
            row[name] = query.encode_value(prop, record.get(name))
        return row
