"""Structures: where a component lands inside a location.

The sites config names a structure by key (``structure = "template"``, or a table with
``name`` and options); :data:`STRUCTURES` maps the key to the class. ftrack's own
Standard and Id structures stay selectable.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

import ftrack_api.structure.base

#: Structure key in the sites config -> implementing class.
STRUCTURES: dict[str, str] = {
    "template": "ftrack_transfer.structures.template:TemplateStructure",
    "mirror": "ftrack_transfer.structures.mirror:MirrorStructure",
    "standard": "ftrack_api.structure.standard:StandardStructure",
    "id": "ftrack_api.structure.id:IdStructure",
}


def structure_class(name: str) -> type[ftrack_api.structure.base.Structure]:
    module_name, _, attr = STRUCTURES[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def structure_options(name: str) -> set[str]:
    """Option names a structure accepts: its constructor's keyword arguments."""
    parameters = inspect.signature(structure_class(name).__init__).parameters
    return {
        p
        for p in parameters
        if p != "self" and parameters[p].kind is not inspect.Parameter.VAR_KEYWORD
    }


def build_structure(
    name: str, options: Mapping[str, Any] | None = None
) -> ftrack_api.structure.base.Structure:
    """Instantiate the structure registered under *name*; bad options raise ValueError."""
    return structure_class(name)(**dict(options or {}))
