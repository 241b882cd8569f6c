"""Play the ftrack web UI over the event hub: discover actions, open a form, submit it.

A :class:`WebUI` wraps a real, connected ``ftrack_api.Session`` of one user and talks to
action services exactly as the browser does: ``ftrack.action.discover`` and
``ftrack.action.launch`` events answered through ``ftrack.meta.reply``, and
``ftrack.action.trigger-user-interface`` messages addressed to the user's web client.
The demo uses it to show a coordinator's point of view; tests use it end to end.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import ftrack_api
import ftrack_api.event.base


class NoReply(Exception):
    """No action service answered in time (is serve running and connected?)."""


class WebUI:
    """One user's web client. ``session`` must belong to that user and be connected."""

    def __init__(self, session: ftrack_api.Session) -> None:
        self.session = session
        user = session.query(
            f'select id, username from User where username is "{session.api_user}"'
        ).one()
        self.user_id = user["id"]
        self.username = user["username"]
        #: ``{"success", "message"}`` of every message pushed to this user's web UI.
        self.messages: list[dict[str, Any]] = []
        session.event_hub.subscribe(
            "topic=ftrack.action.trigger-user-interface",
            lambda event: self.messages.append(dict(event["data"])),
            subscriber={"applicationId": "ftrack.client.web", "user": {"id": self.user_id}},
        )

    @classmethod
    def connect(
        cls, server_url: str, username: str, api_key: str, schema_cache_path: str | None = None
    ) -> WebUI:
        session = ftrack_api.Session(
            server_url=server_url,
            api_user=username,
            api_key=api_key,
            plugin_paths=[],
            schema_cache_path=schema_cache_path or False,
        )
        session.event_hub.connect()
        return cls(session)

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ requests

    def _ask(
        self, topic: str, data: Mapping[str, Any], timeout: float, settle: float = 0.0
    ) -> list[dict[str, Any]]:
        """Publish an event as the web client; return the replies' data."""
        replies: list[dict[str, Any]] = []
        event = ftrack_api.event.base.Event(
            topic=topic, data=dict(data), source={"applicationId": "ftrack.client.web"}
        )
        self.session.event_hub.publish(
            event, on_reply=lambda reply: replies.append(dict(reply["data"]))
        )
        deadline = time.monotonic() + timeout
        while not replies and time.monotonic() < deadline:
            self.session.event_hub.wait(0.05)
        # Other services may answer a discover too; give them a moment once one has.
        end = time.monotonic() + settle
        while replies and time.monotonic() < end:
            self.session.event_hub.wait(0.05)
        if not replies:
            raise NoReply(
                f"no reply to {topic} within {timeout:.0f} s; is `ftrack-transfer serve` running?"
            )
        return replies

    def discover(
        self, selection: Sequence[Mapping[str, str]], timeout: float = 3.0
    ) -> list[dict[str, Any]]:
        """The action items offered for *selection* (``[{"entityId", "entityType"}]``).

        As in the browser, an action that does not answer is simply not offered.
        """
        try:
            replies = self._ask(
                "ftrack.action.discover", {"selection": list(selection)}, timeout, settle=0.2
            )
        except NoReply:
            return []
        return [item for reply in replies for item in reply.get("items", [])]

    def launch(
        self,
        identifier: str,
        selection: Sequence[Mapping[str, str]],
        values: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Launch an action: without *values* it returns the form, with them the result."""
        data: dict[str, Any] = {"actionIdentifier": identifier, "selection": list(selection)}
        if values is not None:
            data["values"] = dict(values)
        return self._ask("ftrack.action.launch", data, timeout)[0]

    def wait_for_message(self, timeout: float = 60.0) -> dict[str, Any] | None:
        """The next message pushed to this user's web UI, or None."""
        seen = len(self.messages)
        deadline = time.monotonic() + timeout
        while len(self.messages) == seen and time.monotonic() < deadline:
            self.session.event_hub.wait(0.1)
        return self.messages[seen] if len(self.messages) > seen else None


def form_defaults(form: Mapping[str, Any]) -> dict[str, Any]:
    """The values a user submits by pressing the button without changing anything."""
    return {
        item["name"]: item.get("value")
        for item in form.get("items", [])
        if item.get("type") not in ("label",) and "name" in item
    }
