"""Vendor publish-back: publish files at the vendor's location, then send them home.

``ftrack-transfer publish --location LOC --task TASK --asset NAME PATH...`` creates an
AssetVersion on the task's parent with one component per file and per image sequence
(frame-numbered names such as ``comp.1001.exr`` are grouped), registers them at the
vendor's location through that location's own structure and accessor (the stock ftrack
``add_component`` path, so any studio script would publish the same way), and queues a
send to the location's ``return_to`` (or ``--to``). A vendor may publish only into
tasks assigned to them in ftrack.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import clique
import ftrack_api

from .config import SitesConfig
from .engine import configured_locations
from .errors import SelectionError
from .permissions import check_assigned
from .selection import resolve

_FRAMES = clique.PATTERNS["frames"]


@dataclasses.dataclass(frozen=True)
class Item:
    """One component to publish: a file, or a sequence in clique's notation."""

    name: str
    path: str  # a file path, or "<dir>/name.%04d.exr [1001-1010]"
    files: int
    sequence: bool


def _expand(paths: Sequence[str]) -> list[str]:
    """Wildcards expanded here too: Windows shells pass ``comp.*.exr`` through as it is."""
    expanded: dict[str, None] = {}
    for raw in paths:
        if not Path(raw).expanduser().exists() and any(c in raw for c in "*?["):
            matches = sorted(glob.glob(os.path.expanduser(raw)))
            if not matches:
                raise SelectionError(f"{raw} matches no file; check the name and the folder")
            expanded.update(dict.fromkeys(matches))
        else:
            expanded[raw] = None
    return list(expanded)


def group_files(paths: Sequence[str]) -> list[Item]:
    """Group frame-numbered files into sequences; everything else stays a single file."""
    by_dir: dict[str, list[str]] = {}
    for raw in _expand(paths):
        path = Path(raw).expanduser()
        if not path.is_file():
            raise SelectionError(
                f"{raw} is not a file; publish files (frames are grouped into sequences)"
            )
        by_dir.setdefault(str(path.resolve().parent), []).append(path.name)
    items: list[Item] = []
    for directory, names in sorted(by_dir.items()):
        collections, remainder = clique.assemble(names, patterns=[_FRAMES], minimum_items=2)
        for collection in collections:
            head = collection.head.rstrip("._-") or "sequence"
            items.append(
                Item(
                    _component_name(head),
                    os.path.join(directory, collection.format()),
                    len(collection.indexes),
                    True,
                )
            )
        for name in remainder:
            items.append(
                Item(_component_name(Path(name).stem), os.path.join(directory, name), 1, False)
            )
    if len(items) == 1:
        return [dataclasses.replace(items[0], name="main")]
    # A movie beside its frames (comp.mov, comp.1001.exr) shares their name: tell the
    # single file apart by its extension rather than refuse the publish.
    names = [item.name for item in items]
    items = [
        dataclasses.replace(
            item, name=_component_name(f"{item.name}_{Path(item.path).suffix.lstrip('.')}")
        )
        if not item.sequence and names.count(item.name) > 1
        else item
        for item in items
    ]
    names = [item.name for item in items]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SelectionError(
            f"two files would publish as the component {sorted(duplicates)[0]!r}; rename one of them"
        )
    return items


def _component_name(text: str) -> str:
    return re.sub(r"[^\w.-]", "_", text).strip("._") or "main"


@dataclasses.dataclass
class Published:
    version: Any
    components: list[Any]
    label: str


def publish(
    session: ftrack_api.Session,
    config: SitesConfig,
    *,
    location: str,
    task: str,
    asset: str,
    paths: Sequence[str],
    asset_type: str | None = None,
    comment: str = "",
) -> Published:
    """Create the version and its components at *location*; return them."""
    config.location(location)
    items = group_files(paths)
    target = configured_locations(session, config, [location])[location]
    refs = resolve(session, [task])
    task_entity = session.query(
        f'select id, name, parent_id, link from Task where id is "{refs[0].id}"'
    ).first()
    if task_entity is None:
        raise SelectionError(
            f"{task} is not a task; name the task to publish into, e.g. demo/sq010/sh0020/compositing"
        )
    user = session.query(
        f'select id, username from User where username is "{session.api_user}"'
    ).one()
    check_assigned(session, user, task_entity)
    parent_id = task_entity["parent_id"]
    type_entity = _asset_type(session, asset_type)
    asset_entity = session.query(
        f'select id, name from Asset where name is "{_quoted(asset)}" and context_id is "{parent_id}"'
    ).first()
    if asset_entity is None:
        asset_entity = session.create(
            "Asset", {"name": asset, "context_id": parent_id, "type": type_entity}
        )
    version = session.create(
        "AssetVersion",
        {
            "asset": asset_entity,
            "task_id": task_entity["id"],
            "comment": comment,
            "user_id": user["id"],
        },
    )
    session.commit()
    components = []
    try:
        for item in items:
            components.append(
                version.create_component(item.path, data={"name": item.name}, location=target)
            )
        session.commit()
    except (ftrack_api.exception.LocationError, ftrack_api.exception.AccessorError) as error:
        # Leave ftrack as it was: no half-published version.
        session.rollback()
        for component in components:
            with contextlib.suppress(ftrack_api.exception.Error):
                target.remove_component(component)
        session.delete(version)
        session.commit()
        lines = [line.strip(" '\"b") for line in str(error).splitlines() if line.strip(" '\"b")]
        reason = next(
            (line for line in reversed(lines) if "cleanup" not in line), type(error).__name__
        )
        raise SelectionError(f"could not publish at {location}: {reason}") from None
    link = " / ".join(entry["name"] for entry in task_entity["link"][:-1])
    label = f"{link} / {asset} v{version['version']:03d}"
    return Published(version, components, label)


def _quoted(value: str) -> str:
    if '"' in value:
        raise SelectionError(f"{value!r} cannot contain quotes")
    return value


def _asset_type(session: ftrack_api.Session, name: str | None) -> Any:
    types = session.query("select id, name, short from AssetType").all()
    if not types:
        raise SelectionError("ftrack has no asset types; create one first")
    if name is None:
        for candidate in types:
            if candidate["name"].lower() in ("upload", "render"):
                return candidate
        return types[0]
    for candidate in types:
        if name.lower() in (candidate["name"].lower(), (candidate["short"] or "").lower()):
            return candidate
    known = ", ".join(sorted(t["name"] for t in types))
    raise SelectionError(f"unknown asset type {name!r}; known types: {known}")


def return_target(config: SitesConfig, location: str, explicit: str | None) -> str | None:
    """Where a publish at *location* goes home to: ``--to``, else the location's return_to."""
    if explicit:
        config.location(explicit)
        return explicit
    return config.location(location).return_to
