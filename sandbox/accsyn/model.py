"""The transfer model: jobs and their tasks, their statuses, and the errors the service
reports to the client."""

from __future__ import annotations

import dataclasses
import datetime
import secrets
from typing import Any

from .parties import Endpoint

ISO = "%Y-%m-%dT%H:%M:%S"
#: What accsyn reports as ``finished`` for a transfer that has not finished.
NEVER = "1970-01-01T00:00:00"

TRANSFER_STATUSES = ("init", "waiting", "running", "paused", "failed", "aborted", "done")
#: Transfers in these states drop out of plain ``find`` (``finished=True`` brings them back).
FINISHED = frozenset({"done", "aborted"})
TASK_STATUSES = (
    "pending",
    "queued",
    "booting",
    "executing",
    "failed",
    "onhold",
    "excluded",
    "done",
)
RUNNABLE = frozenset({"pending", "queued"})


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime(ISO)


def new_id() -> str:
    return secrets.token_hex(12)


class ServiceError(Exception):
    """A refusal the client shows as an ``AccsynException`` with this message."""

    def __init__(self, message: str, message_hr: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.message_hr = message_hr or message


@dataclasses.dataclass
class Task:
    id: str
    uri: str
    job_id: str
    source: Endpoint
    destination: Endpoint  # path already resolved (mirrored or explicit)
    status: str = "queued"
    size: int = -1
    transferred: int = 0
    priority: int = 500
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    created: str = dataclasses.field(default_factory=now)
    finished: str = NEVER
    message: str = ""
    time: float = 0.0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def key(self) -> tuple[str, str, str, str]:
        """Identity for duplicate detection: same source and destination file."""
        return (
            self.source.party.ref,
            self.source.path.lower(),
            self.destination.party.ref,
            self.destination.path.lower(),
        )

    def requeue(self) -> None:
        self.status, self.transferred, self.message, self.finished = "queued", 0, "", NEVER


@dataclasses.dataclass
class Transfer:
    id: str
    name: str
    user_id: str
    status: str = "init"
    created: str = dataclasses.field(default_factory=now)
    modified: str = dataclasses.field(default_factory=now)
    finished: str = NEVER
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    mirror_paths: bool = False
    priority: int = 500
    tasks: dict[str, Task] = dataclasses.field(default_factory=dict)
    message: str = ""
    speed: float = 0.0
    etr: str = ""
    #: Bumped whenever tasks are added or re-queued, so a running executor re-plans.
    revision: int = 0
    #: The revision at which the executor found nothing it could run (tasks on hold).
    parked: int = -1
    #: Part files of unfinished tasks are to be removed (set when aborted).
    cleanup: bool = False
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    def runnable(self) -> list[Task]:
        order = sorted(
            (t for t in self.tasks.values() if t.status in RUNNABLE),
            key=lambda t: (-t.priority, _uri_order(t.uri)),
        )
        return order

    def counted(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.status != "excluded"]


def _uri_order(uri: str) -> tuple[int, int | str]:
    return (0, int(uri)) if uri.isdigit() else (1, uri)


def transfer_json(transfer: Transfer) -> dict[str, Any]:
    saved = {f.name: getattr(transfer, f.name) for f in dataclasses.fields(transfer)}
    saved["tasks"] = []
    for task in transfer.tasks.values():
        raw = {f.name: getattr(task, f.name) for f in dataclasses.fields(task)}
        raw["source"], raw["destination"] = task.source.spec, task.destination.spec
        saved["tasks"].append(raw)
    return saved
