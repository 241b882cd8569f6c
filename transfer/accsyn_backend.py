"""The accsyn backend: legs between accsyn parties become accsyn transfers.

When both ends of a leg map to accsyn parties (``site=<code>`` or a user e-mail) and the
sites config says to use accsyn there, the leg's files are submitted as accsyn tasks
with explicit destination paths from the destination's structure (identical to the
source path with the mirror structure), in transfers of at most
``accsyn.tasks_per_transfer`` tasks, each task carrying the ftrack component id in its
metadata. The driver polls accsyn with backoff (well under accsyn's request limits),
feeds each finished task to the registrar so availability grows as tasks finish, fails
files with accsyn's own reason, and retries transient accsyn errors (429, 5xx, non-JSON
replies, dropped connections) with exponential backoff.

Creating a transfer is made idempotent with a unique code per bucket: a create retried
after a dropped reply first looks the code up, so a flaky link never doubles a send.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import UserError, first_line
from .journal import FileRow, Job
from .retry import Cancelled, retry

if TYPE_CHECKING:
    from .engine import JobRunner

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Substrings of accsyn_api's exception texts that mean "try again later".
_TRANSIENT = (
    "could not reach",
    "operation failed! details",  # a non-JSON body: an HTML 429/502/503 page
    "too many requests",
    "timed out",
    "timeout",
    "connection",
    "temporarily",
)


def is_transient(error: BaseException) -> bool:
    text = str(error).lower()
    return any(marker in text for marker in _TRANSIENT)


class AccsynUnavailable(UserError):
    """accsyn could not be used (credentials, configuration) - a permanent failure."""


def open_accsyn_session() -> Any:
    """An ``accsyn_api.Session`` from the environment (ACCSYN_WORKSPACE, ACCSYN_API_USER,
    ACCSYN_API_KEY and, for a local service, ACCSYN_PROXY)."""
    import accsyn_api

    try:
        return accsyn_api.Session()
    except Exception as error:
        raise AccsynUnavailable(
            f"cannot log in to accsyn: {error}; check ACCSYN_WORKSPACE, ACCSYN_API_USER and ACCSYN_API_KEY"
        ) from None


def check_party(party: str, share: str | None = None) -> None:
    """Ask accsyn whether *party* (and its *share*) exist; raise :class:`AccsynUnavailable`.

    ``locations --check`` runs this for a location whose data moves through accsyn: a
    host without the share mounted has no storage of its own to look at, only accsyn.
    """
    session = open_accsyn_session()
    site = party.startswith("site=")
    wanted = [("site", party.partition("=")[2]) if site else ("user", party)]
    if share:
        wanted.append(("volume", share))
    for kind, code in wanted:
        try:
            found = session.find_one(f'{kind.capitalize()} WHERE code="{code}"')
        except Exception as error:
            raise AccsynUnavailable(
                f"accsyn did not answer the {kind} lookup: {first_line(error)}; check "
                "ACCSYN_WORKSPACE and that accsyn is reachable from this host"
            ) from None
        if not found:
            raise AccsynUnavailable(
                f'accsyn has no {kind} "{code}" in this workspace; fix the location\'s '
                f"{'accsyn party' if kind != 'volume' else 'share'} in the sites config, or "
                f"add the {kind} in accsyn"
            )


class AccsynDriver:
    """Runs a job's accsyn legs inside the runner's scheduler loop."""

    def __init__(
        self, runner: JobRunner, job: Job, locations: dict[str, Any], files: list[FileRow]
    ) -> None:
        self.runner = runner
        self.job = job
        self.locations = locations
        self.config = runner.config
        self.settings = runner.config.accsyn
        self.files = {f.id: f for f in files}
        self.open: set[int] = set(self.files)
        self.refs: dict[tuple[str, str], int] = {}
        self.partial: dict[int, int] = {}
        self.transfers: set[str] = set()
        self.interval = self.settings.poll_interval
        self.next_poll = 0.0
        self.last_change = time.monotonic()
        self.session: Any = None

    # ------------------------------------------------------------------ plumbing

    def call(self, what: str, operation: Callable[[], T]) -> T:
        """An accsyn call with retries on transient errors (the client has none)."""
        return retry(
            operation,
            self.runner.config.transfer,
            transient=is_transient,
            interrupt=self.runner.interrupt,
            what=f"accsyn {what}",
        )

    def party(self, name: str) -> str:
        party = self.config.location(name).accsyn_party
        if not party:
            raise AccsynUnavailable(f"location {name} has no accsyn party in the sites config")
        return party

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        factory = self.runner.accsyn_session_factory or open_accsyn_session
        try:
            self.session = self.call("login", factory)
        except Exception as error:
            reason = str(error) if isinstance(error, UserError) else f"cannot reach accsyn: {error}"
            for file_id in list(self.open):
                self._failed(file_id, reason)
            return
        by_destination: dict[str, list[FileRow]] = collections.defaultdict(list)
        for row in self.files.values():
            if row.remote_ref:
                transfer_id, _, uri = row.remote_ref.partition(":")
                self.refs[(transfer_id, uri)] = row.id
                self.transfers.add(transfer_id)
            else:
                by_destination[row.destination].append(row)
        for destination, rows in by_destination.items():
            size = self.settings.tasks_per_transfer
            for index in range(0, len(rows), size):
                self._submit(destination, rows[index : index + size], index // size + 1)

    def _submit(self, destination: str, rows: list[FileRow], bucket: int) -> None:
        self._measure(rows)
        source_party = self.party(self.job.source)
        destination_party = self.party(destination)
        code = f"ftrack-transfer {self.job.id} {self.job.source} to {destination} #{bucket}"
        data = {
            "code": code,
            "tasks": [
                {
                    "source": f"{source_party}:{row.source_ri}",
                    "destination": f"{destination_party}:{row.dest_ri}",
                    "metadata": {"ftrack_component_id": row.component_id, "journal_file": row.id},
                }
                for row in rows
            ],
            "metadata": {
                "ftrack_job_id": self.job.ftrack_job_id,
                "ftrack_transfer_job": self.job.id,
                "ftrack_source_location": self.job.source,
                "ftrack_destination_location": destination,
            },
        }

        def create() -> dict[str, Any]:
            # A retried create first looks for the transfer a lost reply may have made.
            found = self.session.find_one(f'Transfer WHERE code="{code}"')
            return found if found else self.session.create("Transfer", data)

        try:
            transfer = self.call("create transfer", create)
            tasks = self.call(
                "list tasks", lambda: self.session.find("Task", entityid=transfer["id"])
            )
        except Cancelled:
            return  # stopping: files not submitted stay pending and go on resume
        except Exception as error:
            for row in rows:
                self._failed(row.id, f"accsyn refused the transfer: {error}")
            return
        self.transfers.add(transfer["id"])
        by_file = {
            int((task.get("metadata") or {}).get("journal_file", -1)): task for task in tasks
        }
        updates = []
        for row in rows:
            task = by_file.get(row.id)
            if task is None:
                self._failed(row.id, f"accsyn transfer {transfer['id']} has no task for this file")
                continue
            ref = f"{transfer['id']}:{task['uri']}"
            self.refs[(transfer["id"], str(task["uri"]))] = row.id
            row.remote_ref = ref
            updates.append((row.id, {"remote_ref": ref, "status": "active"}))
        self.runner.journal.update_files(updates)
        logger.info(
            "job %s: accsyn transfer %s with %d tasks", self.job.id, transfer["id"], len(rows)
        )

    def _measure(self, rows: list[FileRow]) -> None:
        """Take sizes from the source itself where we can see it (ftrack's may be stale),
        so a finished task is checked against the real size."""
        accessor = self.locations[self.job.source].accessor
        updates = []
        for row in rows:
            try:
                size = accessor.stat(row.source_ri).size
            except Exception:  # noqa: S112 - no local view of the source: keep ftrack's size
                continue
            if size != row.size:
                self.runner.add_total_bytes(size - row.size)
                row.size = size
                updates.append((row.id, {"size": size}))
        if updates:
            self.runner.journal.update_files(updates)

    def pending(self) -> bool:
        return bool(self.open)

    def poll(self) -> None:
        now = time.monotonic()
        if not self.open or now < self.next_poll or self.session is None:
            return
        changed = False
        for transfer_id in sorted(self.transfers):
            try:
                transfer = self.call(
                    "poll", lambda tid=transfer_id: self.session.get_entity("transfer", tid)
                )
                tasks = self.call(
                    "poll tasks", lambda tid=transfer_id: self.session.find("Task", entityid=tid)
                )
            except Exception as error:
                logger.warning(
                    "job %s: polling accsyn transfer %s failed: %s", self.job.id, transfer_id, error
                )
                continue
            changed |= self._apply(transfer_id, transfer or {}, tasks)
        if changed:
            self.last_change = now
            self.interval = self.settings.poll_interval
        else:
            self.interval = min(self.interval * 1.5, self.settings.poll_max_interval)
            if now - self.last_change > self.settings.stall_timeout:
                for file_id in list(self.open):
                    self._failed(
                        file_id,
                        f"accsyn made no progress for {self.settings.stall_timeout:.0f} s; "
                        "check the accsyn transfer, then `ftrack-transfer retry` the job",
                    )
        self.next_poll = now + self.interval

    def _apply(
        self, transfer_id: str, transfer: dict[str, Any], tasks: list[dict[str, Any]]
    ) -> bool:
        changed = False
        for task in tasks:
            file_id = self.refs.get((transfer_id, str(task.get("uri"))))
            if file_id is None or file_id not in self.open:
                continue
            row = self.files[file_id]
            status = task.get("status")
            if status == "done":
                self._landed(row)
                changed = True
            elif status in ("failed", "excluded"):
                reason = task.get("message") or f"the accsyn task was {status}"
                self._failed(file_id, f"accsyn: {reason}")
                changed = True
            else:
                done = int(row.size * (task.get("progress") or 0) / 100)
                if done != self.partial.get(file_id, 0):
                    self.runner.add_partial_bytes(done - self.partial.get(file_id, 0))
                    self.partial[file_id] = done
                    changed = True
        status = transfer.get("status")
        if status in ("failed", "aborted", "done"):
            self.transfers.discard(transfer_id)
            reason = transfer.get("message") or f"accsyn transfer {transfer_id} ended {status}"
            for (tid, _), file_id in self.refs.items():
                if tid == transfer_id and file_id in self.open:
                    self._failed(file_id, f"accsyn: {reason}")
                    changed = True
        return changed

    def _landed(self, row: FileRow) -> None:
        """A task is done: check the size where we can see the destination, then register."""
        accessor = self.locations[row.destination].accessor
        try:
            actual = accessor.stat(row.dest_ri).size
        except Exception as error:
            logger.debug(
                "cannot stat %s at %s (%s); trusting accsyn", row.dest_ri, row.destination, error
            )
            actual = None
        self.open.discard(row.id)
        already = self.partial.pop(row.id, 0)
        if actual is not None and actual != row.size:
            self.runner.add_partial_bytes(-already)
            self.runner.file_failed(
                row,
                f"accsyn reported it done, but it has {actual} bytes at {row.destination}, expected {row.size}",
            )
            return
        self.runner.file_landed(row, None, row.size - already)

    def _failed(self, file_id: int, reason: str) -> None:
        self.open.discard(file_id)
        self.runner.add_partial_bytes(-self.partial.pop(file_id, 0))
        self.runner.file_failed(self.files[file_id], reason)

    def cancel(self) -> None:
        if self.session is None:
            return
        for transfer_id in self.transfers:
            try:
                self.call(
                    "abort",
                    lambda tid=transfer_id: self.session.update(
                        "transfer", tid, {"status": "aborted"}
                    ),
                )
            except Exception as error:
                logger.warning(
                    "job %s: could not abort accsyn transfer %s: %s",
                    self.job.id,
                    transfer_id,
                    error,
                )
