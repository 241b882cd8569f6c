"""How entities look on the wire, and the names a query may find them by.

A *row* is a view plus aliases: extra values a field matches (a transfer's ``user`` is
its user's id and e-mail, its ``destination`` the party's id, code and spec).
"""

from __future__ import annotations

from typing import Any

from .model import Task, Transfer
from .parties import Endpoint
from .query import Resolver

Row = tuple[dict[str, Any], dict[str, list[Any]]]


def transfer_row(transfer: Transfer, users: dict[str, dict[str, Any]]) -> Row:
    view = transfer_view(transfer, users)
    user = users.get(transfer.user_id, {})
    aliases: dict[str, list[Any]] = {
        "user": [transfer.user_id, user.get("code")],
        "code": [transfer.name],
    }
    first = next(iter(transfer.tasks.values()), None)
    for end in ("source", "destination"):
        if first is not None:
            party = getattr(first, end).party
            aliases[end] = [party.ref, party.ref_hr, party.spec, party.code]
    return view, aliases


def transfer_view(transfer: Transfer, users: dict[str, dict[str, Any]]) -> dict[str, Any]:
    counted = transfer.counted()
    size = sum(max(t.size, 0) for t in counted)
    done = sum(t.transferred for t in counted)
    if transfer.status == "done":
        progress = 100
    else:
        progress = min(99, int(done * 100 / size)) if size > 0 else 0
    user = users.get(transfer.user_id, {})
    first = next(iter(transfer.tasks.values()), None)
    view: dict[str, Any] = {**transfer.extra}
    view.update(
        id=transfer.id,
        code=transfer.name,
        name=transfer.name,
        type=1,
        status=transfer.status,
        progress=progress,
        speed=round(transfer.speed, 3) if transfer.status == "running" else 0.0,
        etr=transfer.etr if transfer.status == "running" else "",
        size=size,
        created=transfer.created,
        modified=transfer.modified,
        finished=transfer.finished,
        metadata=transfer.metadata,
        settings=transfer.settings,
        mirror_paths=transfer.mirror_paths,
        priority=transfer.priority,
        user=transfer.user_id,
        user_hr=f"user:{user.get('code')}[{user.get('role')}]({transfer.user_id})",
        message=transfer.message,
        tasks=_summary(transfer),
    )
    for end in ("source", "destination"):
        party = getattr(first, end).party if first else None
        view[end] = party.ref if party else None
        view[f"{end}_hr"] = party.ref_hr if party else None
    return view


def task_row(transfer: Transfer, task: Task) -> Row:
    view = task_view(transfer, task)
    aliases = {
        "job": [transfer.id],
        "transfer": [transfer.id],
        "source": [task.source.spec, task.source.path],
        "destination": [task.destination.spec, task.destination.path],
    }
    return view, aliases


def task_view(transfer: Transfer, task: Task) -> dict[str, Any]:
    view: dict[str, Any] = {**task.extra}
    progress = 100 if task.status == "done" else 0
    if task.status != "done" and task.size > 0:
        progress = min(99, int(task.transferred * 100 / task.size))
    view.update(
        id=task.id,
        uri=task.uri,
        job=transfer.id,
        job_hr=f"{transfer.name}({transfer.id})",
        status=task.status,
        source=_endpoint_view(task.source),
        destination=_endpoint_view(task.destination),
        size=task.size,
        progress=progress,
        priority=task.priority,
        metadata=task.metadata,
        created=task.created,
        finished=task.finished,
        time=round(task.time, 3),
        message=task.message,
    )
    return view


def resolver(view: dict[str, Any], aliases: dict[str, list[Any]]) -> Resolver:
    def resolve(field: str) -> list[Any]:
        if field in aliases:
            return [v for v in aliases[field] if v is not None]
        value: Any = view
        for part in field.split("."):
            if isinstance(value, dict):
                value = next((v for k, v in value.items() if k.lower() == part), None)
            elif not (isinstance(value, str) and part == "id"):  # ``job.id`` on a job id
                return [None]
        return [value]

    return resolve


def _endpoint_view(end: Endpoint) -> dict[str, Any]:
    view: dict[str, Any] = {
        "path": end.path,
        "path_abs_final": str(end.local()),
        end.party.kind: end.party.entity_id,
    }
    return view


def _summary(transfer: Transfer) -> dict[str, int]:
    summary = {"total": len(transfer.tasks)}
    for task in transfer.tasks.values():
        summary[task.status] = summary.get(task.status, 0) + 1
    return summary
