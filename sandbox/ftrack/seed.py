"""The demo studio every sandbox starts with.

Built-in ftrack locations, the studio's own locations (``hq``, ``la``, ``cloud`` and the
vendor's), its people, and one project with sequences, shots, tasks, assets and a few
versions *without* components (publishing media into them is the product's job). The
vendor is assigned to ``sq010/sh0020/compositing``.

Rows go through the same :class:`~.writes.Writer` as API requests, so defaults and
derived values are those a client would get. Ids are random per state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ftrack_api.symbol

from .declaration import OBJECT_TYPE_IDS
from .store import Store
from .writes import Writer

BUILTIN_LOCATIONS = {
    "ftrack.origin": ftrack_api.symbol.ORIGIN_LOCATION_ID,
    "ftrack.unmanaged": ftrack_api.symbol.UNMANAGED_LOCATION_ID,
    "ftrack.review": ftrack_api.symbol.REVIEW_LOCATION_ID,
    "ftrack.server": ftrack_api.symbol.SERVER_LOCATION_ID,
    "ftrack.connect": ftrack_api.symbol.CONNECT_LOCATION_ID,
}

SERVICE_USER = "pipeline"
VENDOR_USER = "vera@vfxvendor.example"

#: (name, label, description) of the studio's storage locations.
STUDIO_LOCATIONS = (
    ("hq", "HQ", "Main studio storage"),
    ("la", "LA office", "Los Angeles office storage"),
    ("cloud", "Cloud", "Object storage shared by all sites"),
    (VENDOR_USER, "VFX Vendor", "Delivery area of the VFX vendor"),
)

#: username, first name, last name, e-mail.
USERS = (
    (SERVICE_USER, "Pipeline", "Service", "pipeline@studio.example"),
    ("alice", "Alice", "Martin", "alice@studio.example"),
    ("bob", "Bob", "Lee", "bob@studio.example"),
    ("carol", "Carol", "Diaz", "carol@studio.example"),
    (VENDOR_USER, "Vera", "Novak", VENDOR_USER),
)

GROUPS = {"coordinators": ("alice",), "vendors": (VENDOR_USER,)}

#: status name -> state short code.
STATUSES = {
    "Not started": "NOT_STARTED",
    "In progress": "IN_PROGRESS",
    "Pending review": "IN_PROGRESS",
    "Approved": "DONE",
    "On hold": "BLOCKED",
}
STATES = {
    "NOT_STARTED": "Not started",
    "IN_PROGRESS": "In progress",
    "DONE": "Done",
    "BLOCKED": "Blocked",
}

TASK_TYPES = ("Compositing", "Lighting", "Animation", "Modeling")
ASSET_TYPES = {"Plate": "plate", "Render": "render", "Geometry": "geo", "Upload": "upload"}

PROJECT = ("demo", "Demo Project")
SHOTS = {"sq010": ("sh0010", "sh0020"), "sq020": ("sh0030",)}
TASKS = {"compositing": "Compositing", "lighting": "Lighting"}
ASSETS = {"plate": "Plate", "comp": "Render"}
#: (shot path, asset, version number, status, task or None).
VERSIONS = (
    ("sq010/sh0010", "plate", 1, "Approved", None),
    ("sq010/sh0010", "plate", 2, "Pending review", None),
    ("sq010/sh0010", "comp", 1, "Pending review", "compositing"),
    ("sq010/sh0020", "plate", 1, "Approved", None),
    ("sq020/sh0030", "plate", 1, "Approved", None),
)
ASSIGNMENT = (VENDOR_USER, "sq010/sh0020/compositing")


@dataclasses.dataclass(frozen=True)
class SeedInfo:
    """Ids of the seeded entities, by name or path (``"sq010/sh0010/compositing"``)."""

    project_id: str
    project_name: str
    project_full_name: str
    users: dict[str, str]
    groups: dict[str, str]
    #: Built-in and studio locations, by name.
    locations: dict[str, str]
    sequences: dict[str, str]
    shots: dict[str, str]
    tasks: dict[str, str]
    asset_types: dict[str, str]
    #: By ``"<sequence>/<shot>/<asset>"``.
    assets: dict[str, str]
    #: By ``"<sequence>/<shot>/<asset>/v<n>"``.
    versions: dict[str, str]
    statuses: dict[str, str]
    task_types: dict[str, str]
    object_types: dict[str, str]
    #: The vendor's assignment to ``assignment_task``.
    appointment_id: str
    assignment_task: str = ASSIGNMENT[1]
    service_user: str = SERVICE_USER
    vendor_user: str = VENDOR_USER
    studio_locations: tuple[str, ...] = tuple(name for name, _, _ in STUDIO_LOCATIONS)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["studio_locations"] = list(self.studio_locations)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeedInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "studio_locations" in values:
            values["studio_locations"] = tuple(values["studio_locations"])
        return cls(**values)


def bootstrap(store: Store) -> None:
    """What even an empty server has: the built-in locations and a service account.

    A real server always holds the built-in locations; the service account
    (``pipeline``) is the user a session logs in as.
    """
    with store.transaction():
        writer = Writer(store, None)
        seeder = _Seeder(writer)
        seeder.builtin_locations()
        seeder.user(*USERS[0])
        writer.finish()


def seed_demo(store: Store) -> SeedInfo:
    """Fill an empty *store* with the demo studio; return what was created."""
    with store.transaction():
        writer = Writer(store, None)
        info = _Seeder(writer).run()
        writer.finish()
    return info


class _Seeder:
    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def create(self, entity_type: str, **data: Any) -> str:
        return str(self.writer.create(entity_type, None, data)["id"])

    def builtin_locations(self) -> dict[str, str]:
        return {
            name: self.create("Location", id=location_id, name=name, label=name)
            for name, location_id in BUILTIN_LOCATIONS.items()
        }

    def user(self, username: str, first: str, last: str, email: str) -> str:
        return self.create("User", username=username, first_name=first, last_name=last, email=email)

    def run(self) -> SeedInfo:
        locations = self.builtin_locations()
        for name, label, description in STUDIO_LOCATIONS:
            locations[name] = self.create(
                "Location", name=name, label=label, description=description
            )

        users = {username: self.user(username, *rest) for username, *rest in USERS}
        # Everything from here on is created by the service account.
        self.writer.actor = self.writer.store.get("User", users[SERVICE_USER])
        groups = {}
        for name, members in GROUPS.items():
            groups[name] = self.create("Group", name=name)
            for member in members:
                self.create("Membership", group_id=groups[name], user_id=users[member])

        states = {
            short: self.create("State", name=name, short=short) for short, name in STATES.items()
        }
        statuses = {
            name: self.create(
                "Status", name=name, state={"__entity_type__": "State", "id": states[short]}
            )
            for name, short in STATUSES.items()
        }
        object_types = {
            name: self.create("ObjectType", id=object_type_id, name=name, is_leaf=name == "Task")
            for name, object_type_id in OBJECT_TYPE_IDS.items()
        }
        task_types = {name: self.create("Type", name=name) for name in TASK_TYPES}
        asset_types = {
            name: self.create("AssetType", name=name, short=short)
            for name, short in ASSET_TYPES.items()
        }

        name, full_name = PROJECT
        project = self.create("Project", name=name, full_name=full_name, root=name, status="active")
        sequences, shots, tasks, assets = {}, {}, {}, {}
        for sequence, shot_names in SHOTS.items():
            sequences[sequence] = self.create(
                "Sequence", name=sequence, parent_id=project, status_id=statuses["In progress"]
            )
            for shot in shot_names:
                path = f"{sequence}/{shot}"
                shots[path] = self.create(
                    "Shot",
                    name=shot,
                    parent_id=sequences[sequence],
                    status_id=statuses["In progress"],
                )
                for task, task_type in TASKS.items():
                    tasks[f"{path}/{task}"] = self.create(
                        "Task",
                        name=task,
                        parent_id=shots[path],
                        type_id=task_types[task_type],
                        status_id=statuses["Not started"],
                    )
                for asset, asset_type in ASSETS.items():
                    assets[f"{path}/{asset}"] = self.create(
                        "Asset", name=asset, context_id=shots[path], type_id=asset_types[asset_type]
                    )

        versions = {}
        for shot_path, asset, number, status, task in VERSIONS:
            versions[f"{shot_path}/{asset}/v{number}"] = self.create(
                "AssetVersion",
                asset_id=assets[f"{shot_path}/{asset}"],
                version=number,
                status_id=statuses[status],
                task_id=tasks[f"{shot_path}/{task}"] if task else None,
                comment=f"{asset} v{number:03d}",
            )

        username, task_path = ASSIGNMENT
        appointment = self.create(
            "Appointment",
            context_id=tasks[task_path],
            resource_id=users[username],
            type="assignment",
        )
        return SeedInfo(
            project_id=project,
            project_name=name,
            project_full_name=full_name,
            users=users,
            groups=groups,
            locations=locations,
            sequences=sequences,
            shots=shots,
            tasks=tasks,
            asset_types=asset_types,
            assets=assets,
            versions=versions,
            statuses=statuses,
            task_types=task_types,
            object_types=object_types,
            appointment_id=appointment,
        )
