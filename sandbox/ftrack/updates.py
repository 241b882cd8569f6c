"""``ftrack.update`` events: what a committed batch changed, as a real server reports it.

Listeners (the web UI, a vendor-assignment hook) read ``data.entities``: one entry per
entity with the legacy lower-case ``entityType`` (``task`` for every typed context,
``show`` for a project), the attribute names in ``keys``, old and new values in
``changes``, and the chain of ``parents`` up to the project.
"""

from __future__ import annotations

import uuid
from typing import Any

from .store import TYPE, Record, Store
from .writes import Change

#: How a row names its parent, for ``parentId`` and ``parents``:
#: (entity family, column holding the parent's id, parent type).
_PARENT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Context", "parent_id", "Context"),
    ("Asset", "context_id", "Context"),
    ("AssetVersion", "asset_id", "Asset"),
    ("Component", "version_id", "AssetVersion"),
    ("ComponentLocation", "component_id", "Component"),
    ("Appointment", "context_id", "Context"),
    ("JobComponent", "job_id", "Job"),
    ("ListObject", "list_id", "List"),
)

_MAX_PARENTS = 64


def update_event(
    store: Store, changes: list[Change], actor: Record | None, source_id: str
) -> dict[str, Any] | None:
    """The ``ftrack.update`` event for *changes*, or ``None`` when nothing changed."""
    removed = {c.key: c.old for c in changes if c.action == "remove" and c.old is not None}
    builder = _Builder(store, removed)
    entities = []
    for change in changes:
        entity = builder.entity(change)
        if entity is not None:
            entities.append(entity)
    if not entities:
        return None
    user: dict[str, Any] = {}
    source: dict[str, Any] = {"id": source_id, "applicationId": "ftrack.api"}
    if actor is not None:
        full_name = " ".join(p for p in (actor.get("first_name"), actor.get("last_name")) if p)
        user = {"userid": actor["id"], "name": full_name or actor.get("username")}
        source["user"] = {"id": actor["id"], "username": actor.get("username")}
    return {
        "id": uuid.uuid4().hex,
        "topic": "ftrack.update",
        "data": {"entities": entities, "user": user},
        "sent": None,
        "source": source,
        "target": "",
        "inReplyToEvent": None,
    }


class _Builder:
    """Builds entity entries; parent chains are shared by siblings, so they are cached
    (ten thousand components of one version walk up from that version once)."""

    def __init__(self, store: Store, removed: dict[Any, Record | None]) -> None:
        self.store = store
        self.schema = store.schema
        self.removed = removed
        self._chains: dict[tuple[str, Any], list[dict[str, Any]]] = {}
        self._parent_columns: dict[str, list[tuple[str, str]]] = {}

    def entity(self, change: Change) -> dict[str, Any] | None:
        record = change.new if change.new is not None else change.old
        if record is None:
            return None
        columns = self.schema.stored_columns(change.entity_type)
        old = change.old or {}
        new = change.new or {}
        if change.action == "update":
            keys = [c for c in columns if old.get(c) != new.get(c)]
            if not keys:
                return None
        elif change.action == "add":
            keys = [c for c in columns if new.get(c) is not None]
        else:
            keys = [c for c in columns if old.get(c) is not None]
        entity: dict[str, Any] = {
            "entityId": self.entity_id(record),
            "entityType": self.schema.types[change.entity_type].update_name,
            "entity_type": change.entity_type,
            "action": change.action,
            "keys": keys,
            "changes": {k: {"old": old.get(k), "new": new.get(k)} for k in keys},
            "parents": self.chain(record, set()),
            "parentId": self.parent_id(record),
        }
        if self.schema.is_a(change.entity_type, "TypedContext"):
            entity["objectTypeId"] = record.get("object_type_id")
        return entity

    def entity_id(self, record: Record) -> Any:
        if "id" in record:
            return record["id"]
        key = self.store.key_of(record[TYPE], record)
        return ",".join(str(k) for k in key) if isinstance(key, tuple) else key

    def parent_ref(self, record: Record) -> tuple[str, Any] | None:
        type_name = record[TYPE]
        columns = self._parent_columns.get(type_name)
        if columns is None:
            columns = [
                (c, p) for family, c, p in _PARENT_COLUMNS if self.schema.is_a(type_name, family)
            ]
            if self.schema.is_a(type_name, "Component"):
                columns.append(("container_id", "Component"))
            self._parent_columns[type_name] = columns
        for column, parent_type in columns:
            if record.get(column) is not None:
                return parent_type, record[column]
        parent_type = record.get("parent_type")
        if (
            isinstance(parent_type, str)
            and parent_type in self.schema.types
            and record.get("parent_id")
        ):
            return parent_type, record["parent_id"]
        return None

    def parent_id(self, record: Record) -> Any:
        parent = self.parent_ref(record)
        return parent[1] if parent is not None else None

    def chain(self, record: Record, visiting: set[Any]) -> list[dict[str, Any]]:
        """The entity itself, then each parent up to the project."""
        entity_id = self.entity_id(record)
        key = (record[TYPE], entity_id)
        cached = self._chains.get(key)
        if cached is not None:
            return cached
        entry = {
            "entityId": entity_id,
            "entityType": self.schema.types[record[TYPE]].update_name,
            "entity_type": record[TYPE],
            "parentId": self.parent_id(record),
        }
        rest: list[dict[str, Any]] = []
        parent = self.parent_ref(record)
        if parent is not None and entity_id not in visiting and len(visiting) < _MAX_PARENTS:
            found = self.store.resolve(parent[0], parent[1]) or self.removed.get(parent[1])
            if found is not None:
                rest = self.chain(found, visiting | {entity_id})
        result = [entry, *rest]
        self._chains[key] = result
        return result
