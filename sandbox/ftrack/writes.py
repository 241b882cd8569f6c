"""Create, update and delete with the rules a real ftrack server enforces.

One :class:`Writer` applies the write operations of one batch inside a store
transaction; :meth:`Writer.finish` runs the checks a database does at commit
(references resolve, required columns are set) and derives values that depend on the
whole batch (a context's project, a version's number). The writer also records what
changed, for the ``ftrack.update`` event published after the commit.

Rules beyond plain storage (each one something client code depends on):

- schema defaults and server-managed values (``system_type``, ``context_type``,
  ``resource_type``, object type ids) on create; unknown attributes are errors;
- immutable attributes cannot change; computed ones cannot be written;
- unique keys: ``Location.name``, one ``ComponentLocation`` per component and location,
  ``User.username``, one membership per user and group, primary keys;
- deleting follows each relation's rule: cascade (a component takes its
  ``ComponentLocation`` rows), restrict (a location that still holds components), or
  detach (clear the reference);
- ``AssetVersion.version`` is numbered per asset when missing;
- ``Job.status`` is one of ``queued, running, done, failed``; ``Job.type`` is
  ``api_job``; jobs get ``created_at``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from collections.abc import Mapping
from typing import Any

from .errors import (
    ImmutableAttributeError,
    IntegrityError,
    NotFoundError,
    UnknownAttributeError,
    ValidationError,
)
from .schema import NO_DEFAULT, UID, Coll, EntityType, Link, Ref, Scalar
from .store import TYPE, Record, Store


@dataclasses.dataclass
class Change:
    """What one batch did to one entity: ``add``, ``update`` or ``remove``."""

    action: str
    entity_type: str
    key: Any
    old: Record | None
    new: Record | None


def utc_now() -> str:
    """Now, as the server stores date-times: naive UTC, whole seconds."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    return now.isoformat()


def normalise_datetime(value: Any, what: str) -> str:
    """Accept ``{"__type__": "datetime", "value": iso}`` or an ISO string.

    The server keeps neither microseconds nor a time zone (``Session.ensure`` strips
    both before querying, expecting exactly this).
    """
    if isinstance(value, Mapping) and value.get("__type__") in ("datetime", "date"):
        value = value.get("value")
    if not isinstance(value, str):
        raise ValidationError(f"{what} expects a date-time, got {value!r}.")
    try:
        parsed = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(f"{what} expects an ISO 8601 date-time, got {value!r}.") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.UTC).replace(tzinfo=None)
    return parsed.replace(microsecond=0).isoformat()


def coerce(prop: Scalar, value: Any, what: str) -> Any:
    """Check *value* against the declared type of a scalar attribute."""
    if value is None:
        return None
    if prop.format == "date-time":
        return normalise_datetime(value, what)
    kind = prop.type
    if kind == "string":
        if prop.format == "json" and isinstance(value, dict | list):
            return json.dumps(value)
        if not isinstance(value, str):
            raise ValidationError(f"{what} expects a string, got {value!r}.")
        if prop.enum and value not in prop.enum:
            allowed = ", ".join(prop.enum)
            raise ValidationError(f"{what} must be one of {allowed}; got {value!r}.")
        return value
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValidationError(f"{what} expects an integer, got {value!r}.")
        return value
    if kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValidationError(f"{what} expects a number, got {value!r}.")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValidationError(f"{what} expects true or false, got {value!r}.")
        return value
    return value


class Writer:
    """Applies the writes of one batch; use inside :meth:`Store.transaction`."""

    def __init__(self, store: Store, actor: Record | None) -> None:
        self.store = store
        self.schema = store.schema
        self.actor = actor
        self.changes: dict[tuple[str, Any], Change] = {}
        #: Contexts whose parent changed: their project (and their subtree's) is redone.
        self._moved: set[str] = set()

    # -- operations ---------------------------------------------------------------------

    def create(
        self, entity_type: str, entity_key: Any, entity_data: Mapping[str, Any] | None
    ) -> Record:
        t = self.schema.get(entity_type)
        if t.abstract:
            options = ", ".join(self.schema.concrete[entity_type])
            raise ValidationError(
                f"Cannot create an entity of abstract type '{entity_type}'; "
                f"create one of: {options}."
            )
        data = self._data(t, entity_data)
        self._apply_key(t, entity_key, data)

        row: Record = {}
        collections: list[tuple[str, Coll, Any]] = []
        for name, value in data.items():
            prop = self._prop(t, name)
            what = f"{entity_type}.{name}"
            if isinstance(prop, Scalar):
                row[name] = coerce(prop, value, what)
            elif isinstance(prop, Ref):
                row[prop.fk] = self._reference(prop, value, what)
            elif isinstance(prop, Coll):
                collections.append((name, prop, value))
            else:
                raise ImmutableAttributeError(
                    f"{what} is computed by the server; it cannot be set."
                )

        for name, prop in t.properties.items():
            if not isinstance(prop, Scalar) or prop.default is NO_DEFAULT:
                continue
            if prop.default == UID:
                if row.get(name) is None:
                    row[name] = str(uuid.uuid4())
            elif name not in row:
                row[name] = prop.default
        self._apply_managed(t, row)
        self._apply_type_rules(t, row)

        for column in t.primary_key:
            if row.get(column) is None:
                raise ValidationError(f"{entity_type}.{column} (primary key) is missing.")
        self._check_new_key(t, row)
        self._check_unique(t, row, None)

        record = self.store.insert(entity_type, row)
        self._record("add", None, record)
        for name, coll, value in collections:
            self._set_collection(record, name, coll, value)
        return self._current(record) or record

    def update(
        self, entity_type: str, entity_key: Any, entity_data: Mapping[str, Any] | None
    ) -> tuple[Record, list[str]]:
        """Apply an update; return the new row and the attributes the client sent."""
        self.schema.get(entity_type)  # an unknown type is an error before a missing row
        record = self._existing(entity_type, entity_key)
        t = self.schema.types[record[TYPE]]
        data = self._data(t, entity_data)

        changes: dict[str, Any] = {}
        collections: list[tuple[str, Coll, Any]] = []
        for name, value in data.items():
            prop = self._prop(t, name)
            what = f"{t.name}.{name}"
            if isinstance(prop, Scalar):
                column, new = name, coerce(prop, value, what)
            elif isinstance(prop, Ref):
                column, new = prop.fk, self._reference(prop, value, what)
            elif isinstance(prop, Coll):
                collections.append((name, prop, value))
                continue
            else:
                raise ImmutableAttributeError(
                    f"{what} is computed by the server; it cannot be set."
                )
            if new == record.get(column):
                continue
            if name in t.immutable or column in t.immutable or column in t.primary_key:
                raise ImmutableAttributeError(f"{what} is immutable; it cannot be changed.")
            if column in t.managed:
                raise ImmutableAttributeError(f"{what} is set by the server; it cannot be changed.")
            changes[column] = new

        finished = t.name == "Job" and changes.get("status") in ("done", "failed")
        if finished and record.get("finished_at") is None and "finished_at" not in changes:
            changes["finished_at"] = utc_now()
        if changes:
            self._check_unique(t, {**record, **changes}, self.store.key_of(t.name, record))
            if "parent_id" in changes and self.schema.is_a(t.name, "Context"):
                self._moved.add(record["id"])
            record = self._modify(record, changes)
        for name, coll, value in collections:
            self._set_collection(record, name, coll, value)
        return self._current(record) or record, list(data)

    def delete(self, entity_type: str, entity_key: Any) -> None:
        self.schema.get(entity_type)
        self._delete(self._existing(entity_type, entity_key))

    def finish(self) -> list[Change]:
        """Checks and derived values that need the whole batch; return the changes."""
        self._derive_projects()
        for change in list(self.changes.values()):
            if change.action == "remove":
                continue
            record = self.store.get(change.entity_type, change.key)
            if record is None:
                continue
            if record[TYPE] == "AssetVersion" and record.get("version") is None:
                record = self._number_version(record)
            self._check_references(record)
            if change.action == "add":
                self._check_required(record)
        out = []
        for change in self.changes.values():
            if change.action != "remove":
                change.new = self.store.get(change.entity_type, change.key)
            out.append(change)
        return out

    # -- helpers: input -------------------------------------------------------------------

    def _data(self, t: EntityType, entity_data: Mapping[str, Any] | None) -> dict[str, Any]:
        if entity_data is None:
            return {}
        if not isinstance(entity_data, Mapping):
            raise ValidationError(f"entity_data for {t.name} must be an object.")
        data = dict(entity_data)
        declared = data.pop(TYPE, t.name)
        if declared != t.name and not self.schema.is_a(t.name, str(declared)):
            raise ValidationError(
                f"entity_data says __entity_type__ '{declared}' but the operation is on '{t.name}'."
            )
        return data

    def _apply_key(self, t: EntityType, entity_key: Any, data: dict[str, Any]) -> None:
        if entity_key is None:
            return
        if not isinstance(entity_key, list):
            entity_key = [entity_key]
        if len(entity_key) != len(t.primary_key):
            raise ValidationError(
                f"entity_key {entity_key!r} does not match the primary key of {t.name} "
                f"({', '.join(t.primary_key)})."
            )
        for column, value in zip(t.primary_key, entity_key, strict=True):
            if data.get(column) is None:
                data[column] = value
            elif data[column] != value:
                raise ValidationError(
                    f"entity_key {entity_key!r} disagrees with {t.name}.{column} "
                    f"{data[column]!r} in entity_data."
                )

    def _prop(self, t: EntityType, name: str) -> Scalar | Link | Ref | Coll:
        prop = t.properties.get(name)
        if prop is None:
            raise UnknownAttributeError(f"Unknown attribute '{name}' on entity type '{t.name}'.")
        return prop

    def _reference(self, ref: Ref, value: Any, what: str) -> Any:
        """The id a reference value points at (checked to exist in :meth:`finish`)."""
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, Mapping):
            target_type = value.get(TYPE, ref.target)
            if target_type not in self.schema.types or (
                self.schema.root[str(target_type)] != self.schema.root[ref.target]
            ):
                raise ValidationError(f"{what} expects a {ref.target}, got a {target_type}.")
            entity_id = value.get("id")
            if isinstance(entity_id, str):
                return entity_id
        raise ValidationError(f"{what} expects a reference to a {ref.target}, got {value!r}.")

    def _existing(self, entity_type: str, entity_key: Any) -> Record:
        key = entity_key
        if isinstance(key, list):
            if len(key) != len(self.schema.types[entity_type].primary_key):
                raise ValidationError(f"entity_key {key!r} does not fit {entity_type}.")
            key = tuple(key) if len(key) > 1 else key[0]
        record = self.store.get(entity_type, key)
        if record is None:
            raise NotFoundError(f"{entity_type} {entity_key!r} does not exist.")
        return record

    # -- helpers: rules -------------------------------------------------------------------

    def _apply_managed(self, t: EntityType, row: Record) -> None:
        for column, value in t.managed.items():
            if row.get(column) not in (None, value):
                raise ValidationError(
                    f"{t.name}.{column} is set by the server to {value!r}; got {row[column]!r}."
                )
            row[column] = value

    def _apply_type_rules(self, t: EntityType, row: Record) -> None:
        actor_id = self.actor["id"] if self.actor else None
        if self.schema.is_a(t.name, "Context"):
            row.setdefault("created_at", utc_now())
            if row.get("created_by_id") is None:
                row["created_by_id"] = actor_id
            if t.name == "Project":
                # Rows under a project and the project itself answer to the same
                # `project_id is X` filter, so `...parent.project_id` works for assets
                # directly under the project too.
                row["project_id"] = row.get("id")
        elif t.name == "AssetVersion":
            row.setdefault("date", utc_now())
            if row.get("user_id") is None:
                row["user_id"] = actor_id
            if row.get("version") is None and row.get("asset_id"):
                row["version"] = self._next_version(row["asset_id"], None)
        elif t.name == "Job":
            if row.get("type") != "api_job":
                raise ValidationError(f"Job.type must be 'api_job', got {row.get('type')!r}.")
            row.setdefault("created_at", utc_now())
            if row.get("status") in ("done", "failed"):
                row.setdefault("finished_at", utc_now())
        elif t.name in ("User", "Status"):
            # Active unless said otherwise (the schema declares no default).
            if row.get("is_active") is None:
                row["is_active"] = True
        elif t.name in ("Note", "AssetVersionList", "TypedContextList"):
            key = "date"
            row.setdefault(key, utc_now())
            if row.get("user_id") is None:
                row["user_id"] = actor_id

    def _check_new_key(self, t: EntityType, row: Record) -> None:
        key = self.store.key_of(t.name, row)
        if len(t.primary_key) == 1:
            existing = self.store.resolve(self.schema.root[t.name], key)
        else:
            existing = self.store.get(t.name, key)
        if existing is not None:
            raise IntegrityError(
                f"Duplicate entry {key!r} for the primary key of {t.name} "
                f"(already used by a {existing[TYPE]})."
            )

    def _check_unique(self, t: EntityType, row: Record, own_key: Any) -> None:
        for columns in t.unique:
            values = [row.get(c) for c in columns]
            if any(v is None for v in values):
                continue
            for other in self.store.lookup(t.name, columns[0], values[0]):
                if self.store.key_of(other[TYPE], other) == own_key:
                    continue
                if all(other.get(c) == v for c, v in zip(columns, values, strict=True)):
                    raise IntegrityError(_duplicate_message(t.name, columns, values, other))

    def _next_version(self, asset_id: str, own_id: str | None) -> int:
        versions = self.store.lookup("AssetVersion", "asset_id", asset_id)
        numbers = [v.get("version") or 0 for v in versions if v.get("id") != own_id]
        return max(numbers, default=0) + 1

    def _number_version(self, record: Record) -> Record:
        if not record.get("asset_id"):
            return record
        number = self._next_version(record["asset_id"], record["id"])
        return self._modify(record, {"version": number})

    def _derive_projects(self) -> None:
        """Set ``project_id`` of typed contexts created or moved in this batch."""
        todo: list[Record] = []
        for change in self.changes.values():
            if change.action == "add" and self.schema.is_a(change.entity_type, "TypedContext"):
                record = self.store.get(change.entity_type, change.key)
                if record is not None:
                    todo.append(record)
        for moved in self._moved:
            record = self.store.resolve("Context", moved)
            if record is not None:
                todo.append(record)
                todo.extend(self.store.descendants(record))
        for record in todo:
            if record[TYPE] == "Project":
                continue
            chain = self.store.parent_chain(record)
            top = chain[-1] if chain else None
            project_id = top["id"] if top is not None and top[TYPE] == "Project" else None
            current = self.store.get(record[TYPE], record["id"])
            if current is not None and current.get("project_id") != project_id:
                self._modify(current, {"project_id": project_id})

    def _check_references(self, record: Record) -> None:
        for name, prop in self.schema.types[record[TYPE]].properties.items():
            if not isinstance(prop, Ref):
                continue
            value = record.get(prop.fk)
            if value is not None and self.store.resolve(prop.target, value) is None:
                raise IntegrityError(
                    f"{record[TYPE]}.{name} refers to {prop.target} '{value}', "
                    "which does not exist."
                )

    def _check_required(self, record: Record) -> None:
        t = self.schema.types[record[TYPE]]
        stored = self.schema.stored_columns(t.name)
        for column in t.required:
            if column in stored and record.get(column) is None:
                raise IntegrityError(f"{t.name}.{column} is required; it cannot be null.")

    # -- helpers: relations ---------------------------------------------------------------

    def _set_collection(self, owner: Record, name: str, coll: Coll, value: Any) -> None:
        """Make the collection *name* of *owner* hold exactly the referenced entities."""
        what = f"{owner[TYPE]}.{name}"
        if coll.computed:
            raise ImmutableAttributeError(f"{what} is computed by the server; it cannot be set.")
        if value is None:
            value = []
        if not isinstance(value, list):
            raise ValidationError(f"{what} expects a list of references, got {value!r}.")
        items = [self._item(coll, v, what) for v in value]
        if coll.through is not None:
            self._set_links(owner, coll, items)
            return
        column = coll.fk or ""
        wanted = {**dict(coll.where), column: owner["id"]}
        if coll.type_column:
            wanted[coll.type_column] = owner[TYPE]
        keep = set()
        for item in items:
            keep.add(item["__seq__"])
            item_type = self.schema.types[item[TYPE]]
            changes = {c: v for c, v in wanted.items() if item.get(c) != v}
            if any(c in item_type.primary_key for c in changes):
                raise IntegrityError(
                    f"{item[TYPE]} {self.store.key_of(item[TYPE], item)!r} belongs to another "
                    f"entity; it cannot be added to {what}."
                )
            if changes:
                self._modify(item, changes)
        for current in self.store.collection(self._current(owner) or owner, coll):
            if current["__seq__"] in keep:
                continue
            if column in self.schema.types[current[TYPE]].primary_key:
                continue  # keyed by the owner: the client deletes these itself
            if coll.on_delete == "cascade":
                self._delete(current)
            else:
                self._modify(current, {column: None})

    def _set_links(self, owner: Record, coll: Coll, items: list[Record]) -> None:
        link = coll.through
        assert link is not None
        current = self.store.lookup(link.link_type, link.owner_column, owner["id"])
        present = {row.get(link.item_column): row for row in current}
        wanted = [item["id"] for item in items]
        for item_id in wanted:
            if item_id not in present:
                row = {
                    "id": str(uuid.uuid4()),
                    link.owner_column: owner["id"],
                    link.item_column: item_id,
                }
                self._record("add", None, self.store.insert(link.link_type, row))
        for item_id, row in present.items():
            if item_id not in wanted:
                self._delete(row)

    def _item(self, coll: Coll, value: Any, what: str) -> Record:
        if not isinstance(value, Mapping):
            raise ValidationError(f"{what} expects references, got {value!r}.")
        item_type = str(value.get(TYPE, coll.target))
        if item_type not in self.schema.types or (
            self.schema.root[item_type] != self.schema.root[coll.target]
        ):
            raise ValidationError(f"{what} holds {coll.target} entities, not {item_type}.")
        key = self.store.key_of(item_type, value)
        record = self.store.get(item_type, key)
        if record is None:
            raise IntegrityError(f"{what}: {item_type} {key!r} does not exist.")
        return record

    def _delete(self, record: Record) -> None:
        current = self._current(record)
        if current is None:
            return  # already removed by an earlier cascade in this batch
        t = self.schema.types[current[TYPE]]
        owner_id = current.get("id")
        for incoming in self.schema.incoming[t.name] if owner_id is not None else ():
            dependents = self.store.lookup(incoming.source, incoming.column, owner_id)
            dependents = [d for d in dependents if d[TYPE] == incoming.source]
            if not dependents:
                continue
            if incoming.on_delete == "restrict":
                label = current.get("name") or owner_id
                raise IntegrityError(
                    f"Cannot delete {t.name} '{label}': {len(dependents)} {incoming.source} "
                    f"row(s) still refer to it through '{incoming.via}'. "
                    "Remove them first."
                )
            source_pk = self.schema.types[incoming.source].primary_key
            for dependent in dependents:
                if incoming.on_delete == "cascade" or incoming.column in source_pk:
                    self._delete(dependent)
                else:
                    latest = self._current(dependent)
                    if latest is not None:
                        self._modify(latest, {incoming.column: None})
        self.store.remove(current)
        self._record("remove", current, None)

    def _modify(self, record: Record, changes: Mapping[str, Any]) -> Record:
        new = self.store.replace(record, changes)
        self._record("update", record, new)
        return new

    def _current(self, record: Record) -> Record | None:
        return self.store.get(record[TYPE], self.store.key_of(record[TYPE], record))

    def _record(self, action: str, old: Record | None, new: Record | None) -> None:
        row = new if new is not None else old
        assert row is not None
        key = (row[TYPE], self.store.key_of(row[TYPE], row))
        previous = self.changes.get(key)
        if action == "add":
            self.changes[key] = Change("add", key[0], key[1], None, new)
        elif action == "update":
            if previous is None:
                self.changes[key] = Change("update", key[0], key[1], old, new)
            else:
                previous.new = new
        elif previous is not None and previous.action == "add":
            del self.changes[key]
        else:
            first = previous.old if previous is not None else old
            self.changes.pop(key, None)
            self.changes[key] = Change("remove", key[0], key[1], first, None)


def _duplicate_message(
    type_name: str, columns: tuple[str, ...], values: list[Any], other: Record
) -> str:
    if type_name == "ComponentLocation":
        return (
            f"Duplicate entry: component '{values[0]}' is already registered in location "
            f"'{values[1]}' (ComponentLocation {other.get('id')})."
        )
    shown = ", ".join(repr(v) for v in values)
    return f"Duplicate entry {shown} for key '{', '.join(columns)}' of {type_name}."
