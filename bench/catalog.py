"""Published work in the sandbox ftrack server, written straight into its store.

The benchmarks need thousands of components already available at ``hq``. Publishing
them through the client would copy every byte once more and cost minutes of set-up, so
rows are written with the server's own :class:`Writer` (the code path every API write
takes, with the same defaults and checks); only set-up uses this, never a measured side.

Every run gets a fresh project or version, so nothing has to be unregistered between
runs: a destination never holds a component before its run.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

from ftrack_transfer.sandbox.ftrack import FtrackServer
from ftrack_transfer.sandbox.ftrack.seed import SERVICE_USER
from ftrack_transfer.sandbox.ftrack.writes import Writer

#: Rows written per store transaction (the store keeps an undo journal per transaction).
_BATCH = 2000


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One file at hq: its component name, resource identifier there, size and type."""

    name: str
    resource_identifier: str
    size: int
    file_type: str = ".bin"


@dataclasses.dataclass(frozen=True)
class Published:
    project: str
    project_id: str
    version_id: str
    component_ids: tuple[str, ...]


class Catalog:
    """Creates projects, versions and components available at a location."""

    def __init__(self, server: FtrackServer, location: str = "hq") -> None:
        self.server = server
        self.location = location
        self._names = itertools.count(1)
        info = server.seed_info
        if info is None:
            raise RuntimeError("the benchmark catalog needs a seeded sandbox ftrack server")
        self.info = info

    def _writer_run(self, work: Any) -> Any:
        store = self.server.store
        with store.lock, store.transaction():
            actor = store.lookup("User", "username", SERVICE_USER)[0]
            writer = Writer(store, actor)
            result = work(writer)
            writer.finish()
        return result

    def _location_id(self, name: str) -> str:
        with self.server.store.lock:
            found = self.server.store.lookup("Location", "name", name)
        if not found:
            raise KeyError(f"no location {name!r} in the sandbox ftrack server")
        return str(found[0]["id"])

    def ensure_locations(self, names: Sequence[str]) -> None:
        """Location entities that no sites config declares (the stock path's targets)."""

        def work(writer: Writer) -> None:
            for name in names:
                if not self.server.store.lookup("Location", "name", name):
                    writer.create("Location", None, {"name": name, "label": name})

        self._writer_run(work)

    def project(self, prefix: str) -> tuple[str, str, str]:
        """A new project with one shot and one asset: ``(name, project id, asset id)``."""
        name = f"{prefix}{next(self._names):03d}"
        info = self.info

        def work(writer: Writer) -> tuple[str, str]:
            def create(entity_type: str, **data: Any) -> str:
                return str(writer.create(entity_type, None, data)["id"])

            project = create("Project", name=name, full_name=name, root=name, status="active")
            shot = create(
                "Shot", name="sh010", parent_id=project, status_id=info.statuses["In progress"]
            )
            asset = create(
                "Asset", name="media", context_id=shot, type_id=info.asset_types["Upload"]
            )
            return project, asset

        project_id, asset_id = self._writer_run(work)
        return name, project_id, asset_id

    def version(self, asset_id: str) -> str:
        info = self.info
        return self._writer_run(
            lambda writer: str(
                writer.create(
                    "AssetVersion",
                    None,
                    {"asset_id": asset_id, "status_id": info.statuses["Approved"]},
                )["id"]
            )
        )

    def add_files(self, version_id: str, entries: Sequence[FileEntry]) -> list[str]:
        """One FileComponent per entry, available at the catalog's location."""
        location_id = self._location_id(self.location)
        ids: list[str] = []
        for start in range(0, len(entries), _BATCH):
            batch = entries[start : start + _BATCH]

            def work(writer: Writer, batch: Sequence[FileEntry] = batch) -> list[str]:
                created = []
                for entry in batch:
                    component = str(
                        writer.create(
                            "FileComponent",
                            None,
                            {
                                "name": entry.name,
                                "file_type": entry.file_type,
                                "size": entry.size,
                                "version_id": version_id,
                            },
                        )["id"]
                    )
                    writer.create(
                        "ComponentLocation",
                        None,
                        {
                            "component_id": component,
                            "location_id": location_id,
                            "resource_identifier": entry.resource_identifier,
                        },
                    )
                    created.append(component)
                return created

            ids += self._writer_run(work)
        return ids

    def add_sequence(
        self,
        version_id: str,
        name: str,
        pattern: str,
        frames: Sequence[FileEntry],
        padding: int,
        file_type: str,
    ) -> str:
        """A SequenceComponent whose members are *frames* (named by frame number), all at
        the catalog's location; *pattern* is the sequence's own resource identifier."""
        location_id = self._location_id(self.location)

        def work(writer: Writer) -> str:
            sequence = str(
                writer.create(
                    "SequenceComponent",
                    None,
                    {
                        "name": name,
                        "file_type": file_type,
                        "padding": padding,
                        "size": sum(f.size for f in frames),
                        "version_id": version_id,
                    },
                )["id"]
            )
            writer.create(
                "ComponentLocation",
                None,
                {
                    "component_id": sequence,
                    "location_id": location_id,
                    "resource_identifier": pattern,
                },
            )
            for frame in frames:
                member = str(
                    writer.create(
                        "FileComponent",
                        None,
                        {
                            "name": frame.name,
                            "file_type": file_type,
                            "size": frame.size,
                            "container_id": sequence,
                        },
                    )["id"]
                )
                writer.create(
                    "ComponentLocation",
                    None,
                    {
                        "component_id": member,
                        "location_id": location_id,
                        "resource_identifier": frame.resource_identifier,
                    },
                )
            return sequence

        return self._writer_run(work)

    def publish_files(self, prefix: str, entries: Sequence[FileEntry]) -> Published:
        """A new project holding one version with a component per entry."""
        name, project_id, asset_id = self.project(prefix)
        version_id = self.version(asset_id)
        ids = self.add_files(version_id, entries)
        return Published(name, project_id, version_id, tuple(ids))
