"""The ftrack web UI's action widgets and replies, as plain functions.

Each function returns the dict the web UI expects; an action's form is a list of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def label(text: str) -> dict[str, Any]:
    return {"type": "label", "value": text}


def text(name: str, title: str, value: str = "", empty_text: str = "") -> dict[str, Any]:
    widget = {"type": "text", "name": name, "label": title, "value": value}
    if empty_text:
        widget["empty_text"] = empty_text
    return widget


def textarea(name: str, title: str, value: str = "", empty_text: str = "") -> dict[str, Any]:
    widget = {"type": "textarea", "name": name, "label": title, "value": value}
    if empty_text:
        widget["empty_text"] = empty_text
    return widget


def boolean(name: str, title: str, value: bool = False) -> dict[str, Any]:
    return {"type": "boolean", "name": name, "label": title, "value": value}


def number(
    name: str, title: str, value: float | int | None = None, empty_text: str = ""
) -> dict[str, Any]:
    widget: dict[str, Any] = {"type": "number", "name": name, "label": title}
    if value is not None:
        widget["value"] = value
    if empty_text:
        widget["empty_text"] = empty_text
    return widget


def hidden(name: str, value: Any) -> dict[str, Any]:
    return {"type": "hidden", "name": name, "value": value}


def enumerator(
    name: str, title: str, options: Iterable[tuple[str, str]], value: str | None = None
) -> dict[str, Any]:
    """A drop-down; *options* are ``(value, label)`` pairs."""
    widget: dict[str, Any] = {
        "type": "enumerator",
        "name": name,
        "label": title,
        "data": [
            {"label": option_label, "value": option_value} for option_value, option_label in options
        ],
    }
    if value is not None:
        widget["value"] = value
    return widget


def form(title: str, items: Sequence[Mapping[str, Any]], submit: str = "Submit") -> dict[str, Any]:
    return {"type": "form", "title": title, "items": list(items), "submit_button_label": submit}


def message(success: bool, text_: str) -> dict[str, Any]:
    return {"success": success, "message": text_}
