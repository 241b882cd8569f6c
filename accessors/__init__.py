"""Accessors: how a location reads and writes its storage.

The sites config names an accessor by key (``accessor = "sftp"``); :data:`ACCESSORS`
maps that key to the class. Backends are imported only when used, so a workstation
without boto3 configured for S3 still starts. Third-party accessors register through
the ``ftrack_transfer.accessors`` entry-point group with the same ``"module:Class"`` form.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import TransferAccessor

#: Accessor key in the sites config -> implementing class.
ACCESSORS: dict[str, str] = {
    "disk": "ftrack_transfer.accessors.disk:DiskAccessor",
    "sftp": "ftrack_transfer.accessors.sftp:SftpAccessor",
    "s3": "ftrack_transfer.accessors.s3:S3Accessor",
    "accsyn": "ftrack_transfer.accessors.accsyn:AccsynAccessor",
}


def available() -> dict[str, str]:
    """Every known accessor key, built-in and from installed plugins."""
    found = dict(ACCESSORS)
    for ep in entry_points(group="ftrack_transfer.accessors"):
        found.setdefault(ep.name, ep.value)
    return found


def accessor_class(name: str) -> type[TransferAccessor]:
    """Return the class registered under *name*; ``KeyError`` if there is none."""
    target = available()[name]
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
