"""What a user selected, as entity references the planner understands.

Selections come from the web UI (``{"entityId", "entityType"}`` with the UI's legacy
type names: ``show`` for a project, ``task`` for every typed context) or from the command
line (an id, or a readable path such as ``demo/sq010/sh0010/compositing``,
``demo/sq010/sh0010/plate/v002`` or a component as plans label it). Both become
:class:`EntityRef` values with ftrack schema type names; resolving costs a bounded number
of queries, not one per entity.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import SelectionError

_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_VERSION = re.compile(r"^v(\d+)$", re.IGNORECASE)

#: Web UI entity types -> the schema's base type used for queries.
UI_TYPES = {
    "show": "Project",
    "project": "Project",
    "task": "TypedContext",
    "typedcontext": "TypedContext",
    "assetversion": "AssetVersion",
    "component": "Component",
    "list": "List",
    "asset": "Asset",
}

#: Base types a selection can name, in the order ids are looked up.
SELECTABLE = ("Context", "AssetVersion", "Component", "List", "Asset")


@dataclasses.dataclass(frozen=True)
class EntityRef:
    """A selected entity: its query type (``Context`` covers projects and typed contexts)."""

    entity_type: str
    id: str
    label: str = ""

    @property
    def kind(self) -> str:
        """``context``, ``version``, ``component``, ``list`` or ``asset``."""
        return {
            "Context": "context",
            "Project": "context",
            "TypedContext": "context",
            "AssetVersion": "version",
            "Component": "component",
            "List": "list",
            "Asset": "asset",
        }.get(self.entity_type, "context")


def quote_ids(ids: Iterable[str]) -> str:
    """``("a", "b")`` for an ``in`` clause; ids are checked to be UUID-shaped first."""
    checked = []
    for value in ids:
        if not _UUID.match(value):
            raise SelectionError(f"{value!r} is not an ftrack id")
        checked.append(f'"{value}"')
    return "(" + ", ".join(checked) + ")"


#: Rows per page of the large queries (a send's components, a sequence's members).
#: ftrack_api pages by 500; 1,000 halves the queries of a big send. Paging follows the
#: server's next offset, so a server that returns less per page still pages right.
PAGE_SIZE = 1000


def chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    """Batches for ``in (...)`` clauses, so a query stays a sane size."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def from_ui(selection: Sequence[Mapping[str, Any]]) -> list[EntityRef]:
    """Decode a web UI selection; unknown entity types raise SelectionError."""
    refs = []
    for item in selection or ():
        ui_type = str(item.get("entityType", ""))
        entity_type = UI_TYPES.get(ui_type.lower())
        entity_id = str(item.get("entityId", ""))
        if entity_type is None:
            raise SelectionError(
                f'cannot send a selection of type "{ui_type}"; select versions, tasks, '
                "shots or other contexts, lists, projects or components"
            )
        if not _UUID.match(entity_id):
            raise SelectionError(f"{entity_id!r} is not an ftrack id")
        refs.append(
            EntityRef(
                "Context" if entity_type in ("Project", "TypedContext") else entity_type, entity_id
            )
        )
    return refs


def resolve(session: Any, specs: Sequence[str]) -> list[EntityRef]:
    """Turn ids and readable paths into references, checking each exists in ftrack."""
    if not specs:
        raise SelectionError(
            "nothing selected; name at least one entity by id or path (e.g. demo/sq010/sh0010)"
        )
    ids = [s for s in specs if _UUID.match(s)]
    refs: dict[str, EntityRef] = {}
    remaining = set(ids)
    for entity_type in SELECTABLE:
        if not remaining:
            break
        for batch in chunks(sorted(remaining)):
            for entity in session.query(
                f"select id from {entity_type} where id in {quote_ids(batch)}"
            ):
                refs[entity["id"]] = EntityRef(entity_type, entity["id"], entity["id"])
        remaining -= set(refs)
    if remaining:
        raise SelectionError(
            f"unknown entity id {sorted(remaining)[0]}: no project, context, version, component, "
            "list or asset has it in ftrack"
        )
    result = [refs[s] for s in ids]
    for spec in specs:
        if not _UUID.match(spec):
            result.append(_resolve_path(session, spec))
    return result


def project_ref(session: Any, project: str) -> EntityRef:
    """The project named (or with the id) *project*; else a message listing projects."""
    name = project.strip()
    if _UUID.match(name):
        row = session.query(f"select id, name from Project where id in {quote_ids([name])}").first()
        if row is not None:
            return EntityRef("Context", row["id"], row["name"])
    elif name and '"' not in name:
        found = _context_by_path(session, [name])
        if found is not None:
            return found
    names = sorted(p["name"] for p in session.query("select name from Project"))
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    raise SelectionError(
        f"unknown project {project!r}; projects in ftrack: {shown or 'none'} "
        "(--project takes a project's name or id)"
    )


def _resolve_path(session: Any, spec: str) -> EntityRef:
    """A context, ``<context>/<asset>``, ``<context>/<asset>/v002`` or
    ``<context>/<asset>/v002/<component>``; also a component as plans and Jobs label it,
    ``<context>/<asset> v002 <component>``, so a line of output can be pasted back."""
    parts = _split_label([p for p in spec.strip("/").split("/") if p])
    if not parts or any(p in (".", "..") for p in parts) or any('"' in p for p in parts):
        raise SelectionError(
            f"{spec!r} is not an entity path; use an id or a path like demo/sq010/sh0010"
        )
    hint = (
        f"use an id or a path like {parts[0]}/sq010/sh0010/compositing, "
        f"{parts[0]}/sq010/sh0010/plate or {parts[0]}/sq010/sh0010/plate/v002"
    )
    if len(parts) >= 3 and _VERSION.match(parts[-1]):
        version = _version_by_path(session, spec, parts[:-2], parts[-2], parts[-1], hint)
        return EntityRef("AssetVersion", version, spec)
    if len(parts) >= 4 and _VERSION.match(parts[-2]):
        version = _version_by_path(session, spec, parts[:-3], parts[-3], parts[-2], hint)
        component = session.query(
            f'select id from Component where version_id is "{version}" and name is "{parts[-1]}"'
        ).first()
        if component is None:
            raise SelectionError(
                f"unknown entity {spec!r}: {parts[-3]} {parts[-2]} has no component "
                f"{parts[-1]!r}; `ftrack-transfer send --dry-run` on the version lists them"
            )
        return EntityRef("Component", component["id"], spec)
    context = _context_by_path(session, parts)
    if context is not None:
        return dataclasses.replace(context, label=spec)
    parent = _context_by_path(session, parts[:-1]) if len(parts) >= 2 else None
    if parent is not None:
        asset = session.query(
            f'select id from Asset where context_id is "{parent.id}" and name is "{parts[-1]}"'
        ).first()
        if asset is not None:
            return EntityRef("Asset", asset["id"], spec)
    raise SelectionError(
        f"unknown entity {spec!r}: no project, context or asset has that path; {hint}"
    )


def _split_label(parts: list[str]) -> list[str]:
    """``[..., "plate v002 main"]`` -> ``[..., "plate", "v002", "main"]``."""
    if not parts:
        return parts
    words = parts[-1].split()
    for index, word in enumerate(words[1:], 1):
        if _VERSION.match(word):
            tail = [" ".join(words[index + 1 :])] if words[index + 1 :] else []
            return [*parts[:-1], " ".join(words[:index]), word, *tail]
    return parts


def _version_by_path(
    session: Any, spec: str, context_parts: Sequence[str], asset_name: str, tag: str, hint: str
) -> str:
    context = _context_by_path(session, context_parts)
    if context is None:
        raise SelectionError(
            f"unknown entity {spec!r}: no context {'/'.join(context_parts)!r}; {hint}"
        )
    number = int(tag[1:])
    version = session.query(
        f'select id from AssetVersion where asset.context_id is "{context.id}" '
        f'and asset.name is "{asset_name}" and version is {number}'
    ).first()
    if version is None:
        raise SelectionError(f"unknown entity {spec!r}: {asset_name} has no version {number} there")
    return str(version["id"])


def _context_by_path(session: Any, parts: Sequence[str]) -> EntityRef | None:
    project = session.query(f'select id from Project where name is "{parts[0]}"').first()
    if project is None:
        return None
    if len(parts) == 1:
        return EntityRef("Context", project["id"], parts[0])
    candidates = session.query(
        f'select id, link from TypedContext where project_id is "{project["id"]}" and name is "{parts[-1]}"'
    ).all()
    for candidate in candidates:
        names = [item["name"] for item in candidate["link"][1:]]
        if names == list(parts[1:]):
            return EntityRef("Context", candidate["id"], "/".join(parts))
    return None
