"""The registrar: availability in ftrack grows as verified files land.

When a component's file has landed and verified, its ComponentLocation at the
destination is created; sequence members are registered as they land (ftrack shows a
sequence at 40 %, 80 %, 100 % while it arrives) and the sequence itself once all its
members are there. Creations are batched into one commit per :attr:`batch_size`
components, or every :attr:`interval` seconds once a tenth of what the job has left to
register (at most :attr:`batch_size` components) is waiting, and
``ftrack.location.component-added`` is published for each from a connected event hub.

Registration is exactly-once: existing rows are never removed or replaced (the
destination's availability before the send stays as it was), a component already
registered by someone else (a concurrent send) counts as registered, and the journal
remembers what was registered so a resumed job does not register twice.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ftrack_api
import ftrack_api.event.base
import ftrack_api.exception

from .journal import ComponentRow, Journal
from .progress import Subscriber
from .selection import chunks, quote_ids

logger = logging.getLogger(__name__)

#: How many times a batch is looked up again after clashing with a concurrent send.
CLASH_RETRIES = 5
#: Components registered per commit at most (a commit is one ftrack request).
BATCH_SIZE = 1000
#: Commits paced by time are made once a tenth of what is left is waiting, so a job
#: makes about this many of them however long it runs (plus one per BATCH_SIZE).
PACED_COMMITS = 10


class Registrar:
    """Registers a job's landed components at their destinations."""

    def __init__(
        self,
        session: ftrack_api.Session,
        journal: Journal,
        job_id: str,
        locations: Mapping[str, Any],
        subscribers: Sequence[Subscriber] = (),
        batch_size: int = BATCH_SIZE,
        interval: float = 3.0,
    ) -> None:
        self.session = session
        self.journal = journal
        self.job_id = job_id
        self.location_ids = {name: loc["id"] for name, loc in locations.items()}
        self.subscribers = subscribers
        self.batch_size = batch_size
        self.interval = interval
        self._last_flush = time.monotonic()
        self._rows: dict[tuple[str, str], ComponentRow] = {}
        self._remaining: dict[tuple[str, str], int] = {}
        self._ready: list[tuple[str, str]] = []
        self.registered = 0
        for row in journal.components(job_id):
            self._rows[(row.destination, row.component_id)] = row
        # Kept as counters: progress asks for them after every file.
        top_level = [row for row in self._rows.values() if row.container_id is None]
        self._total = len(top_level)
        self._available = sum(1 for row in top_level if row.registered)
        # A container is ready when its members in this job have all been registered.
        for row in self._rows.values():
            if row.kind in ("sequence", "container") and not row.registered:
                self._remaining[(row.destination, row.component_id)] = 0
        for row in self._rows.values():
            if row.container_id and not row.registered:
                key = (row.destination, row.container_id)
                if key in self._remaining:
                    self._remaining[key] += 1
        for key, count in self._remaining.items():
            if count == 0:
                self._ready.append(key)
        # Pacing by time alone makes a slow send of many small files commit every few
        # seconds for as long as it runs. Waiting also for a share of what is left to
        # register keeps the commits to about PACED_COMMITS, plus one per batch_size
        # components, however slow the link.
        left = sum(1 for row in self._rows.values() if not row.registered)
        self._paced_batch = max(1, min(batch_size, -(-left // PACED_COMMITS)))

    @property
    def total(self) -> int:
        return self._total

    def already_registered(self) -> int:
        """Top-level components of the job registered so far (earlier runs included)."""
        return self._available

    def landed(self, destination: str, component_id: str | None) -> None:
        """A file of *component_id* has landed and verified at *destination*."""
        if component_id is None:
            return
        row = self._rows.get((destination, component_id))
        if row is None or row.registered:
            return
        self._ready.append((destination, component_id))
        if len(self._ready) >= self.batch_size:
            self.flush()

    def due(self) -> bool:
        return (
            len(self._ready) >= self._paced_batch
            and time.monotonic() - self._last_flush >= self.interval
        )

    def flush(self) -> None:
        """Create the ready ComponentLocations (one commit per destination batch)."""
        self._last_flush = time.monotonic()
        while self._ready:
            ready, self._ready = self._ready, []
            by_destination: dict[str, list[str]] = {}
            for destination, component_id in ready:
                row = self._rows[(destination, component_id)]
                if not row.registered and component_id not in by_destination.get(destination, ()):
                    by_destination.setdefault(destination, []).append(component_id)
            for destination, component_ids in by_destination.items():
                # Completed sequences ride along with their last members, even if
                # that makes a commit a little larger than batch_size.
                extra = self._add_completed_containers(destination, component_ids)
                for batch in chunks(component_ids, self.batch_size + extra):
                    self._register(destination, list(batch))

    def _add_completed_containers(self, destination: str, component_ids: list[str]) -> int:
        """Append the sequences whose last members are in *component_ids*, so a finished
        sequence is registered in the same commit as its last frames, not one after."""
        added = 0
        members = collections.Counter(
            self._rows[(destination, cid)].container_id
            for cid in component_ids
            if self._rows[(destination, cid)].container_id
        )
        for container_id, count in members.items():
            if (
                self._remaining.get((destination, container_id)) == count
                and container_id not in component_ids
            ):
                component_ids.append(container_id)
                added += 1
        return added

    def _register(self, destination: str, component_ids: list[str]) -> None:
        location_id = self.location_ids[destination]
        try:
            # Optimistic: one request per batch. The server refuses a second row for a
            # (component, location) pair and rolls the whole batch back, so a concurrent
            # send that registered some of these first costs one query and a retry.
            created = self._create(destination, location_id, component_ids)
        except ftrack_api.exception.ServerError:
            created = self._create_missing(destination, location_id, component_ids)
        self.journal.mark_registered(self.job_id, destination, component_ids)
        for component_id in component_ids:
            row = self._rows[(destination, component_id)]
            row.registered = True
            if row.container_id is None:
                self.registered += 1
                self._available += 1
            else:
                key = (destination, row.container_id)
                if key in self._remaining:
                    self._remaining[key] -= 1
                    if self._remaining[key] == 0:
                        self._ready.append(key)
        self._publish(location_id, created)
        top_level = [
            cid for cid in component_ids if self._rows[(destination, cid)].container_id is None
        ]
        for subscriber in self.subscribers:
            subscriber.on_components_available(self.job_id, destination, top_level)

    def _create_missing(
        self, destination: str, location_id: str, component_ids: list[str]
    ) -> list[str]:
        """Register what nobody else has registered yet. A concurrent send of the same
        components keeps registering while this one looks, so a clash can repeat: look
        again after each, a bounded number of times."""
        for attempt in range(CLASH_RETRIES):
            self.session.rollback()
            existing = self._existing(location_id, component_ids)
            try:
                return self._create(
                    destination, location_id, [c for c in component_ids if c not in existing]
                )
            except ftrack_api.exception.ServerError:
                if attempt == CLASH_RETRIES - 1:
                    # Leave no failed creation in the session for the next commit to repeat.
                    self.session.rollback()
                    raise
        return []

    def _create(self, destination: str, location_id: str, to_create: list[str]) -> list[str]:
        for component_id in to_create:
            self.session.create(
                "ComponentLocation",
                {
                    "component_id": component_id,
                    "location_id": location_id,
                    "resource_identifier": self._rows[
                        (destination, component_id)
                    ].resource_identifier,
                },
            )
        if to_create:
            self.session.commit()
        return to_create

    def _existing(self, location_id: str, component_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for batch in chunks(sorted(component_ids)):
            rows = self.session.query(
                f"select component_id from ComponentLocation where location_id is "
                f'"{location_id}" and component_id in {quote_ids(batch)}'
            )
            found.update(row["component_id"] for row in rows)
        return found

    def _publish(self, location_id: str, component_ids: Iterable[str]) -> None:
        hub = self.session.event_hub
        if not hub.connected:
            return
        for component_id in component_ids:
            event = ftrack_api.event.base.Event(
                topic="ftrack.location.component-added",
                data={"component_id": component_id, "location_id": location_id},
            )
            hub.publish(event, on_error="ignore")

    def unregistered(self) -> list[ComponentRow]:
        """Top-level components of the job not registered (for the final message)."""
        return [
            row for row in self._rows.values() if row.container_id is None and not row.registered
        ]
