"""The workspace's entities: transfers and their tasks, sites, users, volumes, clients,
settings; creating, finding and changing them.

Everything is guarded by one re-entrant lock; :attr:`Store.changed` is notified on every
change so the executor and test helpers wake up instead of sleeping. Transfers are
mutated only here and by the executor, both under that lock.
"""

from __future__ import annotations

import json
import pathlib
import posixpath
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from . import views
from .model import (
    NEVER,
    RUNNABLE,
    TASK_STATUSES,
    ServiceError,
    Task,
    Transfer,
    new_id,
    now,
    transfer_json,
)
from .parties import Endpoint, Party, PartyDirectory, PartyError
from .query import compile_query

ROLES = ("admin", "employee", "standard")

CLIENT_SERVER, CLIENT_APP = 1, 0


class Store:
    """In-memory workspace state, optionally saved to and loaded from a JSON file."""

    def __init__(self, workspace: str, directory: PartyDirectory) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.directory = directory
        self.workspace = {"id": new_id(), "code": workspace, "name": workspace}
        self.entities: dict[str, dict[str, dict[str, Any]]] = {
            "site": {},
            "user": {},
            "volume": {},
            "client": {},
        }
        self.transfers: dict[str, Transfer] = {}
        self.archived: dict[str, Transfer] = {}
        self.settings: dict[str, Any] = {}
        self.api_keys: dict[str, str] = {}  # lower-case e-mail -> key
        self.integration_calls: list[dict[str, Any]] = []

    def touch(self) -> None:
        self.changed.notify_all()

    # -- registration ---------------------------------------------------------------------

    def add_site(self, code: str, root: pathlib.Path, *, main: bool = False) -> dict[str, Any]:
        with self.lock:
            site = self._by_code("site", code)
            if site is None:
                site = {"id": new_id(), "code": code, "name": code, "accsyn": False}
                site.update(status="online", main=False, created=now())
                self.entities["site"][site["id"]] = site
                client = {"id": new_id(), "code": f"{code}-server", "type": CLIENT_SERVER}
                client.update(status="online", site=site["id"], user=None, host_ident=code)
                self.entities["client"][client["id"]] = client
            party = Party("site", site["code"], site["id"], pathlib.Path(root))
            self.directory.add(party, main=main)
            for other in self.entities["site"].values():
                other["main"] = other["code"].lower() == self.directory.main_site
            for client in self._clients_of("site", site["id"]):
                self.directory.add_client(client["id"], party)
            self.touch()
            return dict(site)

    def add_user(
        self, email: str, root: pathlib.Path | None, role: str, api_key: str
    ) -> dict[str, Any]:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if "@" not in email:
            raise ValueError(f"A user code is an e-mail address, not {email!r}")
        with self.lock:
            user = self._by_code("user", email)
            if user is None:
                user = {"id": new_id(), "code": email, "email": email, "created": now()}
                self.entities["user"][user["id"]] = user
            user.update(role=role, status="enabled")
            self.api_keys.setdefault(email.lower(), api_key)
            if root is not None:
                party = Party("user", email, user["id"], pathlib.Path(root))
                self.directory.add(party)
                if not self._clients_of("user", user["id"]):
                    client = {"id": new_id(), "code": f"{email}-app", "type": CLIENT_APP}
                    client.update(status="online", site=None, user=user["id"], host_ident=email)
                    self.entities["client"][client["id"]] = client
                for client in self._clients_of("user", user["id"]):
                    self.directory.add_client(client["id"], party)
            self.touch()
            return dict(user)

    def add_volume(self, code: str, folder: str = "", *, default: bool = False) -> dict[str, Any]:
        with self.lock:
            volume = self._by_code("volume", code)
            if volume is None:
                volume = {"id": new_id(), "code": code, "name": code, "status": "online"}
                self.entities["volume"][volume["id"]] = volume
            volume["default"] = default
            volume["path"] = folder
            self.directory.add_volume(code, folder, default=default)
            self.touch()
            return dict(volume)

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return self._by_code("user", email)

    def _by_code(self, kind: str, code: str) -> dict[str, Any] | None:
        code = code.lower()
        return next((e for e in self.entities[kind].values() if e["code"].lower() == code), None)

    def _clients_of(self, kind: str, entity_id: str) -> list[dict[str, Any]]:
        return [c for c in self.entities["client"].values() if c.get(kind) == entity_id]

    # -- queries --------------------------------------------------------------------------

    def find(
        self,
        entitytype: str,
        expression: str | None,
        options: dict[str, Any],
        entity_id: str | None,
    ) -> list[dict[str, Any]]:
        predicate = compile_query(expression)
        with self.lock:
            if entitytype == "transfer":
                rows = self._transfer_rows(options, entity_id)
            elif entitytype == "task":
                rows = self._task_rows(options.get("parent") or entity_id)
            elif entitytype == "workspace":
                rows = [(dict(self.workspace), {})]
            elif entitytype in self.entities:
                rows = self._entity_rows(entitytype, options, entity_id)
            else:
                raise ServiceError(f"Unknown entity type {entitytype!r}")
            found = [view for view, aliases in rows if predicate(views.resolver(view, aliases))]
        skip, limit = int(options.get("skip") or 0), options.get("limit")
        found = found[skip : skip + int(limit)] if limit else found[skip:]
        attributes = options.get("attributes")
        if attributes:
            keep = {a.lower() for a in attributes} | {"id"}
            found = [{k: v for k, v in row.items() if k.lower() in keep} for row in found]
        return found

    def _transfer_rows(self, options: dict[str, Any], entity_id: str | None) -> list[views.Row]:
        if entity_id:
            transfer = self.transfers.get(entity_id) or self.archived.get(entity_id)
            return [views.transfer_row(transfer, self.entities["user"])] if transfer else []
        pool: Iterable[Transfer] = self.transfers.values()
        if options.get("archived"):
            pool = [*pool, *self.archived.values()]
        include_finished = options.get("finished") or options.get("single_entity_query")
        return [
            views.transfer_row(t, self.entities["user"])
            for t in pool
            if include_finished or not t.is_finished
        ]

    def _task_rows(self, parent: str | None) -> list[views.Row]:
        if not parent:
            raise ServiceError(
                "Tasks are found through their transfer: supply the transfer id (entityid)"
            )
        transfer = self.get_transfer(parent)
        return [views.task_row(transfer, t) for t in transfer.tasks.values()]

    def _entity_rows(
        self, kind: str, options: dict[str, Any], entity_id: str | None
    ) -> list[views.Row]:
        rows = []
        for entity in self.entities[kind].values():
            if entity_id and entity["id"] != entity_id:
                continue
            if entity.get("status") == "disabled" and not options.get("inactive"):
                continue
            view = {k: v for k, v in entity.items() if k != "path"}
            aliases: dict[str, list[Any]] = {}
            for ref in ("user", "site"):
                if view.get(ref):
                    other = self.entities[ref].get(view[ref], {})
                    aliases[ref] = [view[ref], other.get("code")]
            rows.append((view, aliases))
        return rows

    def get_transfer(self, transfer_id: str) -> Transfer:
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            raise ServiceError(f"Transfer {transfer_id} does not exist")
        return transfer

    # -- transfers ------------------------------------------------------------------------

    def create_transfer(self, data: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        allow = data.pop("allow_duplicates", None)
        replace = data.pop("replace_duplicates", None)
        spec = data.pop("tasks", None)
        source, destination = data.pop("source", None), data.pop("destination", None)
        if spec is None:
            if source is None:
                raise ServiceError("A transfer needs tasks: give 'tasks' or a 'source'")
            spec = [{"source": source, "destination": destination}]
            source = destination = None
        status = data.pop("status", None) or "init"
        if status not in ("init", "waiting", "paused"):
            raise ServiceError(f"A transfer cannot be created with status {status!r}")
        transfer = Transfer(id=new_id(), name="", user_id=user["id"])
        transfer.status = "paused" if status == "paused" else "init"
        transfer.metadata = _dict(data.pop("metadata", None), "metadata")
        transfer.settings = _dict(data.pop("settings", None), "settings")
        transfer.mirror_paths = bool(data.pop("mirror_paths", data.pop("mirror", False)))
        transfer.priority = int(data.pop("priority", 500))
        name = data.pop("name", None) or data.pop("code", None)
        data.pop("id", None)
        transfer.extra = data
        tasks = self._build_tasks(transfer, spec, source, destination, user)
        if not tasks:
            raise ServiceError("A transfer needs at least one task")
        with self.lock:
            self._insert_tasks(transfer, tasks, allow, replace)
            transfer.name = str(name or posixpath.basename(tasks[0].source.path) or transfer.id)
            self.transfers[transfer.id] = transfer
            self.touch()
            return views.transfer_view(transfer, self.entities["user"])

    def add_tasks(self, transfer_id: str, data: Any, user: dict[str, Any]) -> list[dict[str, Any]]:
        if not isinstance(data, dict):
            data = {"tasks": data}
        data = dict(data)
        allow = data.pop("allow_duplicates", None)
        replace = data.pop("replace_duplicates", None)
        with self.lock:
            transfer = self.get_transfer(transfer_id)
            _refuse_aborted(transfer)
            first = next(iter(transfer.tasks.values()), None)
            source = first.source.party.spec if first else None
            destination = first.destination.party.spec if first else None
        spec = data.pop("tasks", None)
        if spec is None:
            raise ServiceError("No tasks given to add")
        tasks = self._build_tasks(transfer, spec, source, destination, user)
        with self.lock:
            result = self._insert_tasks(transfer, tasks, allow, replace)
            self._reactivate(transfer)
            self.touch()
            return [views.task_view(transfer, t) for t in result]

    def _build_tasks(
        self,
        transfer: Transfer,
        spec: Any,
        source: str | None,
        destination: str | None,
        user: dict[str, Any],
    ) -> list[Task]:
        entries = _task_entries(spec)
        default_source = self._party_of(source, "source") if source else None
        tasks = []
        for uri, entry in entries:
            label = f"Task {uri}" if uri is not None else f"Task #{len(tasks)}"
            try:
                tasks.append(
                    self._build_task(transfer, uri, entry, default_source, destination, user)
                )
            except PartyError as error:
                raise ServiceError(f"{label}: {error}") from None
        for task in tasks:  # accsyn measures sizes when a transfer is submitted
            task.size = task.source.size()
        return tasks

    def _party_of(self, spec: str, what: str) -> Party:
        try:
            return self.directory.resolve(spec).party
        except PartyError as error:
            raise ServiceError(f"Transfer {what}: {error}") from None

    def _build_task(
        self,
        transfer: Transfer,
        uri: str | None,
        entry: dict[str, Any],
        default_source: Party | None,
        destination: str | None,
        user: dict[str, Any],
    ) -> Task:
        entry = dict(entry)
        src_spec = entry.pop("source", None)
        if not src_spec:
            raise PartyError("no source given")
        src = self.directory.resolve(src_spec, default=default_source)
        if not src.path:
            raise PartyError(f"the source {src_spec!r} names a party but no path")
        dst_spec = entry.pop("destination", None) or destination
        dst = self.directory.resolve(dst_spec) if dst_spec else Endpoint(self.directory.main(), "")
        if not dst.path:
            dst_path = src.path  # path mirroring
        elif dst.directory_hint:
            dst_path = posixpath.join(dst.path, posixpath.basename(src.path))
        else:
            dst_path = dst.path
        dst = Endpoint(dst.party, dst_path)
        if src.party == dst.party and src.path == dst.path:
            raise PartyError(f"source and destination are the same ({src.spec})")
        if user.get("role") == "standard" and user["id"] not in (
            src.party.entity_id,
            dst.party.entity_id,
        ):
            raise PartyError(
                f"{user['code']} (role standard) may only transfer to or from their own client"
            )
        task = Task(
            id=str(uuid.uuid4()),
            uri=str(uri or ""),
            job_id=transfer.id,
            source=src,
            destination=dst,
        )
        task.priority = int(entry.pop("priority", transfer.priority))
        task.metadata = _dict(entry.pop("metadata", None), "task metadata")
        entry.pop("id", None)
        entry.pop("uri", None)
        task.extra = entry
        return task

    def _insert_tasks(
        self, transfer: Transfer, tasks: list[Task], allow: Any, replace: Any
    ) -> list[Task]:
        index = {t.key(): t for t in transfer.tasks.values()}
        if allow is False and not replace:
            for task in tasks:
                clash = index.get(task.key()) or transfer.tasks.get(task.uri)
                if clash is not None:
                    raise ServiceError(
                        f"Task {clash.uri} already transfers {clash.source.spec} to "
                        f"{clash.destination.spec} (duplicates are not allowed)"
                    )
        result = []
        next_uri = _next_uri(transfer)
        for task in tasks:
            existing = index.get(task.key()) or transfer.tasks.get(task.uri)
            if existing is not None:
                if replace:
                    existing.metadata, existing.priority = task.metadata, task.priority
                    existing.extra = task.extra
                if existing.status != "executing":
                    existing.requeue()  # a duplicate retries the task it duplicates
                result.append(existing)
                continue
            if not task.uri:
                task.uri, next_uri = str(next_uri), next_uri + 1
            transfer.tasks[task.uri] = task
            index[task.key()] = task
            result.append(task)
        transfer.revision += 1
        transfer.modified = now()
        return result

    def _reactivate(self, transfer: Transfer) -> None:
        """Queued work brings a finished or failed transfer back to life."""
        if transfer.runnable() and transfer.status in ("done", "failed"):
            transfer.status, transfer.finished, transfer.message = "waiting", NEVER, ""

    def edit_transfer(self, transfer_id: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            transfer = self.get_transfer(transfer_id)
            unknown = set(data) - {"status", "name", "code", "metadata", "priority", "settings"}
            if unknown:
                raise ServiceError(f"Transfer attribute(s) {sorted(unknown)} cannot be modified")
            if "status" in data:
                self._set_transfer_status(transfer, str(data["status"]).lower())
            if data.get("name") or data.get("code"):
                transfer.name = str(data.get("name") or data.get("code"))
            if "metadata" in data:
                transfer.metadata = _dict(data["metadata"], "metadata")
            if "settings" in data:
                transfer.settings = _dict(data["settings"], "settings")
            if "priority" in data:
                transfer.priority = int(data["priority"])
            transfer.modified = now()
            self.touch()
            return views.transfer_view(transfer, self.entities["user"])

    def _set_transfer_status(self, transfer: Transfer, status: str) -> None:
        if status in ("waiting", "running", "queued"):
            _refuse_aborted(transfer)
            for task in transfer.tasks.values():
                if task.status == "failed":
                    task.requeue()
            transfer.revision += 1
            transfer.status, transfer.finished, transfer.message = "waiting", NEVER, ""
        elif status == "paused":
            if transfer.is_finished:
                raise ServiceError(f"Transfer {transfer.name} is {transfer.status}")
            transfer.status = "paused"
        elif status in ("aborted", "done"):
            if transfer.status != "aborted":
                transfer.status, transfer.finished = status, now()
                transfer.cleanup = True
        else:
            raise ServiceError(
                f"Status {status!r} cannot be set on a transfer; "
                "writable: waiting, paused, aborted, done"
            )

    def edit_tasks(self, transfer_id: str, data: Any) -> list[dict[str, Any]]:
        updates = data if isinstance(data, list) else [data]
        with self.lock:
            transfer = self.get_transfer(transfer_id)
            by_id = {t.id: t for t in transfer.tasks.values()}
            plan = []
            for update in updates:
                if not isinstance(update, dict):
                    raise ServiceError("Task updates are dictionaries with an id or uri")
                task = by_id.get(str(update.get("id"))) or transfer.tasks.get(
                    str(update.get("uri"))
                )
                if task is None:
                    raise ServiceError(
                        f"Transfer {transfer.name} has no task "
                        f"{update.get('id') or update.get('uri')!r}"
                    )
                unknown = set(update) - {"id", "uri", "status", "priority", "metadata"}
                if unknown:
                    raise ServiceError(f"Task attribute(s) {sorted(unknown)} cannot be modified")
                status = str(update.get("status", task.status)).lower()
                if status not in TASK_STATUSES or status in ("booting", "executing"):
                    raise ServiceError(f"Status {status!r} cannot be set on a task")
                plan.append((task, status, update))
            if any(status in RUNNABLE for _, status, _ in plan):
                _refuse_aborted(transfer)
            for task, status, update in plan:
                if status in RUNNABLE:
                    task.requeue()
                    transfer.revision += 1
                elif status != task.status:
                    task.status = status
                    if status == "done":
                        task.finished = now()
                if "priority" in update:
                    task.priority = int(update["priority"])
                if "metadata" in update:
                    task.metadata = _dict(update["metadata"], "task metadata")
            self._reactivate(transfer)
            transfer.modified = now()
            self.touch()
            return [views.task_view(transfer, task) for task, _, _ in plan]

    def delete_transfer(self, transfer_id: str) -> bool:
        with self.lock:
            transfer = self.get_transfer(transfer_id)
            if not transfer.is_finished:
                transfer.status, transfer.finished = "aborted", now()
                transfer.cleanup = True
            self.archived[transfer_id] = self.transfers.pop(transfer_id)
            self.touch()
            return True

    # -- settings -------------------------------------------------------------------------

    @staticmethod
    def setting_key(
        entitytype: str | None,
        entity_id: str | None,
        name: str | None,
        integration: str | None = None,
        data: Any = None,
    ) -> str:
        return json.dumps(
            [entitytype or "workspace", entity_id, name, integration, data], sort_keys=True
        )

    def set_setting(self, name: str, value: Any, **scope: Any) -> None:
        with self.lock:
            self.settings[
                self.setting_key(
                    scope.get("entitytype"),
                    scope.get("entity_id"),
                    name,
                    scope.get("integration"),
                    scope.get("data"),
                )
            ] = value

    def get_setting(self, name: str | None, **scope: Any) -> Any:
        key = self.setting_key(
            scope.get("entitytype"),
            scope.get("entity_id"),
            name,
            scope.get("integration"),
            scope.get("data"),
        )
        with self.lock:
            return self.settings.get(key)

    def delete_setting(self, name: str, **scope: Any) -> bool:
        key = self.setting_key(
            scope.get("entitytype"),
            scope.get("entity_id"),
            name,
            scope.get("integration"),
            scope.get("data"),
        )
        with self.lock:
            return self.settings.pop(key, None) is not None

    def all_settings(self, entitytype: str | None, entity_id: str | None) -> dict[str, Any]:
        with self.lock:
            found = {}
            for key, value in self.settings.items():
                etype, eid, name, integration, data = json.loads(key)
                if etype == (entitytype or "workspace") and eid == entity_id and not data:
                    found[name if not integration else f"{integration}:{name}"] = value
            return found

    # -- persistence ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "workspace": self.workspace,
                "entities": self.entities,
                "settings": self.settings,
                "api_keys": self.api_keys,
                "roots": {p.spec: str(p.root) for p in self.directory.parties()},
                "transfers": [transfer_json(t) for t in self.transfers.values()],
            }

    def load_json(self, state: dict[str, Any]) -> None:
        """Restore saved state; interrupted transfers go back to ``waiting`` to resume."""
        with self.lock:
            self.workspace = state["workspace"]
            self.entities = state["entities"]
            self.settings = state["settings"]
            self.api_keys.update(state["api_keys"])
            roots = state.get("roots", {})
            for site in self.entities["site"].values():
                root = roots.get(f"site={site['code']}")
                if root:
                    self.add_site(site["code"], pathlib.Path(root), main=site.get("main", False))
            for user in self.entities["user"].values():
                root = roots.get(user["code"])
                self.add_user(
                    user["code"],
                    pathlib.Path(root) if root else None,
                    user["role"],
                    self.api_keys.get(user["code"].lower(), ""),
                )
            for volume in self.entities["volume"].values():
                self.directory.add_volume(
                    volume["code"], volume.get("path", ""), default=volume.get("default", False)
                )
            for saved in state["transfers"]:
                transfer = self._transfer_from_json(saved)
                self.transfers[transfer.id] = transfer

    def _transfer_from_json(self, saved: dict[str, Any]) -> Transfer:
        tasks = saved.pop("tasks")
        transfer = Transfer(**saved)
        for raw in tasks:
            source = self.directory.resolve(raw.pop("source"))
            destination = self.directory.resolve(raw.pop("destination"))
            task = Task(source=source, destination=destination, **raw)
            if task.status in ("executing", "booting"):
                task.status = "queued"
            transfer.tasks[task.uri] = task
        if transfer.status in ("init", "running"):
            transfer.status = "waiting"
        return transfer


# -- helpers ------------------------------------------------------------------------------


def _dict(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ServiceError(f"The {what} must be a dictionary, not {type(value).__name__}")
    return value


def _task_entries(spec: Any) -> list[tuple[str | None, dict[str, Any]]]:
    """The forms accsyn accepts for ``tasks``: a list, one task, or a dict keyed by uri."""
    if isinstance(spec, str):
        return [(None, {"source": spec})]
    if isinstance(spec, dict):
        if "source" in spec:
            return [(None, spec)]
        return [(str(uri), _entry(value)) for uri, value in spec.items()]
    if isinstance(spec, list):
        return [(None, _entry(value)) for value in spec]
    raise ServiceError("'tasks' must be a list of tasks or a dictionary keyed by task uri")


def _entry(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"source": value}
    if isinstance(value, dict):
        return value
    raise ServiceError(f"A task is a dictionary or a source path, not {type(value).__name__}")


def _refuse_aborted(transfer: Transfer) -> None:
    if transfer.status == "aborted":
        raise ServiceError(f"Transfer {transfer.name} was aborted: submit a new transfer")


def _next_uri(transfer: Transfer) -> int:
    numbers = [int(uri) for uri in transfer.tasks if uri.isdigit()]
    return max(numbers) + 1 if numbers else 0
