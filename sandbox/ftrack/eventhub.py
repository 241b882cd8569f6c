"""The event hub: Socket.IO 0.9 over a websocket, as ``ftrack_api.event.hub`` speaks it.

``GET /socket.io/1/`` authenticates (``ftrack-user``, ``ftrack-api-key``) and hands out
a session id bound to that user; the websocket upgrade at
``/socket.io/1/websocket/<sid>`` claims it (the upgrade request carries no
credentials). The hub then:

- sends ``1::`` on connect and a ``2::`` heartbeat whenever a connection has been idle
  for ``heartbeat_interval`` seconds (the client gives up after 60 silent seconds);
- acknowledges every client event with ``6:::<n>+[{"success": ...}]``;
- consumes ``ftrack.meta.subscribe`` / ``unsubscribe`` (a duplicate subscriber id on
  one connection is refused) and forgets a connection's subscribers when it closes;
- routes every other event once per connection, to connections with at least one
  subscriber whose subscription matches the event and whose metadata matches the
  event's ``target`` (replies target ``id=<publishing hub id>``);
- keeps only the keys the client accepts on an event and stamps ``source.user`` with
  the authenticated user.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import ftrack_api.event.expression

from .store import Record
from .websocket import ConnectionClosed, WebSocket

log = logging.getLogger(__name__)

_EVENT_KEYS = ("topic", "id", "data", "sent", "source", "target", "inReplyToEvent")
#: Handshakes not upgraded within this many seconds are forgotten.
_SID_LIFETIME = 60.0


@dataclasses.dataclass(frozen=True)
class SubscriberInfo:
    """A subscription registered by a connected client."""

    sid: str
    username: str
    user_id: str
    subscriber: dict[str, Any]
    subscription: str


@dataclasses.dataclass
class _Subscriber:
    info: SubscriberInfo
    expression: Any


class _Connection:
    def __init__(self, hub: EventHub, sid: str, user: Record, ws: WebSocket) -> None:
        self.hub = hub
        self.sid = sid
        self.user_id = str(user["id"])
        self.username = str(user.get("username"))
        self.ws = ws
        self.subscribers: dict[str, _Subscriber] = {}
        self._outbox: queue.Queue[str | None] = queue.Queue()
        self._writer = threading.Thread(
            target=self._write_loop, name=f"ftrack-hub-writer-{sid[:8]}", daemon=True
        )

    def start(self) -> None:
        self._writer.start()
        self.send("1::")

    def send(self, packet: str) -> None:
        self._outbox.put(packet)

    def stop(self) -> None:
        self._outbox.put(None)

    def _write_loop(self) -> None:
        while True:
            try:
                packet = self._outbox.get(timeout=self.hub.heartbeat_interval)
            except queue.Empty:
                packet = "2::"
            if packet is None:
                return
            try:
                self.ws.send_text(packet)
            except ConnectionClosed:
                return


class EventHub:
    def __init__(
        self,
        heartbeat_interval: float = 20.0,
        *,
        source_id: str | None = None,
        on_delivery: Callable[[int], None] | None = None,
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.source_id = source_id or uuid.uuid4().hex
        self._on_delivery = on_delivery
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: dict[str, tuple[Record, float]] = {}
        self._connections: dict[str, _Connection] = {}
        self._parser = ftrack_api.event.expression.Parser()
        self._parser_lock = threading.Lock()
        self._targets: dict[str, Any] = {}
        self._closed = False
        self._later: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._dispatcher: threading.Thread | None = None

    # -- connections ----------------------------------------------------------------------

    def handshake(self, user: Record) -> str:
        """Register a Socket.IO session for *user*; return the handshake body."""
        sid = uuid.uuid4().hex
        now = time.monotonic()
        with self._lock:
            self._pending = {s: v for s, v in self._pending.items() if now - v[1] < _SID_LIFETIME}
            self._pending[sid] = (user, now)
        # <sid>:<heartbeat timeout>:<close timeout>:<transports>
        return f"{sid}:60:60:websocket"

    def claim(self, sid: str) -> Record | None:
        """The user a handshake bound to *sid* (each session id is used once)."""
        with self._lock:
            entry = self._pending.pop(sid, None)
        if entry is None or time.monotonic() - entry[1] > _SID_LIFETIME:
            return None
        return entry[0]

    def serve(self, sid: str, user: Record, ws: WebSocket) -> None:
        """Run a connection until it closes (called on the HTTP handler's thread)."""
        connection = _Connection(self, sid, user, ws)
        with self._lock:
            if self._closed:
                ws.close()
                return
            self._connections[sid] = connection
        connection.start()
        try:
            while True:
                message = ws.recv()
                if message is None:
                    break
                if not self._on_packet(connection, message):
                    break
        finally:
            with self._changed:
                self._connections.pop(sid, None)
                self._changed.notify_all()
            connection.stop()
            ws.close()

    def drop_connections(self) -> int:
        """Cut every connection as a network failure would; return how many."""
        with self._lock:
            connections = list(self._connections.values())
        for connection in connections:
            connection.ws.abort()
        return len(connections)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections = list(self._connections.values())
            dispatcher = self._dispatcher
        if dispatcher is not None:
            self._later.put(None)
            dispatcher.join()
        for connection in connections:
            connection.stop()
            connection.ws.abort()

    # -- subscribers ----------------------------------------------------------------------

    def subscribers(self) -> list[SubscriberInfo]:
        with self._lock:
            return [s.info for c in self._connections.values() for s in c.subscribers.values()]

    def has_subscribers(self) -> bool:
        with self._lock:
            return any(c.subscribers for c in self._connections.values())

    def may_want(self, topic: str) -> bool:
        """Whether some subscription could match an event of *topic*.

        Conservative: only subscriptions that name another topic outright (such as
        every session's ``topic=ftrack.meta.reply``) are ruled out, so building a large
        event nobody can receive is skipped.
        """
        with self._lock:
            subscriptions = [
                s.info.subscription
                for c in self._connections.values()
                for s in c.subscribers.values()
            ]
        for subscription in subscriptions:
            compact = subscription.replace(" ", "")
            if topic in compact or "*" in compact or "!=" in compact or "topic=" not in compact:
                return True
        return False

    def wait_for_subscribers(
        self,
        predicate_or_count: int | str | Callable[[SubscriberInfo], bool] = 1,
        timeout: float = 10.0,
        *,
        count: int | None = None,
    ) -> list[SubscriberInfo]:
        """Block until subscribers are registered; return the matching ones.

        An int waits for that many subscribers in all (each connected session has one
        for replies); a string for *count* (default 1) subscriptions containing it,
        e.g. ``"ftrack.action.discover"``; a callable for *count* subscribers it
        accepts. Raises :class:`TimeoutError` with what is registered.
        """
        if isinstance(predicate_or_count, int):
            needed, accept = predicate_or_count, (lambda info: True)
        elif isinstance(predicate_or_count, str):
            text = predicate_or_count
            needed, accept = count or 1, (lambda info: text in info.subscription)
        else:
            needed, accept = count or 1, predicate_or_count
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [
                    s.info
                    for c in self._connections.values()
                    for s in c.subscribers.values()
                    if accept(s.info)
                ]
                if len(found) >= needed:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    registered = [
                        f"{s.info.username}: {s.info.subscription}"
                        for c in self._connections.values()
                        for s in c.subscribers.values()
                    ]
                    raise TimeoutError(
                        f"{len(found)} of {needed} expected subscriber(s) after {timeout} s; "
                        f"registered: {registered}"
                    )
                self._changed.wait(remaining)

    # -- events ---------------------------------------------------------------------------

    def publish(self, event: dict[str, Any]) -> int:
        """Route *event*; return to how many connections it went."""
        target = event.get("target") or ""
        target_expression = self._target(target) if target else None
        with self._lock:
            connections = [(c, list(c.subscribers.values())) for c in self._connections.values()]
        recipients = []
        if target and target_expression is None:
            connections = []  # a target nobody can match
        for connection, subscribers in connections:
            for subscriber in subscribers:
                if target_expression is not None and not _matches(
                    target_expression, subscriber.info.subscriber
                ):
                    continue
                if _matches(subscriber.expression, event):
                    recipients.append(connection)
                    break
        # Counted before sending, so a test that saw the event also sees the count.
        if self._on_delivery is not None:
            self._on_delivery(len(recipients))
        if recipients:
            event_json = json.dumps({"name": "ftrack.event", "args": [event]}, ensure_ascii=False)
            for connection in recipients:
                connection.send("5:::" + event_json)
        return len(recipients)

    def publish_later(self, event: dict[str, Any]) -> None:
        """Route *event* from the hub's own thread, in order with other such events.

        An API request publishing a large ``ftrack.update`` event returns without
        waiting for it to be encoded and queued for every listener.
        """
        with self._lock:
            if self._closed:
                return
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch, name="ftrack-hub-dispatch", daemon=True
                )
                self._dispatcher.start()
        self._later.put(event)

    def _dispatch(self) -> None:
        while (event := self._later.get()) is not None:
            try:
                self.publish(event)
            except Exception:
                log.exception("could not route event %s", event.get("topic"))

    def server_event(
        self,
        topic: str,
        data: dict[str, Any],
        target: str = "",
        user: Record | None = None,
    ) -> dict[str, Any]:
        """An event originating from the server (optionally on behalf of *user*)."""
        source: dict[str, Any] = {"id": self.source_id, "applicationId": "ftrack.server"}
        if user is not None:
            source["user"] = {"id": user["id"], "username": user.get("username")}
        return {
            "id": uuid.uuid4().hex,
            "topic": topic,
            "data": data,
            "sent": None,
            "source": source,
            "target": target,
            "inReplyToEvent": None,
        }

    def _on_packet(self, connection: _Connection, message: str) -> bool:
        parts = message.split(":", 3)
        code = parts[0]
        if code == "0":
            return False
        if code != "5":
            return True  # heartbeat answers and anything else need no reply
        packet_id = parts[1] if len(parts) > 1 else ""
        event: dict[str, Any] | None = None
        try:
            payload = json.loads(parts[3] if len(parts) > 3 else "")
            args = payload.get("args") if isinstance(payload, dict) else None
            if (
                payload.get("name") != "ftrack.event"
                or not isinstance(args, list)
                or len(args) != 1
            ):
                raise ValueError("expected one ftrack.event")
            if not isinstance(args[0], dict) or not isinstance(args[0].get("topic"), str):
                raise ValueError("an event needs a topic")
            event = args[0]
        except (ValueError, AttributeError) as error:
            self._ack(
                connection, packet_id, {"success": False, "message": f"Invalid event: {error}"}
            )
            return True
        topic = event["topic"]
        if topic == "ftrack.meta.subscribe":
            self._ack(connection, packet_id, self._subscribe(connection, event))
        elif topic == "ftrack.meta.unsubscribe":
            self._ack(connection, packet_id, self._unsubscribe(connection, event))
        else:
            clean = self._clean(connection, event)
            self._ack(connection, packet_id, {"success": True})
            self.publish(clean)
        return True

    def _ack(self, connection: _Connection, packet_id: str, result: dict[str, Any]) -> None:
        if packet_id:
            connection.send(f"6:::{packet_id.rstrip('+')}+{json.dumps([result])}")

    def _subscribe(self, connection: _Connection, event: dict[str, Any]) -> dict[str, Any]:
        data = event.get("data") or {}
        metadata = data.get("subscriber")
        subscription = data.get("subscription")
        if not isinstance(metadata, dict) or "id" not in metadata:
            return {"success": False, "message": "A subscriber needs metadata with an id."}
        if not isinstance(subscription, str):
            return {"success": False, "message": "A subscriber needs a subscription string."}
        try:
            with self._parser_lock:
                expression = self._parser.parse(subscription)
        except Exception as error:
            return {"success": False, "message": f"Invalid subscription {subscription!r}: {error}"}
        subscriber_id = str(metadata["id"])
        info = SubscriberInfo(
            connection.sid, connection.username, connection.user_id, metadata, subscription
        )
        with self._changed:
            if subscriber_id in connection.subscribers:
                return {
                    "success": False,
                    "message": f"Subscriber with identifier {subscriber_id} already exists.",
                }
            connection.subscribers[subscriber_id] = _Subscriber(info, expression)
            self._changed.notify_all()
        return {"success": True}

    def _unsubscribe(self, connection: _Connection, event: dict[str, Any]) -> dict[str, Any]:
        metadata = (event.get("data") or {}).get("subscriber")
        subscriber_id = str(metadata.get("id")) if isinstance(metadata, dict) else None
        with self._changed:
            if subscriber_id is None or connection.subscribers.pop(subscriber_id, None) is None:
                return {
                    "success": False,
                    "message": f"No subscriber with identifier {subscriber_id} to unsubscribe.",
                }
            self._changed.notify_all()
        return {"success": True}

    def _clean(self, connection: _Connection, event: dict[str, Any]) -> dict[str, Any]:
        """Only the keys the client accepts, and the source stamped with the user."""
        clean = {k: event[k] for k in _EVENT_KEYS if k in event}
        if "inReplyToEvent" not in clean and "in_reply_to_event" in event:
            clean["inReplyToEvent"] = event["in_reply_to_event"]
        clean.setdefault("id", uuid.uuid4().hex)
        clean.setdefault("data", {})
        clean.setdefault("target", "")
        source = dict(clean.get("source") or {})
        user = dict(source.get("user") or {})
        user.update(id=connection.user_id, username=connection.username)
        source["user"] = user
        clean["source"] = source
        return clean

    def _target(self, target: str) -> Any:
        expression = self._targets.get(target)
        if expression is None:
            try:
                with self._parser_lock:
                    expression = self._parser.parse(target)
            except Exception:
                log.debug("event target %r does not parse; not delivered", target)
                return None
            if len(self._targets) > 10_000:
                self._targets.clear()
            self._targets[target] = expression
        return expression


def _matches(expression: Any, candidate: Any) -> bool:
    try:
        return bool(expression.match(candidate))
    except Exception:  # a subscription comparing incomparable values matches nothing
        return False
