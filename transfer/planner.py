"""The planner: from a selection and two locations to the files to move.

For each destination the plan lists the components to send (sequence members expanded),
their source and destination resource identifiers (the destination's from its own
structure, never the source's raw path), the components skipped because they are
already fully available there, and those missing at the source.

Queries are batched: components and sequence members are fetched with everything the
plan and the common structures need in their projections, 500 ids per query, so the
number of ftrack requests grows with the number of components / 500, not per file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import ftrack_api.exception
import ftrack_api.inspection
import ftrack_api.symbol

from ..accessors.errors import UnsafeResourceIdentifierError
from ..accessors.paths import safe_relative
from .errors import SelectionError
from .selection import PAGE_SIZE, EntityRef, chunks, quote_ids

logger = logging.getLogger(__name__)

_COMPONENT_PROJECTION = (
    # container: structures ask every file whether it belongs to a sequence; projected,
    # so that is not one lazy query per component.
    "id, name, file_type, size, system_type, container_id, container.id, container.system_type, version_id, "
    "version.id, version.version, version.link, version.asset_id, version.task_id, "
    "version.asset.name, version.asset.context_id, "
    "component_locations.location_id, component_locations.resource_identifier"
)
_MEMBER_PROJECTION = (
    "id, name, file_type, size, container_id, container.id, "
    "component_locations.location_id, component_locations.resource_identifier"
)


@dataclasses.dataclass(frozen=True)
class Filters:
    """Narrow a selection (used by sync and schedules)."""

    asset_types: tuple[str, ...] = ()
    task_types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()
    max_age: float | None = None  # seconds since the version was published

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Filters:
        return cls(**dict(values or {}))

    def expression(self) -> str:
        """Extra ``and`` conditions for the component query ('' when no filter)."""
        terms = []

        def names(values: Sequence[str]) -> str:
            for value in values:
                if '"' in value:
                    raise SelectionError(f"filter value {value!r} cannot contain quotes")
            return "(" + ", ".join(f'"{v}"' for v in values) + ")"

        if self.asset_types:
            terms.append(f"version.asset.type.name in {names(self.asset_types)}")
        if self.task_types:
            terms.append(f"version.task.type.name in {names(self.task_types)}")
        if self.statuses:
            terms.append(f"version.status.name in {names(self.statuses)}")
        if self.components:
            terms.append(f"name in {names(self.components)}")
        if self.assets:
            terms.append(f"version.asset.name in {names(self.assets)}")
        if self.max_age is not None:
            since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=self.max_age)
            terms.append(f'version.date after "{since.strftime("%Y-%m-%dT%H:%M:%S")}"')
        return "".join(f" and {t}" for t in terms)


@dataclasses.dataclass(frozen=True)
class PlanFile:
    """One file to move. ``component_id`` is None for an additional (unregistered) file."""

    component_id: str | None
    source_ri: str
    dest_ri: str
    size: int
    label: str


@dataclasses.dataclass(frozen=True)
class PlanComponent:
    """A component to register at the destination once its files have landed.

    Sequence and container members are components of their own (``container_id`` set):
    each is registered as it lands, so availability grows while a sequence arrives.
    """

    component_id: str
    name: str
    kind: str  # file, sequence, container
    label: str
    resource_identifier: str
    container_id: str | None = None
    members: int = 0


@dataclasses.dataclass(frozen=True)
class Skipped:
    component_id: str | None
    label: str
    reason: str


@dataclasses.dataclass
class Leg:
    """What goes to one destination."""

    destination: str
    components: list[PlanComponent] = dataclasses.field(default_factory=list)
    files: list[PlanFile] = dataclasses.field(default_factory=list)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclasses.dataclass
class Plan:
    source: str
    legs: list[Leg]
    missing: list[Skipped] = dataclasses.field(default_factory=list)
    selected: int = 0

    @property
    def files(self) -> int:
        return sum(len(leg.files) for leg in self.legs)

    @property
    def bytes(self) -> int:
        return sum(leg.bytes for leg in self.legs)

    @property
    def empty(self) -> bool:
        return self.files == 0 and not any(leg.components for leg in self.legs)

    def summary(self) -> str:
        """One line: what moves where, what is skipped and why."""
        from .units import counted, format_size

        parts = []
        for leg in self.legs:
            top = [c for c in leg.components if c.container_id is None]
            parts.append(
                f"{counted(len(top), 'component')} ({counted(len(leg.files), 'file')}, {format_size(leg.bytes)}) "
                f"from {self.source} to {leg.destination}"
            )
            if leg.skipped:
                parts.append(f"{len(leg.skipped)} already at {leg.destination}")
        if self.missing:
            parts.append(f"{len(self.missing)} not available at {self.source}")
        return "; ".join(parts)


class Planner:
    """Plans sends with one ftrack session (not thread-safe, like the session)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    # ------------------------------------------------------------------ public

    def plan(
        self,
        selection: Sequence[EntityRef],
        source: Any,
        destinations: Sequence[Any],
        *,
        component_names: Sequence[str] = (),
        additional_files: Sequence[str] = (),
        filters: Filters | None = None,
        require_at_source: bool = False,
    ) -> Plan:
        """Plan sending *selection* from the *source* Location entity to each destination."""
        filters = filters or Filters()
        if component_names:
            filters = dataclasses.replace(filters, components=tuple(component_names))
        components = self.collect(selection, filters, source if require_at_source else None)
        containers = [c for c in components if c["system_type"] in ("sequence", "container")]
        self.prefetch_for_structures(components, containers)

        plan = Plan(
            source=source["name"],
            legs=[Leg(d["name"]) for d in destinations],
            selected=len(components),
        )
        for component in components:
            if component["system_type"] != "file":
                continue
            label = self.label(component)
            src_locations = self.locations(component, ())
            source_ri = src_locations.get((component["id"], source["id"]))
            if source_ri is None:
                plan.missing.append(
                    Skipped(component["id"], label, f"not available at {source['name']}")
                )
                continue
            for leg, destination in zip(plan.legs, destinations, strict=True):
                self._plan_file(leg, destination, component, source_ri, label, src_locations)
        for container, members in self.members(containers):
            label = self.label(container)
            src_locations = self.locations(container, members)
            self._plan_container(
                plan, source, destinations, container, members, label, src_locations
            )
            # Planned: the frames' entities are not needed again (see members()).
            self._forget(members)

        for path in additional_files:
            self._plan_additional(plan, source, path)
        return plan

    # ------------------------------------------------------------------ queries

    def collect(
        self, selection: Sequence[EntityRef], filters: Filters, at: Any | None
    ) -> list[Any]:
        """Top-level components under the selection, with plan data prefetched."""
        if not selection:
            raise SelectionError(
                "nothing selected; select versions, tasks, shots, lists or a project"
            )
        by_kind: dict[str, list[str]] = {}
        for ref in selection:
            by_kind.setdefault(ref.kind, []).append(ref.id)
        for list_id in by_kind.pop("list", []):
            for kind, ids in self._list_items(list_id).items():
                by_kind.setdefault(kind, []).extend(ids)
        conditions = {
            "component": "id in {ids}",
            "version": "version_id in {ids}",
            "asset": "version.asset_id in {ids}",
            # ancestors holds typed contexts only, so a project needs project_id.
            "context": "(version.asset.context_id in {ids} or version.asset.parent.ancestors.id in {ids}"
            " or version.asset.parent.project_id in {ids} or version.task_id in {ids})",
        }
        extra = filters.expression()
        if at is not None:
            extra += f' and component_locations any (location_id is "{at["id"]}")'
        found: dict[str, Any] = {}
        for kind, ids in by_kind.items():
            for batch in chunks(sorted(set(ids))):
                condition = conditions[kind].format(ids=quote_ids(batch))
                if kind != "component":
                    condition += " and container_id is none"
                expression = (
                    f"select {_COMPONENT_PROJECTION} from Component where {condition}{extra}"
                )
                for component in self.session.query(expression, page_size=PAGE_SIZE):
                    found[component["id"]] = component
        return sorted(found.values(), key=lambda c: (self.label(c), c["id"]))

    def _list_items(self, list_id: str) -> dict[str, list[str]]:
        entity = self.session.query(f'select id from List where id is "{list_id}"').first()
        if entity is None:
            raise SelectionError(f"unknown list {list_id}")
        kind = "version" if entity.entity_type == "AssetVersionList" else "context"
        items = self.session.query(f'select entity_id from ListObject where list_id is "{list_id}"')
        return {kind: [item["entity_id"] for item in items]}

    def members(self, containers: Sequence[Any]) -> Iterator[tuple[Any, list[Any]]]:
        """Each sequence or container with its members (in name order), one at a time.

        Members come from paged queries ordered by container, so a send of many thousand
        frames never holds all their entities at once: the caller plans a container,
        then forgets its members.
        """
        by_id = {c["id"]: c for c in containers}
        for batch in chunks(sorted(by_id)):
            expression = (
                f"select {_MEMBER_PROJECTION} from FileComponent "
                f"where container_id in {quote_ids(batch)} order by container_id, name"
            )
            current: str | None = None
            group: list[Any] = []
            for member in self.session.query(expression, page_size=PAGE_SIZE):
                if member["container_id"] != current:
                    if current is not None:
                        yield by_id.pop(current), group
                    current, group = member["container_id"], []
                group.append(member)
            if current is not None:
                yield by_id.pop(current), group
        for container in by_id.values():  # containers without members
            yield container, []

    def _forget(self, entities: Iterable[Any]) -> None:
        """Drop entities (and their ComponentLocations) from the session's cache."""
        cache = self.session.cache
        key = self.session.cache_key_maker.key
        for entity in entities:
            for row in entity["component_locations"]:
                with contextlib.suppress(KeyError):
                    cache.remove(key(ftrack_api.inspection.identity(row)))
            with contextlib.suppress(KeyError):
                cache.remove(key(ftrack_api.inspection.identity(entity)))

    def prefetch_for_structures(self, components: Sequence[Any], containers: Sequence[Any]) -> None:
        """Load what structures read (project names, sequence padding) in a few queries."""
        project_ids = set()
        for component in components:
            version = component["version"]
            if version and version is not ftrack_api.symbol.NOT_SET and version["link"]:
                project_ids.add(version["link"][0]["id"])
        for batch in chunks(sorted(project_ids)):
            self.session.query(f"select id, name from Project where id in {quote_ids(batch)}").all()
        sequences = sorted(c["id"] for c in containers if c["system_type"] == "sequence")
        for batch in chunks(sequences):
            self.session.query(
                f"select padding from SequenceComponent where id in {quote_ids(batch)}"
            ).all()

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def locations(component: Any, members: Iterable[Any]) -> dict[tuple[str, str], str]:
        """``(component id, location id) -> resource identifier`` from prefetched data."""
        found = {}
        for entity in (component, *members):
            for row in entity["component_locations"]:
                found[(entity["id"], row["location_id"])] = row["resource_identifier"]
        return found

    @staticmethod
    def label(component: Any) -> str:
        """``demo/sq010/sh0010/plate v002 main``: how people name a component."""
        version = component["version"]
        if not version or version is ftrack_api.symbol.NOT_SET:
            return component["name"]
        link = version["link"] or []
        path = "/".join(item["name"] for item in link[:-1])
        asset = version["asset"]["name"]
        return f"{path}/{asset} v{version['version']:03d} {component['name']}"

    def _destination_ri(
        self, destination: Any, component: Any, source_ri: str | None, label: str
    ) -> str:
        structure = destination.structure
        if not structure:
            raise SelectionError(
                f"location {destination['name']} has no structure configured on this machine"
            )
        try:
            ri = structure.get_resource_identifier(
                component, {"source_resource_identifier": source_ri}
            )
        except ftrack_api.exception.StructureError as error:
            raise SelectionError(
                f"cannot place {label} at {destination['name']}: {error}"
            ) from None
        try:
            return safe_relative(ri) if ri else ri
        except UnsafeResourceIdentifierError as error:
            raise SelectionError(
                f"the structure of {destination['name']} gave an unsafe path for {label}: {error}"
            ) from None

    def _plan_file(
        self,
        leg: Leg,
        destination: Any,
        component: Any,
        source_ri: str,
        label: str,
        known: Mapping[tuple[str, str], str],
    ) -> None:
        if (component["id"], destination["id"]) in known:
            leg.skipped.append(
                Skipped(component["id"], label, f"already available at {destination['name']}")
            )
            return
        dest_ri = self._destination_ri(destination, component, source_ri, label)
        leg.components.append(
            PlanComponent(component["id"], component["name"], "file", label, dest_ri)
        )
        leg.files.append(
            PlanFile(component["id"], source_ri, dest_ri, int(component["size"] or 0), label)
        )

    def _plan_container(
        self,
        plan: Plan,
        source: Any,
        destinations: Sequence[Any],
        component: Any,
        members: Sequence[Any],
        label: str,
        known: Mapping[tuple[str, str], str],
    ) -> None:
        kind = component["system_type"]
        at_source = [m for m in members if (m["id"], source["id"]) in known]
        if not members and (component["id"], source["id"]) not in known:
            plan.missing.append(
                Skipped(component["id"], label, f"not available at {source['name']}")
            )
            return
        if members and not at_source:
            plan.missing.append(
                Skipped(
                    component["id"],
                    label,
                    f"none of its {len(members)} files is at {source['name']}",
                )
            )
            return
        if len(at_source) < len(members):
            plan.missing.append(
                Skipped(
                    component["id"],
                    label,
                    f"{len(members) - len(at_source)} of its {len(members)} files are not at {source['name']}",
                )
            )
        container_source_ri = known.get((component["id"], source["id"]))
        for leg, destination in zip(plan.legs, destinations, strict=True):
            missing_members = [m for m in at_source if (m["id"], destination["id"]) not in known]
            container_there = (component["id"], destination["id"]) in known
            if not missing_members and container_there:
                leg.skipped.append(
                    Skipped(component["id"], label, f"already available at {destination['name']}")
                )
                continue
            dest_ri = self._destination_ri(destination, component, container_source_ri, label)
            leg.components.append(
                PlanComponent(
                    component["id"], component["name"], kind, label, dest_ri, members=len(at_source)
                )
            )
            for member in missing_members:
                member_label = f"{label} [{member['name']}]"
                member_source_ri = known[(member["id"], source["id"])]
                member_ri = self._destination_ri(
                    destination, member, member_source_ri, member_label
                )
                leg.components.append(
                    PlanComponent(
                        member["id"],
                        member["name"],
                        "member",
                        member_label,
                        member_ri,
                        component["id"],
                    )
                )
                leg.files.append(
                    PlanFile(
                        member["id"],
                        member_source_ri,
                        member_ri,
                        int(member["size"] or 0),
                        member_label,
                    )
                )

    def _plan_additional(self, plan: Plan, source: Any, path: str) -> None:
        """An extra file or folder named by its path under the source root, sent as is."""
        for ri, size in additional_files(source, path):
            for leg in plan.legs:
                leg.files.append(PlanFile(None, ri, ri, size, f"additional file {ri}"))


def additional_files(source: Any, path: str) -> list[tuple[str, int]]:
    """The files (identifier, size) an additional path names at the *source* Location;
    a path outside its root, or missing there, raises SelectionError. Used to refuse
    such a path before a send is queued, and again when it is planned."""
    try:
        relative = safe_relative(path.strip())
    except UnsafeResourceIdentifierError as error:
        raise SelectionError(
            f"additional file {path!r} is outside {source['name']}: {error.reason}"
        ) from None
    if not relative:
        raise SelectionError(
            f"additional file {path!r} names the whole of {source['name']}; name a file or folder"
        )
    accessor = source.accessor
    if not accessor:
        raise SelectionError(
            f"location {source['name']} has no accessor configured on this machine"
        )
    try:
        return list(_walk(accessor, relative))
    except ftrack_api.exception.AccessorResourceNotFoundError:
        raise SelectionError(
            f"additional file {relative!r} does not exist at {source['name']}"
        ) from None


def _walk(accessor: Any, resource_identifier: str) -> Iterable[tuple[str, int]]:
    """Files under an identifier (itself if it is a file), with sizes."""
    if accessor.is_container(resource_identifier):
        for child in accessor.list(resource_identifier):
            yield from _walk(accessor, child)
    else:
        yield resource_identifier, accessor.stat(resource_identifier).size
