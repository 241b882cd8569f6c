"""What each envelope ``uri`` of ``/api/v3/event`` does, and the shape of its ``result``.

The shapes follow what the real client does with a reply: ``create`` returns a list
(the client unwraps a single element), ``find`` a list, ``update`` a list whose first
element the client returns, ``update_many`` the list of updated tasks.
"""

from __future__ import annotations

from typing import Any

from .model import ServiceError
from .parties import PartyError
from .store import Store

#: Names the client may use for one collection.
ALIASES = {
    "job": "transfer",
    "transfers": "transfer",
    "jobs": "transfer",
    "tasks": "task",
    "share": "volume",
    "folder": "volume",
    "shares": "volume",
    "folders": "volume",
    "volumes": "volume",
    "sites": "site",
    "users": "user",
    "clients": "client",
}
ENTITY_TYPES = [
    "transfer",
    "job",
    "task",
    "site",
    "user",
    "volume",
    "folder",
    "share",
    "client",
    "workspace",
    "setting",
]
_UPDATABLE = {
    "transfer": ["status", "name", "code", "metadata", "priority", "settings"],
    "task": ["status", "priority", "metadata"],
}


def entity_type(name: str) -> str:
    name = name.lower()
    return ALIASES.get(name, name)


class Api:
    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, method: str, envelope: dict[str, Any], user: dict[str, Any]) -> Any:
        uri = str(envelope.get("uri") or "").strip("/").lower()
        data = envelope.get("data")
        entity_id = envelope.get("id")
        head, _, op = uri.partition("/")
        if uri == "entitytypes":
            return ENTITY_TYPES
        if head == "attributes":
            return self._attributes(data or {})
        if head == "setting":
            return self._setting(method, data or {}, entity_id)
        if head == "workspace" and op:
            return self._workspace(method, op, data or {}, user)
        kind = entity_type(head)
        handler = getattr(self, f"_{op.replace('/', '_')}", None) if op else None
        if handler is None or op not in (
            "create",
            "find",
            "edit",
            "delete",
            "deactivate",
            "activate",
        ):
            raise ServiceError(f"The sandbox does not support {method} {uri!r}")
        return handler(method, kind, data, entity_id, envelope.get("query"), user)

    # -- entity operations ----------------------------------------------------------------

    def _create(
        self,
        method: str,
        kind: str,
        data: Any,
        entity_id: str | None,
        query: Any,
        user: dict[str, Any],
    ) -> Any:
        _expect(method, "POST", kind, "create")
        if kind == "transfer":
            if not isinstance(data, dict):
                raise ServiceError("A transfer is created from a dictionary")
            return [self.store.create_transfer(data, user)]
        if kind == "task":
            if not entity_id:
                raise ServiceError("Tasks are added to a transfer: supply its id (entityid)")
            return self.store.add_tasks(entity_id, data, user)
        if kind in ("site", "user", "volume"):
            _require_admin(user, f"create a {kind}")
            return [self._create_entity(kind, data or {})]
        raise ServiceError(f"The sandbox cannot create {kind!r} entities")

    def _create_entity(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        code = data.get("code") or data.get("email")
        if not code:
            raise ServiceError(f"A {kind} needs a code")
        if kind == "volume":
            return self.store.add_volume(
                code, str(data.get("path") or ""), default=bool(data.get("default"))
            )
        raise ServiceError(
            f"A {kind} needs a folder on this machine: add it with the service's add_{kind}()"
        )

    def _find(
        self,
        method: str,
        kind: str,
        data: Any,
        entity_id: str | None,
        query: Any,
        user: dict[str, Any],
    ) -> Any:
        _expect(method, "GET", kind, "find")
        try:
            return self.store.find(kind, query, data or {}, entity_id)
        except ValueError as error:  # QuerySyntaxError
            raise ServiceError(str(error)) from None

    def _edit(
        self,
        method: str,
        kind: str,
        data: Any,
        entity_id: str | None,
        query: Any,
        user: dict[str, Any],
    ) -> Any:
        _expect(method, "PUT", kind, "edit")
        if not entity_id:
            raise ServiceError(f"Supply the id of the {kind} to modify")
        if kind == "transfer":
            if not isinstance(data, dict) or not data:
                raise ServiceError("Supply the attributes to modify as a dictionary")
            return [self.store.edit_transfer(entity_id, data)]
        if kind == "task":
            if isinstance(data, dict) and "tasks" in data:
                data = data["tasks"]
            return self.store.edit_tasks(entity_id, data)
        raise ServiceError(f"The sandbox cannot modify {kind!r} entities")

    def _delete(
        self,
        method: str,
        kind: str,
        data: Any,
        entity_id: str | None,
        query: Any,
        user: dict[str, Any],
    ) -> Any:
        _expect(method, "DELETE", kind, "delete")
        if kind == "task":
            raise ServiceError("Tasks cannot be deleted: set their status to excluded")
        if kind != "transfer" or not entity_id:
            raise ServiceError(f"The sandbox cannot delete {kind!r} entities")
        return self.store.delete_transfer(entity_id)

    def _deactivate(
        self,
        method: str,
        kind: str,
        data: Any,
        entity_id: str | None,
        query: Any,
        user: dict[str, Any],
    ) -> Any:
        return self._set_active(kind, entity_id, query, "disabled", user)

    def _activate(
        self,
        method: str,
        kind: str,
        data: Any,
        entity_id: str | None,
        query: Any,
        user: dict[str, Any],
    ) -> Any:
        return self._set_active(kind, entity_id, query, "enabled", user)

    def _set_active(
        self, kind: str, entity_id: str | None, query: Any, status: str, user: dict[str, Any]
    ) -> bool:
        _require_admin(user, f"change a {kind}")
        if kind != "user":
            raise ServiceError(f"The sandbox can only (de)activate users, not {kind!r}")
        with self.store.lock:
            target = self.store.entities["user"].get(entity_id or "") or (
                self.store.user_by_email(str(query or ""))
            )
            if target is None:
                raise ServiceError(f"No user {entity_id or query!r}")
            target["status"] = status
            self.store.touch()
        return True

    # -- the rest -------------------------------------------------------------------------

    def _attributes(self, data: dict[str, Any]) -> list[str]:
        kind = entity_type(str(data.get("entitytype") or ""))
        if data.get("update"):
            return _UPDATABLE.get(kind, [])
        samples = {
            "transfer": [
                "id",
                "code",
                "name",
                "status",
                "progress",
                "speed",
                "etr",
                "size",
                "source",
                "source_hr",
                "destination",
                "destination_hr",
                "created",
                "modified",
                "finished",
                "metadata",
                "settings",
                "user",
                "user_hr",
                "priority",
                "message",
                "tasks",
            ],
            "task": [
                "id",
                "uri",
                "job",
                "job_hr",
                "status",
                "source",
                "destination",
                "size",
                "progress",
                "priority",
                "metadata",
                "created",
                "finished",
                "time",
                "message",
            ],
        }
        if kind in samples:
            return samples[kind]
        with self.store.lock:
            first = next(iter(self.store.entities.get(kind, {}).values()), None)
        if first is None:
            raise ServiceError(f"Unknown entity type {kind!r}")
        return sorted(k for k in first if k != "path")

    def _setting(self, method: str, data: dict[str, Any], entity_id: str | None) -> Any:
        scope = {
            "entitytype": data.get("entitytype"),
            "entity_id": entity_id,
            "integration": data.get("integration"),
            "data": data.get("data") if method == "GET" else None,
        }
        if method == "GET":
            if "name" not in data:  # get_settings
                return self.store.all_settings(data.get("entitytype"), entity_id)
            return self.store.get_setting(data.get("name"), **scope)
        if method == "PUT":
            self.store.set_setting(data["name"], data.get("value"), **scope)
            return True
        if method == "DELETE":
            return self.store.delete_setting(data["name"], **scope)
        raise ServiceError(f"{method} is not a settings operation")

    def _workspace(self, method: str, op: str, data: dict[str, Any], user: dict[str, Any]) -> Any:
        if op == "find":
            with self.store.lock:
                return [dict(self.store.workspace)]
        if op.startswith("integration/"):
            with self.store.lock:
                self.store.integration_calls.append(
                    {"integration": op.split("/")[1], "user": user["code"], **data}
                )
            return True
        if op == "file" and data.get("op") == "exists":
            try:
                endpoint = self.store.directory.resolve(str(data.get("path")))
            except PartyError as error:
                raise ServiceError(str(error)) from None
            return endpoint.local().exists()
        raise ServiceError(f"The sandbox does not support workspace/{op} {data.get('op', '')}")


def _expect(method: str, wanted: str, kind: str, op: str) -> None:
    if method != wanted:
        raise ServiceError(f"{kind}/{op} is a {wanted} call, not {method}")


def _require_admin(user: dict[str, Any], what: str) -> None:
    if user.get("role") != "admin":
        raise ServiceError(f"Only an admin may {what} ({user['code']} is {user.get('role')})")
