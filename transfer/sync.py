"""Sync: send every component of a project that one location has and another lacks.

Used by ``ftrack-transfer sync`` (from a shell or cron) and by ``serve``'s schedules.
A sync plans first and creates a job only when there is something to send, so a second
run of the same project and pair finds nothing to do and writes nothing to ftrack.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import ftrack_api

from .config import SitesConfig
from .engine import JobRunner, configured_locations, persist_plan, submit
from .errors import SelectionError
from .journal import Journal, owner_id
from .planner import Filters, Plan, Planner
from .progress import Subscriber
from .selection import project_ref
from .units import counted

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SyncResult:
    status: str  # done, failed, nothing, planned (dry run), cancelled, running (stopped)
    summary: str
    job_id: str | None = None
    plan: Plan | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.status in ("done", "nothing", "planned") else 1

    def describe(self) -> str:
        """``done: sent ...``, ``failed: ...``; a summary that already says it
        ("nothing to do: ...", "would send ...") is not prefixed with its status again."""
        return (
            self.summary
            if self.status in ("nothing", "planned")
            else f"{self.status}: {self.summary}"
        )


def run_sync(
    journal: Journal,
    config: SitesConfig,
    session_factory: Callable[[], ftrack_api.Session],
    *,
    source: str,
    destination: str,
    project: str,
    filters: Filters | None = None,
    dry_run: bool = False,
    origin: str = "sync",
    username: str | None = None,
    user_id: str | None = None,
    subscribers: Sequence[Subscriber] = (),
    stop: Any = None,
) -> SyncResult:
    """Plan and (unless *dry_run*) run one sync; never raises for transfer failures."""
    config.location(source)
    config.location(destination)
    if source == destination:
        raise SelectionError(
            f"source and destination are the same location ({source}); choose another destination"
        )
    session = session_factory()
    try:
        selection = [project_ref(session, project)]
        project = selection[0].label  # its name, where it was given by id
        locations = configured_locations(session, config, [source, destination])
        plan = Planner(session).plan(
            selection,
            locations[source],
            [locations[destination]],
            filters=filters,
            require_at_source=True,
        )
    finally:
        session.close()
    leg = plan.legs[0]
    if plan.empty:
        summary = f"nothing to do: {counted(len(leg.skipped), 'component')} of {project} at {source} are already at {destination}"
        return SyncResult("nothing", summary, plan=plan)
    if dry_run:
        return SyncResult("planned", f"would send {plan.summary()}", plan=plan)
    # Leased from the start: a serve's housekeeping (this process's, when the sync is
    # its schedule) would otherwise take the queued job while the plan is journalled.
    owner = owner_id()
    job_id = submit(
        journal,
        source=source,
        destinations=[destination],
        selection=selection,
        origin=origin,
        username=username,
        user_id=user_id,
        title=f"Sync {project} {source} to {destination}",
        filters=filters,
        require_at_source=True,
        owner=owner,
    )
    persist_plan(journal, config, job_id, plan)
    status = JobRunner(
        journal, config, session_factory, job_id, subscribers=subscribers, stop=stop, owner=owner
    ).run()
    job = journal.job(job_id)
    return SyncResult(status, job.message, job_id, plan)
