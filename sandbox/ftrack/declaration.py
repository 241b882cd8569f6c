"""The entity types the sandbox serves, declared as Python data.

About thirty-five types: locations and components, the project tree, versions, lists,
users and groups, assignments, jobs, statuses, notes and metadata. Names, primary keys,
default projections, ``alias_for`` values and defaults agree with a real ftrack server
for every type the client's location, structure and action code touches, because the
client shapes its traffic from them (``session.query("Component ...")`` selects the
default projections; ``session.get`` relies on the primary key). Properties a real
server has but nothing here uses are left out.
"""

from __future__ import annotations

from typing import Any

from .schema import (
    NO_DEFAULT,
    UID,
    Coll,
    EntityType,
    Link,
    Prop,
    Ref,
    Scalar,
    Through,
)

#: ``object_typeid`` classifiers of the typed contexts (ftrack's built-in object types).
OBJECT_TYPE_IDS = {
    "Task": "11c137c0-ee7e-4f9c-91c5-8c77cec22b2c",
    "Shot": "bad911de-3bd6-47b9-8b46-3476e237cb36",
    "Sequence": "e5139355-61da-4c8f-9db4-3abc870166bc",
    "Episode": "22139355-61da-4c8f-9db4-3abc870166bc",
    "AssetBuild": "4be63b64-5010-42fb-bf1f-428af9d638f0",
    "Folder": "3c133785-51cb-11e3-980a-20c9d0831e59",
    "Milestone": "01decdd1-51cb-11e3-9d5b-20c9d0831e59",
}

JOB_STATUSES = ("queued", "running", "done", "failed")


# -- property groups ------------------------------------------------------------------

FK = Scalar(format="foreign_key")
DATETIME = Scalar(format="date-time")


def _integer(default: Any = NO_DEFAULT) -> Scalar:
    return Scalar("integer", default=default)


def _boolean(default: Any = NO_DEFAULT) -> Scalar:
    return Scalar("boolean", default=default)


def _id() -> dict[str, Prop]:
    return {"id": Scalar(default=UID)}


def _annotations() -> dict[str, Prop]:
    """Notes and metadata, attachable to most production entities."""
    return {
        "notes": Coll("Note", fk="parent_id", type_column="parent_type"),
        "metadata": Coll("Metadata", fk="parent_id", type_column="parent_type", mapped=True),
    }


def _appointments(fk: str) -> dict[str, Prop]:
    return {
        "appointments": Coll("Appointment", fk=fk),
        "assignments": Coll("Appointment", fk=fk, where=(("type", "assignment"),)),
        "allocations": Coll("Appointment", fk=fk, where=(("type", "allocation"),)),
    }


def _context() -> dict[str, Prop]:
    return {
        **_id(),
        "name": Scalar(default=""),
        "context_type": Scalar(),
        "parent": Ref("Context", "parent_id"),
        "parent_id": FK,
        "project_id": FK,
        "link": Link(),
        "children": Coll("Context", fk="parent_id"),
        "assets": Coll("Asset", fk="context_id"),
        **_appointments("context_id"),
        "created_at": DATETIME,
        "created_by": Ref("User", "created_by_id"),
        "created_by_id": FK,
        "notes": _annotations()["notes"],
    }


_CONTEXT_IMMUTABLE = ("id", "link", "created_by_id", "created_by", "created_at")


def _project() -> dict[str, Prop]:
    return {
        **_context(),
        "metadata": _annotations()["metadata"],
        "full_name": Scalar(),
        "root": Scalar(),
        "status": Scalar(),
        "color": Scalar(),
        "is_global": _boolean(False),
        "is_private": _boolean(False),
        "start_date": DATETIME,
        "end_date": DATETIME,
        "descendants": Coll("TypedContext", computed="descendants"),
    }


def _typed_context(object_type_id: str | None = None) -> dict[str, Prop]:
    return {
        **_context(),
        "metadata": _annotations()["metadata"],
        "ancestors": Coll("TypedContext", computed="ancestors"),
        "descendants": Coll("TypedContext", computed="descendants"),
        "project": Ref("Project", "project_id"),
        "project_id": FK,
        "object_type": Ref("ObjectType", "object_type_id"),
        "object_type_id": FK
        if object_type_id is None
        else Scalar(format="foreign_key", default=object_type_id),
        "status": Ref("Status", "status_id"),
        "status_id": FK,
        "type": Ref("Type", "type_id"),
        "type_id": FK,
        "description": Scalar(),
        "bid": Scalar("number"),
        "sort": Scalar("number"),
        "start_date": DATETIME,
        "end_date": DATETIME,
    }


def _component() -> dict[str, Prop]:
    return {
        **_id(),
        "name": Scalar(default="main"),
        "file_type": Scalar(),
        "size": _integer(0),
        "system_type": Scalar(),
        "version": Ref("AssetVersion", "version_id"),
        "version_id": FK,
        "container": Ref("ContainerComponent", "container_id"),
        "container_id": FK,
        "component_locations": Coll("ComponentLocation", fk="component_id"),
        "metadata": _annotations()["metadata"],
    }


def _container() -> dict[str, Prop]:
    return {**_component(), "members": Coll("Component", fk="container_id")}


def _list(items: str) -> dict[str, Prop]:
    props: dict[str, Prop] = {
        **_id(),
        "name": Scalar(default=""),
        "is_open": _boolean(True),
        "date": DATETIME,
        "owner": Ref("User", "user_id"),
        "user_id": FK,
        "project": Ref("Project", "project_id"),
        "project_id": FK,
        "system_type": Scalar(default="task"),
    }
    if items:
        props["items"] = Coll(items, through=Through("ListObject", "list_id", "entity_id"))
        props["system_type"] = Scalar(default="assetversion" if items == "AssetVersion" else "task")
    return props


def _resource() -> dict[str, Prop]:
    return {**_id(), "resource_type": Scalar(), **_appointments("resource_id")}


# -- the declaration ------------------------------------------------------------------


def _component_type(name: str, props: dict[str, Prop], system_type: str, **kw: Any) -> EntityType:
    return EntityType(
        name,
        props,
        default_projections=("id", "system_type"),
        system_projections=("system_type", "version_id"),
        required=("system_type", "name", "id"),
        managed={"system_type": system_type} if system_type else {},
        update_name="component",
        **kw,
    )


def _typed_context_type(name: str) -> EntityType:
    object_type_id = OBJECT_TYPE_IDS[name]
    return EntityType(
        name,
        _typed_context(object_type_id),
        parent="TypedContext",
        default_projections=("context_type", "id", "name"),
        system_projections=("context_type", "object_type_id", "project_id"),
        immutable=(*_CONTEXT_IMMUTABLE, "object_type_id", "object_type"),
        required=("object_type_id", "context_type", "id", "name"),
        alias_for={"id": "Task", "classifiers": {"object_typeid": object_type_id}},
        managed={"context_type": "task", "object_type_id": object_type_id},
        update_name="task",
    )


def declare() -> list[EntityType]:
    """Every entity type, parents before their subtypes."""
    types = [
        EntityType(
            "Location",
            {
                **_id(),
                "name": Scalar(),
                "label": Scalar(),
                "description": Scalar(),
                "location_components": Coll(
                    "ComponentLocation", fk="location_id", on_delete="restrict"
                ),
            },
            required=("name", "id"),
            unique=(("name",),),
        ),
        EntityType(
            "ComponentLocation",
            {
                **_id(),
                "component": Ref("Component", "component_id"),
                "component_id": FK,
                "location": Ref("Location", "location_id"),
                "location_id": FK,
                "resource_identifier": Scalar(),
            },
            system_projections=("location_id", "component_id"),
            unique=(("component_id", "location_id"),),
        ),
        _component_type("Component", _component(), "", abstract=True),
        _component_type("FileComponent", _component(), "file", parent="Component"),
        _component_type("ContainerComponent", _container(), "container", parent="Component"),
        _component_type(
            "SequenceComponent",
            {**_container(), "padding": _integer(0)},
            "sequence",
            parent="ContainerComponent",
        ),
        EntityType(
            "AssetVersion",
            {
                **_id(),
                "version": _integer(),
                "asset": Ref("Asset", "asset_id"),
                "asset_id": FK,
                "task": Ref("Task", "task_id"),
                "task_id": FK,
                "components": Coll("Component", fk="version_id"),
                "link": Link(),
                "comment": Scalar(default=""),
                "date": DATETIME,
                "is_published": _boolean(True),
                "status": Ref("Status", "status_id"),
                "status_id": FK,
                "user": Ref("User", "user_id"),
                "user_id": FK,
                **_annotations(),
            },
            system_projections=("asset_id",),
            immutable=("id", "link"),
            required=("id", "is_published"),
        ),
        EntityType(
            "Asset",
            {
                **_id(),
                "name": Scalar(),
                "context_id": FK,
                "parent": Ref("Context", "context_id"),
                "type": Ref("AssetType", "type_id"),
                "type_id": FK,
                "versions": Coll("AssetVersion", fk="asset_id"),
                "metadata": _annotations()["metadata"],
            },
            system_projections=("context_id",),
        ),
        EntityType(
            "AssetType",
            {
                **_id(),
                "name": Scalar(),
                "short": Scalar(),
                "component": Scalar(default="main"),
                "assets": Coll("Asset", fk="type_id", on_delete="restrict"),
            },
            required=("id", "name", "short"),
        ),
        EntityType(
            "Context",
            _context(),
            abstract=True,
            default_projections=("context_type", "id", "name"),
            system_projections=("context_type",),
            immutable=_CONTEXT_IMMUTABLE,
            required=("context_type", "id", "name"),
            update_name="task",
        ),
        EntityType(
            "Project",
            _project(),
            parent="Context",
            default_projections=("context_type", "id", "name"),
            system_projections=("context_type",),
            immutable=_CONTEXT_IMMUTABLE,
            required=("context_type", "id", "name"),
            alias_for="Show",
            managed={"context_type": "show"},
            update_name="show",
        ),
        EntityType(
            "TypedContext",
            _typed_context(),
            parent="Context",
            abstract=True,
            default_projections=("context_type", "id", "name"),
            system_projections=("context_type", "object_type_id", "project_id"),
            immutable=_CONTEXT_IMMUTABLE,
            required=("object_type_id", "context_type", "id", "name"),
            alias_for="Task",
            update_name="task",
        ),
        *(_typed_context_type(name) for name in OBJECT_TYPE_IDS),
        EntityType("List", _list(""), abstract=True, system_projections=("project_id",)),
        EntityType(
            "AssetVersionList",
            _list("AssetVersion"),
            parent="List",
            system_projections=("project_id",),
            alias_for={"id": "List", "classifiers": {"entity": "assetversion"}},
            managed={"system_type": "assetversion"},
            update_name="list",
        ),
        EntityType(
            "TypedContextList",
            _list("Task"),
            parent="List",
            system_projections=("project_id",),
            alias_for={"id": "List", "classifiers": {"entity": "task"}},
            managed={"system_type": "task"},
            update_name="list",
        ),
        EntityType(
            "ListObject",
            {**_id(), "entity_id": Scalar(), "list": Ref("List", "list_id"), "list_id": FK},
            default_projections=("id", "entity_id", "list_id"),
            required=("id", "entity_id", "list_id"),
        ),
        EntityType(
            "Resource",
            _resource(),
            abstract=True,
            system_projections=("resource_type",),
        ),
        EntityType(
            "User",
            {
                **_resource(),
                "resource_type": Scalar(default="user"),
                "username": Scalar(),
                "email": Scalar(),
                "first_name": Scalar(),
                "last_name": Scalar(),
                "is_active": _boolean(),
                "memberships": Coll("Membership", fk="user_id"),
                "metadata": _annotations()["metadata"],
            },
            parent="Resource",
            system_projections=("resource_type",),
            immutable=("resource_type", "id"),
            required=("username", "is_active", "resource_type", "id"),
            unique=(("username",),),
            managed={"resource_type": "user"},
        ),
        EntityType(
            "Group",
            {
                **_resource(),
                "resource_type": Scalar(default="group"),
                "name": Scalar(default=""),
                "local": _boolean(),
                "parent": Ref("Group", "parent_id"),
                "parent_id": FK,
                "children": Coll("Group", fk="parent_id"),
                "memberships": Coll("Membership", fk="group_id"),
            },
            parent="Resource",
            system_projections=("resource_type",),
            immutable=("resource_type", "id"),
            required=("name", "resource_type", "id"),
            managed={"resource_type": "group"},
        ),
        EntityType(
            "Membership",
            {
                **_id(),
                "group": Ref("Group", "group_id"),
                "group_id": FK,
                "user": Ref("User", "user_id"),
                "user_id": FK,
            },
            required=("group_id", "user_id", "id"),
            unique=(("group_id", "user_id"),),
        ),
        EntityType(
            "Appointment",
            {
                **_id(),
                "context": Ref("Context", "context_id"),
                "context_id": FK,
                "resource": Ref("Resource", "resource_id"),
                "resource_id": FK,
                "type": Scalar(),
            },
            required=("id", "type", "resource_id", "context_id"),
        ),
        EntityType(
            "Job",
            {
                **_id(),
                "status": Scalar(default="queued", enum=JOB_STATUSES),
                "type": Scalar(default="api_job"),
                "data": Scalar(format="json"),
                "user": Ref("User", "user_id"),
                "user_id": FK,
                "created_at": DATETIME,
                "finished_at": DATETIME,
                "job_components": Coll("JobComponent", fk="job_id"),
            },
            immutable=("id", "type"),
            required=("id", "status", "type"),
        ),
        EntityType(
            "JobComponent",
            {
                "component": Ref("Component", "component_id"),
                "component_id": FK,
                "job": Ref("Job", "job_id"),
                "job_id": FK,
            },
            primary_key=("component_id", "job_id"),
            default_projections=("component_id", "job_id"),
            immutable=("component_id", "job_id"),
            required=("component_id", "job_id"),
        ),
        EntityType(
            "Status",
            {
                **_id(),
                "name": Scalar(),
                "color": Scalar(),
                "is_active": _boolean(),
                "sort": _integer(0),
                "state": Ref("State", "state_id"),
            },
            required=("id", "is_active"),
            alias_for="TaskStatus",
        ),
        EntityType(
            "State",
            {**_id(), "name": Scalar(), "short": Scalar()},
            alias_for="StatusType",
        ),
        EntityType(
            "ObjectType",
            {
                **_id(),
                "name": Scalar(),
                "icon": Scalar(default="default"),
                "sort": _integer(0),
                "is_leaf": _boolean(False),
                "is_schedulable": _boolean(False),
                "is_statusable": _boolean(True),
                "is_taskable": _boolean(True),
                "is_time_reportable": _boolean(False),
                "is_typeable": _boolean(True),
            },
            required=("id", "name"),
        ),
        EntityType(
            "Type",
            {
                **_id(),
                "name": Scalar(),
                "color": Scalar(),
                "sort": _integer(0),
                "is_billable": _boolean(True),
            },
            alias_for="TaskType",
        ),
        EntityType(
            "Note",
            {
                **_id(),
                "content": Scalar(),
                "author": Ref("User", "user_id"),
                "user_id": FK,
                "date": DATETIME,
                "parent_id": Scalar(),
                "parent_type": Scalar(),
                "in_reply_to": Ref("Note", "in_reply_to_id"),
                "in_reply_to_id": FK,
                "replies": Coll("Note", fk="in_reply_to_id"),
                "is_todo": _boolean(False),
                "metadata": _annotations()["metadata"],
            },
            required=("id", "user_id"),
        ),
        EntityType(
            "Metadata",
            {
                "key": Scalar(),
                "value": Scalar(),
                "parent_id": Scalar(),
                "parent_type": Scalar(),
            },
            primary_key=("parent_id", "key"),
            default_projections=("parent_id", "key", "value", "parent_type"),
            immutable=("parent_id", "key"),
            required=("parent_id", "key", "value", "parent_type"),
            alias_for="Meta",
        ),
    ]
    for entity_type in types:
        if not entity_type.update_name:
            entity_type.update_name = entity_type.name.lower()
    return types
