"""In-memory entity store: rows per concrete type, value indexes, polymorphic families.

A row is a plain dict of its stored columns plus ``__entity_type__`` (the concrete
type) and ``__seq__`` (creation order, the order queries return rows in). Rows are
never changed in place: an update stores a new dict. That makes a snapshot for
persistence a cheap copy of references, and lets an undo journal restore the exact
previous rows when a batch fails half-way (all-or-nothing batches without copying the
whole store first).

Every read and write happens under :attr:`Store.lock`; the HTTP handlers take it for a
whole batch.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .schema import Coll, Ref, Schema

Record = dict[str, Any]

TYPE = "__entity_type__"
SEQ = "__seq__"

#: Deeper parent chains are treated as cycles (a context made its own ancestor).
_MAX_DEPTH = 256


def by_seq(record: Record) -> int:
    return record[SEQ]


class Store:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.lock = threading.RLock()
        self._rows: dict[str, dict[Any, Record]] = {
            name: {} for name, t in schema.types.items() if not t.abstract
        }
        self._index: dict[str, dict[str, dict[Any, set[Any]]]] = {
            name: {column: {} for column in schema.indexed[name]} for name in self._rows
        }
        #: Family root -> id -> concrete type, for references to polymorphic types.
        self._family: dict[str, dict[Any, str]] = {}
        self._seq = 0
        self._journal: list[tuple[Any, ...]] | None = None
        #: Bumped after every committed change; persistence compares it.
        self.revision = 0

    # -- keys ---------------------------------------------------------------------------

    def key_of(self, type_name: str, values: Mapping[str, Any]) -> Any:
        """The row key: the single primary-key value, or a tuple of them."""
        primary_key = self.schema.types[type_name].primary_key
        if len(primary_key) == 1:
            return values.get(primary_key[0])
        return tuple(values.get(k) for k in primary_key)

    # -- reads --------------------------------------------------------------------------

    def rows(self, type_name: str) -> Iterator[Record]:
        """Rows of *type_name* and its subtypes, type by type (not in ``__seq__`` order)."""
        for concrete in self.schema.concrete[type_name]:
            yield from self._rows[concrete].values()

    def count(self, type_name: str) -> int:
        return sum(len(self._rows[c]) for c in self.schema.concrete[type_name])

    def get(self, type_name: str, key: Any) -> Record | None:
        """The row of *type_name* (or a subtype) with primary key *key*."""
        if isinstance(key, list):
            key = tuple(key) if len(key) > 1 else key[0]
        concrete = self.schema.concrete[type_name]
        if len(concrete) == 1:
            return self._rows[concrete[0]].get(key)
        return self.resolve(type_name, key, strict=True)

    def resolve(self, type_name: str, entity_id: Any, strict: bool = False) -> Record | None:
        """The row a reference to *type_name* with id *entity_id* points at.

        References are resolved within the family (``Asset.parent`` is any context);
        *strict* also requires the row to be a *type_name*.
        """
        if entity_id is None:
            return None
        family = self._family.get(self.schema.root[type_name])
        if family is None:
            return None
        concrete = family.get(entity_id)
        if concrete is None:
            return None
        if strict and not self.schema.is_a(concrete, type_name):
            return None
        return self._rows[concrete].get(entity_id)

    def lookup(self, type_name: str, column: str, value: Any) -> list[Record]:
        """Rows of *type_name* whose *column* equals *value* (index or scan)."""
        return self.lookup_many(type_name, column, (value,))

    def lookup_many(self, type_name: str, column: str, values: Iterable[Any]) -> list[Record]:
        values = [v for v in values if v is not None]
        if not values:
            return []
        out: list[Record] = []
        for concrete in self.schema.concrete[type_name]:
            rows = self._rows[concrete]
            primary_key = self.schema.types[concrete].primary_key
            index = self._index[concrete].get(column)
            if primary_key == (column,):
                out.extend(rows[v] for v in values if _hashable(v) and v in rows)
            elif index is not None:
                for v in values:
                    if _hashable(v):
                        out.extend(rows[k] for k in index.get(v, ()))
            elif column in self.schema.stored_columns(concrete):
                wanted = {v for v in values if _hashable(v)}
                out.extend(
                    r for r in rows.values() if _hashable(r.get(column)) and r.get(column) in wanted
                )
        return out

    def is_indexed(self, type_name: str, column: str) -> bool:
        return all(
            column in self._index[c] or self.schema.types[c].primary_key == (column,)
            for c in self.schema.concrete[type_name]
        )

    def follow(self, record: Record, ref: Ref) -> Record | None:
        return self.resolve(ref.target, record.get(ref.fk))

    def collection(self, record: Record, coll: Coll) -> list[Record]:
        """Items of *coll* on *record*, in creation order."""
        if coll.computed == "ancestors":
            return self.ancestors(record)
        if coll.computed == "descendants":
            return self.descendants(record)
        owner_id = record.get("id")
        if coll.through is not None:
            link = coll.through
            rows = self.lookup(link.link_type, link.owner_column, owner_id)
            rows.sort(key=by_seq)
            items = [self.resolve(coll.target, r.get(link.item_column)) for r in rows]
            return [i for i in items if i is not None]
        items = self.lookup(coll.target, coll.fk or "", owner_id)
        for column, value in coll.where:
            items = [i for i in items if i.get(column) == value]
        items.sort(key=by_seq)
        return items

    def parent_chain(self, record: Record) -> list[Record]:
        """The contexts above a context, nearest first (the project last)."""
        chain: list[Record] = []
        seen = {record.get("id")}
        current = self.resolve("Context", record.get("parent_id"))
        while current is not None and current["id"] not in seen and len(chain) < _MAX_DEPTH:
            chain.append(current)
            seen.add(current["id"])
            current = self.resolve("Context", current.get("parent_id"))
        return chain

    def ancestors(self, record: Record) -> list[Record]:
        """Typed contexts above *record*, from the top down (the project excluded)."""
        chain = [r for r in self.parent_chain(record) if self.schema.is_a(r[TYPE], "TypedContext")]
        chain.reverse()
        return chain

    def descendants(self, record: Record) -> list[Record]:
        """Typed contexts below *record*, breadth first."""
        out: list[Record] = []
        seen = {record.get("id")}
        level = [record.get("id")]
        while level:
            children = self.lookup_many("Context", "parent_id", level)
            children = [c for c in children if c["id"] not in seen]
            children.sort(key=by_seq)
            seen.update(c["id"] for c in children)
            out.extend(c for c in children if self.schema.is_a(c[TYPE], "TypedContext"))
            level = [c["id"] for c in children]
        return out

    def link(self, record: Record) -> list[dict[str, Any]]:
        """The ``link`` of a context or version: the project first, the entity last.

        For a version the contexts run down to the asset's parent and the version
        itself comes last; the asset has no entry of its own (``StandardStructure``
        takes the asset's name separately and would otherwise repeat it).
        """
        entity_type = record[TYPE]
        if self.schema.is_a(entity_type, "Context"):
            chain = [record, *self.parent_chain(record)]
            chain.reverse()
            return [_link_entry(r) for r in chain]
        if entity_type == "AssetVersion":
            asset = self.resolve("Asset", record.get("asset_id"))
            if asset is None:
                return []
            parent = self.resolve("Context", asset.get("context_id"))
            head = self.link(parent) if parent is not None else []
            name = f"{asset.get('name')} v{record.get('version')}"
            return [*head, {"type": "AssetVersion", "id": record["id"], "name": name}]
        return []

    # -- writes -------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside succeed together or are undone together."""
        with self.lock:
            if self._journal is not None:
                raise RuntimeError("transactions do not nest")
            self._journal = []
            try:
                yield
            except BaseException:
                self._undo(self._journal)
                raise
            else:
                if self._journal:
                    self.revision += 1
            finally:
                self._journal = None

    def insert(self, type_name: str, record: Record) -> Record:
        """Store a new row (the caller has checked keys and uniqueness)."""
        record = dict(record)
        record[TYPE] = type_name
        if SEQ not in record:
            self._seq += 1
            record[SEQ] = self._seq
        else:
            self._seq = max(self._seq, record[SEQ])
        self._put(type_name, self.key_of(type_name, record), record)
        if self._journal is not None:
            self._journal.append(("insert", type_name, self.key_of(type_name, record)))
        return record

    def replace(self, record: Record, changes: Mapping[str, Any]) -> Record:
        """Store *record* with *changes* applied; return the new row."""
        type_name = record[TYPE]
        key = self.key_of(type_name, record)
        new = {**record, **changes}
        self._reindex(type_name, key, record, new)
        self._rows[type_name][key] = new
        if self._journal is not None:
            self._journal.append(("replace", type_name, key, record, new))
        return new

    def remove(self, record: Record) -> None:
        type_name = record[TYPE]
        key = self.key_of(type_name, record)
        current = self._rows[type_name].pop(key)
        self._unindex(type_name, key, current)
        family = self._family.get(self.schema.root[type_name])
        if family is not None and not isinstance(key, tuple):
            family.pop(key, None)
        if self._journal is not None:
            self._journal.append(("remove", type_name, key, current))

    def _put(self, type_name: str, key: Any, record: Record) -> None:
        self._rows[type_name][key] = record
        for column, index in self._index[type_name].items():
            value = record.get(column)
            if value is not None and _hashable(value):
                index.setdefault(value, set()).add(key)
        if not isinstance(key, tuple):
            self._family.setdefault(self.schema.root[type_name], {})[key] = type_name

    def _unindex(self, type_name: str, key: Any, record: Record) -> None:
        for column, index in self._index[type_name].items():
            value = record.get(column)
            if value is not None and _hashable(value):
                bucket = index.get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del index[value]

    def _reindex(self, type_name: str, key: Any, old: Record, new: Record) -> None:
        for column, index in self._index[type_name].items():
            before, after = old.get(column), new.get(column)
            if before == after:
                continue
            if before is not None and _hashable(before):
                bucket = index.get(before)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del index[before]
            if after is not None and _hashable(after):
                index.setdefault(after, set()).add(key)

    def _undo(self, journal: list[tuple[Any, ...]]) -> None:
        for entry in reversed(journal):
            action, type_name, key = entry[:3]
            if action == "insert":
                record = self._rows[type_name].pop(key)
                self._unindex(type_name, key, record)
                if not isinstance(key, tuple):
                    self._family[self.schema.root[type_name]].pop(key, None)
            elif action == "replace":
                old, new = entry[3], entry[4]
                self._reindex(type_name, key, new, old)
                self._rows[type_name][key] = old
            elif action == "remove":
                self._put(type_name, key, entry[3])

    # -- persistence --------------------------------------------------------------------

    def snapshot(self) -> list[Record]:
        """All rows; cheap, because rows are never mutated in place."""
        with self.lock:
            return [r for rows in self._rows.values() for r in rows.values()]

    def load(self, records: Iterable[Record]) -> int:
        """Replace the contents with *records*; return how many were kept.

        Rows of types or columns the schema no longer declares are dropped, so a state
        file written by an older version still loads.
        """
        with self.lock:
            for name in self._rows:
                self._rows[name].clear()
                for index in self._index[name].values():
                    index.clear()
            self._family.clear()
            self._seq = 0
            kept = 0
            for record in sorted(records, key=lambda r: r.get(SEQ, 0)):
                type_name = record.get(TYPE)
                if type_name not in self._rows:
                    continue
                columns = set(self.schema.stored_columns(type_name)) | {TYPE, SEQ}
                self.insert(type_name, {k: v for k, v in record.items() if k in columns})
                kept += 1
            return kept


def _link_entry(record: Record) -> dict[str, Any]:
    kind = "Project" if record[TYPE] == "Project" else "TypedContext"
    return {"type": kind, "id": record["id"], "name": record.get("name")}


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | tuple)
