"""How entity types are described, and the relations the server derives from them.

A type is declared (in :mod:`.declaration`) as :class:`EntityType` data. Each property
knows both what the client is told (:meth:`fragment`, the JSON ``query_schemas``
serves, in the format ``ftrack_api.entity.factory`` builds classes from) and what the
store needs: the foreign-key column behind a reference, the inverse key of a
collection, the delete rule. :class:`Schema` works out families, indexes and delete
rules, and the ``schema_hash`` the client compares with its cache.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import pathlib
from collections.abc import Iterable
from typing import Any

from .errors import UnknownAttributeError, UnknownEntityTypeError

#: Marks a property without a default (``None`` is a valid default).
NO_DEFAULT: Any = type("NoDefault", (), {"__repr__": lambda self: "NO_DEFAULT"})()
#: The client replaces this default with a new UUID4 string.
UID = "{uid}"


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A stored value. ``type`` and ``format`` are the JSON-schema words the client reads."""

    type: str = "string"
    format: str | None = None
    default: Any = NO_DEFAULT
    enum: tuple[str, ...] | None = None

    def fragment(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.format:
            out["format"] = self.format
        if self.default is not NO_DEFAULT:
            out["default"] = self.default
        if self.enum:
            out["enum"] = list(self.enum)
        return out


@dataclasses.dataclass(frozen=True)
class Link:
    """The computed ``link`` attribute: the path from the project down to the entity.

    Declared as a string, as on a real server, although its value is a JSON list.
    """

    def fragment(self) -> dict[str, Any]:
        return {"type": "string"}


@dataclasses.dataclass(frozen=True)
class Ref:
    """A reference to one entity, stored as the foreign-key column ``fk``."""

    target: str
    fk: str

    def fragment(self) -> dict[str, Any]:
        return {"$ref": self.target}


@dataclasses.dataclass(frozen=True)
class Through:
    """A many-to-many collection stored as rows of ``link_type``."""

    link_type: str
    owner_column: str
    item_column: str


@dataclasses.dataclass(frozen=True)
class Coll:
    """A collection of entities of ``target``.

    Stored, it is the inverse of the column ``fk`` on the target (optionally limited to
    the rows matching ``where``, e.g. appointments of type ``assignment``). Otherwise it
    goes ``through`` link rows or is ``computed`` (``ancestors``, ``descendants``).
    ``on_delete`` says what deleting the owner does to the items: ``cascade``,
    ``restrict`` (refuse) or ``detach`` (clear their key).
    """

    target: str
    fk: str | None = None
    where: tuple[tuple[str, Any], ...] = ()
    on_delete: str = "cascade"
    #: Column of the item that records the owner's entity type (notes, metadata).
    type_column: str | None = None
    through: Through | None = None
    computed: str | None = None
    #: A key/value ``mapped_array`` (metadata) rather than a plain ``array``.
    mapped: bool = False

    def fragment(self) -> dict[str, Any]:
        if self.mapped:
            return {
                "type": "mapped_array",
                "items": {"$ref": self.target},
                "key_value_attributes": {"key": "key", "value": "value"},
            }
        return {"type": "array", "items": {"$ref": self.target}}


Prop = Scalar | Link | Ref | Coll


@dataclasses.dataclass
class EntityType:
    name: str
    properties: dict[str, Prop]
    #: Polymorphic parent: a query on the parent returns rows of this type too.
    parent: str | None = None
    #: Abstract types are queried, never created (Context, TypedContext, Component...).
    abstract: bool = False
    primary_key: tuple[str, ...] = ("id",)
    default_projections: tuple[str, ...] = ("id",)
    system_projections: tuple[str, ...] = ()
    immutable: tuple[str, ...] = ("id",)
    required: tuple[str, ...] = ("id",)
    alias_for: str | dict[str, Any] | None = None
    unique: tuple[tuple[str, ...], ...] = ()
    #: Values the server sets on every row of this type, whatever the client sends.
    managed: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The lower-case legacy name ``ftrack.update`` events use (``task``, ``show``...).
    update_name: str = ""

    def client_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "id": self.name,
            "properties": {name: prop.fragment() for name, prop in self.properties.items()},
            "primary_key": list(self.primary_key),
            "default_projections": list(self.default_projections),
            "system_projections": list(self.system_projections),
            "immutable": list(self.immutable),
            "computed": [],
            "required": list(self.required),
        }
        if self.alias_for is not None:
            schema["alias_for"] = self.alias_for
        return schema


# -- the model the server works with ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Incoming:
    """Rows of ``source`` whose ``column`` holds the id of a row being deleted."""

    source: str
    column: str
    on_delete: str
    #: The collection this comes from, for messages (``location_components``).
    via: str


class Schema:
    """The declaration with the relations worked out: families, indexes, delete rules."""

    def __init__(self, types: Iterable[EntityType]) -> None:
        self.types: dict[str, EntityType] = {t.name: t for t in types}
        self._check()
        self._children: dict[str, list[str]] = {name: [] for name in self.types}
        for t in self.types.values():
            if t.parent:
                self._children[t.parent].append(t.name)
        #: Every type with the concrete (creatable) types it covers, itself included.
        self.concrete: dict[str, tuple[str, ...]] = {
            name: tuple(n for n in self._descendants(name) if not self.types[n].abstract)
            for name in self.types
        }
        self.root: dict[str, str] = {name: self._root(name) for name in self.types}
        self._stored = {name: _stored_columns(t) for name, t in self.types.items()}
        self.indexed: dict[str, frozenset[str]] = self._indexed_columns()
        self.incoming: dict[str, tuple[Incoming, ...]] = self._incoming()
        self.client_schemas: list[dict[str, Any]] = [t.client_schema() for t in types]
        self.hash = schema_hash(self.client_schemas)

    def get(self, name: str) -> EntityType:
        try:
            return self.types[name]
        except KeyError:
            raise UnknownEntityTypeError(f"Unknown entity type '{name}'.") from None

    def prop(self, type_name: str, attribute: str) -> Prop:
        """Return the property *attribute* of *type_name* or of one of its subtypes.

        A query on a polymorphic type may name an attribute only some subtypes have
        (``Context`` rows that are typed contexts have ``ancestors``); rows of the other
        subtypes simply do not match.
        """
        for name in self._descendants(type_name):
            prop = self.types[name].properties.get(attribute)
            if prop is not None:
                return prop
        raise UnknownAttributeError(
            f"Unknown attribute '{attribute}' on entity type '{type_name}'."
        )

    def having(self, type_name: str, attribute: str) -> frozenset[str]:
        """Concrete types under *type_name* that have *attribute*."""
        return frozenset(
            n for n in self.concrete[type_name] if attribute in self.types[n].properties
        )

    def is_a(self, type_name: str, ancestor: str) -> bool:
        name: str | None = type_name
        while name is not None:
            if name == ancestor:
                return True
            name = self.types[name].parent
        return False

    def fk_columns(self, type_name: str) -> dict[str, Ref]:
        """Reference properties of a type by their foreign-key column."""
        return {p.fk: p for p in self.types[type_name].properties.values() if isinstance(p, Ref)}

    def stored_columns(self, type_name: str) -> tuple[str, ...]:
        """Columns a row of this type stores (scalars and hidden foreign keys)."""
        return self._stored[type_name]

    def _descendants(self, name: str) -> list[str]:
        out = [name]
        for child in self._children[name]:
            out.extend(self._descendants(child))
        return out

    def _root(self, name: str) -> str:
        while self.types[name].parent:
            name = self.types[name].parent  # type: ignore[assignment]
        return name

    def _check(self) -> None:
        for t in self.types.values():
            if t.parent and t.parent not in self.types:
                raise ValueError(f"{t.name}: unknown parent {t.parent}")
            for name, prop in t.properties.items():
                target = getattr(prop, "target", None)
                if target is not None and target not in self.types:
                    raise ValueError(f"{t.name}.{name}: unknown target {target}")
            for key in (*t.primary_key, *t.default_projections, *t.system_projections):
                if key not in t.properties:
                    raise ValueError(f"{t.name}: {key} is not a property")

    def _indexed_columns(self) -> dict[str, frozenset[str]]:
        """Columns with a value index: every foreign key, inverse key and unique key.

        Queries narrow candidates through these (``location_id is X``, reverse hops of
        ``version.asset.parent.project_id``), and unique checks stay O(1).
        """
        by_type: dict[str, set[str]] = {name: set() for name in self.types}
        for t in self.types.values():
            for name, prop in t.properties.items():
                if isinstance(prop, Scalar) and prop.format == "foreign_key":
                    by_type[t.name].add(name)
                elif isinstance(prop, Ref):
                    by_type[t.name].add(prop.fk)
                elif isinstance(prop, Coll) and prop.fk:
                    for target in self.concrete[prop.target]:
                        by_type[target].add(prop.fk)
                elif isinstance(prop, Coll) and prop.through:
                    link = prop.through
                    by_type[link.link_type].update((link.owner_column, link.item_column))
            for key in t.unique:
                by_type[t.name].add(key[0])
            if len(t.primary_key) > 1:
                by_type[t.name].add(t.primary_key[0])
        # A column indexed on one type is indexed on every type of its family.
        for name in self.types:
            root_cols = set()
            for member in self._descendants(self._root(name)):
                root_cols |= by_type[member]
            by_type[name] |= {c for c in root_cols if c in _stored_columns(self.types[name])}
        return {name: frozenset(cols) for name, cols in by_type.items()}

    def _incoming(self) -> dict[str, tuple[Incoming, ...]]:
        """For each concrete type, the rows that point at it and what deleting it does.

        A reference with a matching collection on the target takes the collection's
        rule; one without (``AssetVersion.user``) has its key cleared.
        """
        policies: dict[tuple[str, str, str], tuple[str, str]] = {}
        for t in self.types.values():
            for name, prop in t.properties.items():
                if isinstance(prop, Coll) and prop.fk:
                    for owner in self.concrete[t.name]:
                        for source in self.concrete[prop.target]:
                            policies[(owner, source, prop.fk)] = (prop.on_delete, name)
                elif isinstance(prop, Coll) and prop.through:
                    # Link rows of many-to-many collections go with either end.
                    link = prop.through
                    for owner in self.concrete[t.name]:
                        policies[(owner, link.link_type, link.owner_column)] = ("cascade", name)
                    for owner in self.concrete[self.root[prop.target]]:
                        policies[(owner, link.link_type, link.item_column)] = ("cascade", name)
        for t in self.types.values():
            for prop in t.properties.values():
                if not isinstance(prop, Ref):
                    continue
                for source in self.concrete[t.name]:
                    for owner in self.concrete[self.root[prop.target]]:
                        policies.setdefault((owner, source, prop.fk), ("detach", prop.fk))
        out: dict[str, list[Incoming]] = {name: [] for name in self.types}
        for (owner, source, column), (on_delete, via) in policies.items():
            out[owner].append(Incoming(source, column, on_delete, via))
        return {name: tuple(items) for name, items in out.items()}


def _stored_columns(t: EntityType) -> tuple[str, ...]:
    columns = [n for n, p in t.properties.items() if isinstance(p, Scalar)]
    for prop in t.properties.values():
        if isinstance(prop, Ref) and prop.fk not in columns:
            columns.append(prop.fk)
    return tuple(columns)


def schema_hash(schemas: list[dict[str, Any]]) -> str:
    """The client's rule: md5 of ``json.dumps(schemas, sort_keys=True)``."""
    encoded = json.dumps(schemas, sort_keys=True).encode("utf-8")
    return hashlib.md5(encoded, usedforsecurity=False).hexdigest()


def write_client_cache(directory: pathlib.Path | str, schema: Schema | None = None) -> pathlib.Path:
    """Write the schemas where a session with ``schema_cache_path=directory`` reads them.

    A session whose cache matches the server's ``schema_hash`` skips ``query_schemas``;
    pre-filling the cache also avoids the client's race on that file when several
    sessions start at once with an empty cache.
    """
    schema = schema or default_schema()
    path = pathlib.Path(directory) / CLIENT_CACHE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        json.dump(schema.client_schemas, handle, indent=4)
    return path


#: The file name ``ftrack_api.Session`` uses inside ``schema_cache_path``.
CLIENT_CACHE_FILE = "ftrack_api_schema_cache.json"


@functools.cache
def default_schema() -> Schema:
    """The schema every sandbox server serves (see :mod:`.declaration`)."""
    from .declaration import declare

    return Schema(declare())
