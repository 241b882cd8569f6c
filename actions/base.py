"""A small base for ftrack actions served over the event hub.

An :class:`Action` subscribes to ``ftrack.action.discover`` (answering with its item
when it applies to the selection and the user) and to ``ftrack.action.launch`` for its
identifier (answering with a form, or a success/failure message). Handlers run inside
the listener's ``event_hub.wait()`` loop, so they must answer quickly: long work goes to
the transfer workers, and progress reaches the user through the ftrack Job and
:func:`notify_user` messages.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import ftrack_api
import ftrack_api.event.base

from ..transfer.errors import UserError
from ..transfer.selection import EntityRef, from_ui
from . import forms

logger = logging.getLogger(__name__)


class Action:
    """Override :meth:`applies` and :meth:`launch`; set the class attributes."""

    identifier: str = ""
    label: str = ""
    variant: str = ""
    description: str = ""
    icon: str = ""

    def __init__(self, session: ftrack_api.Session) -> None:
        self.session = session

    # ------------------------------------------------------------------ wiring

    def register(self) -> None:
        hub = self.session.event_hub
        hub.subscribe("topic=ftrack.action.discover", self._on_discover)
        hub.subscribe(
            f"topic=ftrack.action.launch and data.actionIdentifier={self.identifier}",
            self._on_launch,
        )

    def _on_discover(self, event: ftrack_api.event.base.Event) -> dict[str, Any] | None:
        try:
            selection = from_ui(event["data"].get("selection") or [])
            if not selection or not self.applies(selection, event["source"].get("user") or {}):
                return None
        except UserError:
            return None
        except Exception:
            logger.exception("%s: discover failed", self.identifier)
            return None
        item = {"label": self.label, "actionIdentifier": self.identifier}
        for key in ("variant", "description", "icon"):
            if getattr(self, key):
                item[key] = getattr(self, key)
        return {"items": [item]}

    def _on_launch(self, event: ftrack_api.event.base.Event) -> dict[str, Any]:
        user = event["source"].get("user") or {}
        try:
            selection = from_ui(event["data"].get("selection") or [])
            return self.launch(selection, user, event["data"].get("values"), event)
        except UserError as error:
            return forms.message(False, str(error))
        except Exception as error:
            logger.exception("%s: launch failed", self.identifier)
            return forms.message(
                False,
                f"{self.label} failed unexpectedly ({type(error).__name__}); see the service log",
            )

    # ------------------------------------------------------------------ to override

    def applies(self, selection: list[EntityRef], user: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def launch(
        self,
        selection: list[EntityRef],
        user: Mapping[str, Any],
        values: Mapping[str, Any] | None,
        event: ftrack_api.event.base.Event,
    ) -> dict[str, Any]:
        raise NotImplementedError


def notify_user(session: ftrack_api.Session, user_id: str, text: str, success: bool = True) -> None:
    """Show *text* in the user's ftrack web UI (needs a connected event hub)."""
    if not session.event_hub.connected:
        logger.info(
            "not connected to the event hub; message for user %s not shown: %s", user_id, text
        )
        return
    session.event_hub.publish(
        ftrack_api.event.base.Event(
            topic="ftrack.action.trigger-user-interface",
            data={"type": "message", "success": success, "message": text},
            target=f'applicationId=ftrack.client.web and user.id="{user_id}"',
        ),
        on_error="ignore",
    )
