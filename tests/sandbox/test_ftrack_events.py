"""The event hub between real sessions: actions, UI messages, ftrack.update, reconnects,
and the Socket.IO protocol itself."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import ftrack_api
import ftrack_api.exception
import pytest
import requests
import websocket
from ftrack_api.event.base import Event

from tests.fixtures.ftrack import processing_events, wait_until

WEB_UI = "ftrack.client.web"


class Replies:
    """Collects ``on_reply`` callbacks; :meth:`next` waits for the next one."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._lock = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._items.append(event)
            self._lock.notify_all()

    def next(self, timeout: float = 10.0) -> Event:
        with self._lock:
            count = len(self._items)
            if not self._lock.wait_for(lambda: len(self._items) > count, timeout):
                pytest.fail("no reply arrived")
            return self._items[-1]


def test_action_discover_launch_form_round_trip(ftrack_server, ftrack_session):
    info = ftrack_server.seed_info
    identifier = f"studio.send.{uuid.uuid4().hex[:6]}"
    listener = ftrack_session("pipeline", connect_event_hub=True)
    web_ui = ftrack_session("alice", connect_event_hub=True)
    seen: list[Event] = []

    def discover(event: Event) -> dict[str, Any]:
        seen.append(event)
        return {"items": [{"label": "Send", "actionIdentifier": identifier, "site": "la"}]}

    def launch(event: Event) -> dict[str, Any]:
        seen.append(event)
        values = event["data"].get("values")
        if not values:
            return {
                "type": "form",
                "title": "Send to",
                "items": [
                    {
                        "type": "enumerator",
                        "name": "site",
                        "label": "Site",
                        "data": [{"label": "LA", "value": "la"}],
                    }
                ],
            }
        return {"success": True, "message": f"Sending to {values['site']}"}

    listener.event_hub.subscribe("topic=ftrack.action.discover", discover)
    listener.event_hub.subscribe(
        f"topic=ftrack.action.launch and data.actionIdentifier={identifier}", launch
    )
    ftrack_server.wait_for_subscribers(identifier)
    ftrack_server.wait_for_subscribers("ftrack.action.discover")
    selection = [{"entityId": info.tasks["sq010/sh0020/compositing"], "entityType": "task"}]
    replies = Replies()

    with processing_events(listener, web_ui):
        web_ui.event_hub.publish(
            Event(
                "ftrack.action.discover",
                data={"selection": selection},
                source={"applicationId": WEB_UI},
            ),
            on_reply=replies,
        )
        discovered = replies.next()
        (item,) = discovered["data"]["items"]
        assert item["actionIdentifier"] == identifier

        launch_data = {"actionIdentifier": identifier, "selection": selection, "site": item["site"]}
        web_ui.event_hub.publish(
            Event("ftrack.action.launch", data=dict(launch_data)), on_reply=replies
        )
        form = replies.next()["data"]
        assert form["type"] == "form"
        assert form["items"][0]["name"] == "site"

        web_ui.event_hub.publish(
            Event("ftrack.action.launch", data={**launch_data, "values": {"site": "la"}}),
            on_reply=replies,
        )
        assert replies.next()["data"] == {"success": True, "message": "Sending to la"}

    # The listener saw who asked: the server stamps the authenticated user.
    assert {e["source"]["user"]["id"] for e in seen} == {info.users["alice"]}
    assert {e["source"]["user"]["username"] for e in seen} == {"alice"}
    assert seen[0]["data"]["selection"] == selection


def test_user_interface_message_reaches_only_the_targeted_web_ui(ftrack_server, ftrack_session):
    users = ftrack_server.seed_info.users
    action = ftrack_session("pipeline", connect_event_hub=True)
    inboxes: dict[str, list[dict[str, Any]]] = {"alice": [], "bob": []}
    sessions = []
    for name in inboxes:
        session = ftrack_session(name, connect_event_hub=True)
        session.event_hub.subscribe(
            "topic=ftrack.action.trigger-user-interface",
            lambda event, name=name: inboxes[name].append(event["data"]),
            subscriber={"applicationId": WEB_UI, "user": {"id": users[name]}},
        )
        sessions.append(session)
    ftrack_server.wait_for_subscribers("trigger-user-interface", count=2)

    def notify(name: str, message: str) -> None:
        action.event_hub.publish(
            Event(
                "ftrack.action.trigger-user-interface",
                data={"type": "message", "success": True, "message": message},
                target=f'applicationId={WEB_UI} and user.id="{users[name]}"',
            )
        )

    with processing_events(*sessions):
        notify("alice", "Sent 3 components to la")
        notify("bob", "Your plates are ready")
        wait_until(lambda: inboxes["alice"] and inboxes["bob"])

    assert [m["message"] for m in inboxes["alice"]] == ["Sent 3 components to la"]
    # Each connection gets events in order, so alice's message would have come first.
    assert [m["message"] for m in inboxes["bob"]] == ["Your plates are ready"]


def test_ftrack_update_events_follow_committed_changes(ftrack_server, ftrack_session):
    info = ftrack_server.seed_info
    listener = ftrack_session("pipeline", connect_event_hub=True)
    updates: list[dict[str, Any]] = []
    listener.event_hub.subscribe(
        "topic=ftrack.update and source.user.username=alice",
        lambda event: updates.append({"data": event["data"], "source": event["source"]}),
    )
    ftrack_server.wait_for_subscribers("ftrack.update")

    coordinator = ftrack_session("alice")
    task = coordinator.get("Task", info.tasks["sq020/sh0030/compositing"])
    vendor = coordinator.query(f'User where username is "{info.vendor_user}"').one()
    with processing_events(listener):
        appointment = coordinator.create(
            "Appointment", {"context": task, "resource": vendor, "type": "assignment"}
        )
        coordinator.commit()
        wait_until(lambda: updates)
        in_progress = coordinator.query('Status where name is "In progress"').one()
        task["status"] = in_progress
        coordinator.commit()
        wait_until(lambda: len(updates) >= 2)
        coordinator.delete(appointment)
        coordinator.commit()
        wait_until(lambda: len(updates) >= 3)

    added, changed, removed = (u["data"]["entities"] for u in updates[:3])
    assert updates[0]["source"]["user"] == {"id": info.users["alice"], "username": "alice"}
    assert updates[0]["data"]["user"]["userid"] == info.users["alice"]

    (entity,) = added
    assert (entity["entityType"], entity["entity_type"], entity["action"]) == (
        "appointment",
        "Appointment",
        "add",
    )
    assert entity["entityId"] == appointment["id"]
    assert entity["changes"]["context_id"]["new"] == task["id"]
    assert entity["changes"]["resource_id"]["new"] == vendor["id"]
    assert entity["changes"]["type"]["new"] == "assignment"
    assert entity["parentId"] == task["id"]
    assert [p["entityId"] for p in entity["parents"]] == [
        appointment["id"],
        task["id"],
        info.shots["sq020/sh0030"],
        info.sequences["sq020"],
        info.project_id,
    ]
    assert [p["entityType"] for p in entity["parents"]][1:] == ["task", "task", "task", "show"]

    (entity,) = changed
    assert (entity["entityType"], entity["entity_type"], entity["action"]) == (
        "task",
        "Task",
        "update",
    )
    assert entity["keys"] == ["status_id"]
    assert entity["changes"]["status_id"] == {
        "old": info.statuses["Not started"],
        "new": in_progress["id"],
    }
    assert entity["objectTypeId"] == task["object_type_id"]

    (entity,) = removed
    assert (entity["entityId"], entity["action"]) == (appointment["id"], "remove")
    assert entity["changes"]["resource_id"] == {"old": vendor["id"], "new": None}


def test_clients_reconnect_after_the_hub_drops_them(ftrack_server_factory, ftrack_session):
    server = ftrack_server_factory()
    receiver = ftrack_session("bob", server=server, connect_event_hub=True)
    sender = ftrack_session("alice", server=server, connect_event_hub=True)
    received: list[str] = []
    receiver.event_hub.subscribe("topic=studio.ping", lambda e: received.append(e["data"]["n"]))
    server.wait_for_subscribers("studio.ping")
    old = {s.sid for s in server.subscribers()}

    assert server.drop_event_hub_connections() == 2
    # Each client notices, reconnects on its own and announces its subscribers again.
    server.wait_for_subscribers(lambda s: "studio.ping" in s.subscription and s.sid not in old)
    server.wait_for_subscribers(lambda s: s.username == "alice" and s.sid not in old)
    with processing_events(receiver):
        wait_until(lambda: sender.event_hub.connected)
        sender.event_hub.publish(Event("studio.ping", data={"n": "after"}))
        wait_until(lambda: received)
    assert received == ["after"]


def _handshake(server, user: str = "bob", key: str | None = None) -> requests.Response:
    return requests.get(
        f"{server.url}/socket.io/1/",
        headers={"ftrack-user": user, "ftrack-api-key": key or server.api_key},
        timeout=10,
    )


def _event_packet(packet_id: int, event: dict[str, Any]) -> str:
    return f"5:{packet_id}+::" + json.dumps({"name": "ftrack.event", "args": [event]})


def test_socket_io_protocol(ftrack_server_factory, ftrack_session):
    server = ftrack_server_factory(heartbeat_interval=0.05)
    assert _handshake(server, key="wrong").status_code == 401
    response = _handshake(server)
    sid, _heartbeat_timeout, _close_timeout, transports = response.text.split(":")
    assert "websocket" in transports.split(",")

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/socket.io/1/websocket/{sid}", timeout=5
    )
    try:
        assert ws.recv() == "1::"
        assert ws.recv() == "2::"  # idle: a heartbeat, well before the client's 60 s limit

        def answer() -> str:
            while (packet := ws.recv()) == "2::":
                pass
            return packet

        subscribe = {
            "topic": "ftrack.meta.subscribe",
            "data": {"subscriber": {"id": "raw-1"}, "subscription": "topic=studio.raw"},
        }
        ws.send(_event_packet(1, subscribe))
        assert answer() == '6:::1+[{"success": true}]'
        ws.send(_event_packet(2, subscribe))
        ack = answer()
        assert ack.startswith("6:::2+")
        assert json.loads(ack.split("+", 1)[1]) == [
            {"success": False, "message": "Subscriber with identifier raw-1 already exists."}
        ]

        # Unknown top-level keys are stripped (the client drops such events) and the
        # source carries the authenticated user, whatever the sender claims.
        listener = ftrack_session("pipeline", server=server, connect_event_hub=True)
        got: list[Event] = []
        listener.event_hub.subscribe("topic=studio.raw", got.append)
        server.wait_for_subscribers(
            lambda s: s.username == "pipeline" and "studio.raw" in s.subscription
        )
        event = {
            "topic": "studio.raw",
            "data": {"x": 1},
            "source": {"user": {"username": "root"}},
            "extra": True,
        }
        ws.send(_event_packet(3, event))
        assert answer() == '6:::3+[{"success": true}]'
        delivered = json.loads(answer()[len("5:::") :])["args"][0]
        assert "extra" not in delivered
        assert delivered["source"]["user"]["username"] == "bob"
        with processing_events(listener):
            wait_until(lambda: got)
        assert got[0]["data"] == {"x": 1}
        assert got[0]["source"]["user"] == {"username": "bob", "id": server.seed_info.users["bob"]}

        ws.send(
            _event_packet(
                4, {"topic": "ftrack.meta.unsubscribe", "data": {"subscriber": {"id": "raw-1"}}}
            )
        )
        assert answer() == '6:::4+[{"success": true}]'
    finally:
        ws.close()
    wait_until(lambda: all(s.sid != sid for s in server.subscribers()))
    # A session id is used once.
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/socket.io/1/websocket/{sid}", timeout=5
        )


def test_server_published_events_reach_subscribers(ftrack_server, ftrack_session):
    session = ftrack_session("carol", connect_event_hub=True)
    got: list[Event] = []
    session.event_hub.subscribe("topic=studio.notice", got.append)
    ftrack_server.wait_for_subscribers(
        lambda s: s.username == "carol" and "studio.notice" in s.subscription
    )
    with processing_events(session):
        event_id = ftrack_server.publish_event("studio.notice", {"text": "hello"}, user="alice")
        wait_until(lambda: got)
    assert got[0]["id"] == event_id
    assert got[0]["source"]["user"]["username"] == "alice"
    assert isinstance(session, ftrack_api.Session)


def test_update_events_are_built_only_for_possible_listeners(fresh_ftrack_server, ftrack_session):
    server = fresh_ftrack_server
    session = ftrack_session(server=server, connect_event_hub=True)
    server.wait_for_subscribers("ftrack.meta.reply")  # every connected session has one
    server.reset_stats()
    session.create("Location", {"name": "quiet"})
    session.commit()
    assert server.stats.events_published == 0

    got: list[Event] = []
    session.event_hub.subscribe("topic=ftrack.update", got.append)
    server.wait_for_subscribers("ftrack.update")
    with processing_events(session):
        session.create("Location", {"name": "heard"})
        session.commit()
        wait_until(lambda: got)
    assert server.stats.events_published == 1
    assert [e["changes"]["name"]["new"] for e in got[0]["data"]["entities"]] == ["heard"]


def test_a_refused_hub_handshake_then_a_working_one(ftrack_server_factory, ftrack_session):
    server = ftrack_server_factory()
    session = ftrack_session(server=server)
    server.faults.fail_next_handshakes(1)
    with pytest.raises(ftrack_api.exception.EventHubConnectionError, match="status code 503"):
        session.event_hub.connect()
    session.event_hub.connect()
    assert session.event_hub.connected
    server.wait_for_subscribers("ftrack.meta.reply")
