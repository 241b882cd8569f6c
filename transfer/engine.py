"""The transfer engine: run a journalled job from plan to verified, registered files.

:func:`submit` records a send request in the journal. :class:`JobRunner` runs one job:
it plans (if not planned yet), persists the plan, then drives the legs - the direct
backend through a worker pool, accsyn legs through their driver - while the registrar
makes availability grow and the subscribers (ftrack Job, progress bar, logs) report.

The scheduler is a single loop on the runner's thread (the s3transfer model: a thin
coordinator, tasks on workers, futures back). Workers only do I/O; every decision and
every journal write happens in the loop, so there is no shared mutable state between
threads. Memory is bounded: each worker holds at most one chunk.

A runner stopped by shutdown leaves the job resumable (finished chunks journalled,
temporaries in place, lease released); a cancelled job removes its temporaries and keeps
what arrived registered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import ftrack_api
import requests

from ..accessors.base import WrittenChunk
from .bandwidth import BandwidthLimiter
from .config import SitesConfig
from .direct import Endpoints
from .errors import SelectionError, UserError
from .ftrack_session import FTRACK_ATTEMPTS, describe_failure
from .journal import ComponentRow, FileRow, Job, Journal, owner_id
from .planner import Filters, Plan, Planner
from .progress import RateMeter, Snapshot, Subscriber, Throttle
from .registrar import Registrar
from .reporter import JobReporter
from .scheduler import FileTask, Scheduler
from .selection import EntityRef
from .units import counted, format_duration, format_rate, format_size

logger = logging.getLogger(__name__)

#: Landed files journalled per transaction (at the latest every second).
LANDED_BATCH = 200
#: At most this many bytes of chunk data are held in memory by one job's workers.
MAX_MEMORY = 128 * 1024**2


def submit(
    journal: Journal,
    *,
    source: str,
    destinations: Sequence[str],
    selection: Sequence[EntityRef],
    origin: str,
    username: str | None,
    user_id: str | None,
    title: str = "Transfer",
    component_names: Sequence[str] = (),
    additional_files: Sequence[str] = (),
    filters: Filters | None = None,
    require_at_source: bool = False,
    priority: int = 500,
    ftrack_job_id: str | None = None,
    owner: str | None = None,
) -> str:
    """Record a send in the journal (status ``queued``); a runner picks it up, or, with
    *owner*, the caller runs it with a :class:`JobRunner` of that owner."""
    if not destinations:
        raise SelectionError("no destination location; choose at least one")
    if source in destinations:
        raise SelectionError(
            f"source and destination are the same location ({source}); choose another destination"
        )
    if len(set(destinations)) != len(destinations):
        raise SelectionError("a destination location is listed twice")
    request = {
        "title": title,
        "selection": [dataclasses.asdict(ref) for ref in selection],
        "component_names": list(component_names),
        "additional_files": list(additional_files),
        "filters": dataclasses.asdict(filters) if filters else {},
        "require_at_source": require_at_source,
    }
    job_id = journal.create_job(
        source=source,
        destinations=list(destinations),
        request=request,
        origin=origin,
        username=username,
        user_id=user_id,
        priority=priority,
        owner=owner,
    )
    if ftrack_job_id:
        journal.update_job(job_id, ftrack_job_id=ftrack_job_id)
    return job_id


def plan_request(session: Any, job: Job, locations: dict[str, Any]) -> Plan:
    """Plan a journalled request with *session* and its configured *locations*."""
    request = job.request
    selection = [EntityRef(**ref) for ref in request["selection"]]
    filters = request.get("filters") or {}
    return Planner(session).plan(
        selection,
        locations[job.source],
        [locations[d] for d in job.destinations],
        component_names=request.get("component_names", ()),
        additional_files=request.get("additional_files", ()),
        filters=Filters(**filters) if filters else None,
        require_at_source=request.get("require_at_source", False),
    )


def persist_plan(
    journal: Journal, config: SitesConfig, job_id: str, plan: Plan, status: str = "running"
) -> None:
    """Write a plan's components and files into the journal (one transaction), before any
    byte moves; each leg's files are marked for the backend that will move them."""
    job = journal.job(job_id)
    components: list[ComponentRow] = []
    files: list[dict[str, Any]] = []
    for leg in plan.legs:
        backend = "accsyn" if _uses_accsyn(config, job.source, leg.destination) else "direct"
        for component in leg.components:
            components.append(
                ComponentRow(
                    job_id=job_id,
                    destination=leg.destination,
                    component_id=component.component_id,
                    container_id=component.container_id,
                    name=component.name,
                    label=component.label,
                    kind=component.kind,
                    resource_identifier=component.resource_identifier,
                    members=component.members,
                    registered=False,
                )
            )
        files.extend(
            {
                "destination": leg.destination,
                "component_id": file.component_id,
                "source_ri": file.source_ri,
                "dest_ri": file.dest_ri,
                "size": file.size,
                "backend": backend,
            }
            for file in leg.files
        )
    journal.add_plan(job_id, components, files)
    journal.update_job(job_id, status=status, message=plan.summary())


def configured_locations(session: Any, config: SitesConfig, names: Sequence[str]) -> dict[str, Any]:
    """The Location entities of *names*, with accessors; a clear error for unusable ones."""
    from .configure_location import configure_locations

    known = getattr(session, "ftrack_transfer_locations", None)
    configured = (
        known[1] if known and known[0] == config.path else configure_locations(session, config)
    )
    for name in names:
        config.location(name)  # raises for a location missing from the sites config
        location = configured.get(name)
        if location is None:
            raise SelectionError(
                f"location {name} is not usable on this machine (outside FTRACK_TRANSFER_LOCATIONS, "
                "or no root for this operating system in the sites config)"
            )
    return configured


def _uses_accsyn(config: SitesConfig, source: str, destination: str) -> bool:
    src, dst = config.locations[source], config.locations[destination]
    return bool(src.accsyn_party and dst.accsyn_party) and "accsyn" in (src.backend, dst.backend)


class JobRunner:
    """Runs one job to its end (or until stopped) on the calling thread."""

    def __init__(
        self,
        journal: Journal,
        config: SitesConfig,
        session_factory: Callable[[], ftrack_api.Session],
        job_id: str,
        *,
        subscribers: Sequence[Subscriber] = (),
        stop: threading.Event | None = None,
        owner: str | None = None,
        accsyn_session_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.journal = journal
        self.config = config
        self.session_factory = session_factory
        self.accsyn_session_factory = accsyn_session_factory
        self.job_id = job_id
        self.extra_subscribers = list(subscribers)
        self.stop = stop or threading.Event()
        #: Set on cancel or shutdown: stops I/O promptly, at chunk boundaries.
        self.interrupt = threading.Event()
        self.owner = owner or owner_id()
        self.cancelled = threading.Event()
        self.cancelled_by: str | None = None
        self.meter = RateMeter()
        self._emit_throttle = Throttle(0.1)
        self._landed: list[tuple[int, str | None, int]] = []
        self._registration_error: Exception | None = None
        self.failures: list[tuple[str, str]] = []
        self.subscribers: list[Subscriber] = []
        self.registrar: Registrar | None = None
        self.plan_notes: list[Any] = []
        self.started: float | None = None
        self.resuming = False
        self._bytes_done = 0
        self._bytes_total = 0
        self._files_done = 0
        self._files_failed = 0
        self._not_started = 0
        self._files_total = 0

    # ------------------------------------------------------------------ entry point

    def run(self) -> str:
        """Run the job; return its final journal status (``running`` when stopped early)."""
        job = self.journal.job(self.job_id)
        if job.is_finished:
            return job.status
        if not self.journal.claim(self.job_id, self.owner):
            raise UserError(f"job {self.job_id} is being run by another process ({job.owner})")
        session = None
        reporter: JobReporter | None = None
        try:
            session = self.session_factory()
            self.session = session
            job = self.journal.job(self.job_id)
            title = job.request.get("title", "Transfer")
            if not job.ftrack_job_id:
                # Journalled before it is created: a process killed in between creates it
                # when the job resumes, instead of leaving a Job nobody ever ends.
                job.ftrack_job_id = str(uuid.uuid4())
                self.journal.update_job(self.job_id, ftrack_job_id=job.ftrack_job_id)
                JobReporter.create_job(
                    session, job.user_id, f"{title}: preparing", "running", job.ftrack_job_id
                )
            else:
                JobReporter.ensure_job(
                    session, job.ftrack_job_id, job.user_id, f"{title}: preparing"
                )
            reporter = JobReporter(
                session, job.ftrack_job_id, title, self.config.transfer.job_update_interval
            )
            self.subscribers = [reporter, *self.extra_subscribers]
            if job.cancel_requested_by:
                return self._finish(
                    "cancelled", f"cancelled by {job.cancel_requested_by} before it started"
                )
            locations = configured_locations(session, self.config, [job.source, *job.destinations])
            # A job already running when this runner took it over was interrupted: its
            # files may have temporaries that no journalled token names.
            self.resuming = job.status == "running"
            if job.status in ("queued", "planning"):
                self.journal.update_job(self.job_id, status="planning")
                reporter.update("running", f"{title}: planning")
                plan = plan_request(session, job, locations)
                self._persist(job, plan)
                if plan.empty:
                    return self._finish(
                        "done", f"nothing to send: {plan.summary() or 'no components selected'}"
                    )
                self.journal.update_job(
                    self.job_id, status="running", started=time.time(), message=plan.summary()
                )
                # The plan is in the journal now; the thousands of entities planning
                # loaded are not needed again, so a large send's memory stays flat.
                del plan
                session.reset()
                locations = configured_locations(
                    session, self.config, [job.source, *job.destinations]
                )
            return self._execute(self.journal.job(self.job_id), locations)
        except UserError as error:
            return self._finish("failed", str(error))
        except ftrack_api.exception.Error as error:
            logger.exception("job %s failed on an ftrack error", self.job_id)
            _discard_pending(session)
            return self._finish("failed", f"ftrack error: {error}")
        except (requests.exceptions.RequestException, json.JSONDecodeError) as error:
            # The session retried with backoff already: ftrack is down or unreachable.
            logger.warning("job %s: ftrack unreachable: %s", self.job_id, error)
            _discard_pending(session)
            return self._finish(
                "failed",
                f"ftrack did not answer after {FTRACK_ATTEMPTS} attempts ({describe_failure(error)}); "
                f"what arrived is kept: `ftrack-transfer retry {self.job_id}` once ftrack answers",
            )
        except Exception as error:
            logger.exception("job %s failed", self.job_id)
            return self._finish("failed", f"internal error ({type(error).__name__}): {error}")
        finally:
            self.journal.release(self.job_id, self.owner)
            if session is not None:
                session.close()

    # ------------------------------------------------------------------ planning

    def _persist(self, job: Job, plan: Plan) -> None:
        persist_plan(self.journal, self.config, job.id, plan, status="planning")
        notes = [s.label + ": " + s.reason for s in plan.missing]
        if notes:
            logger.info("job %s: not sent: %s", job.id, "; ".join(notes[:20]))
        self.plan_notes = plan.missing

    # ------------------------------------------------------------------ execution

    def _execute(self, job: Job, locations: dict[str, Any]) -> str:
        self.job = job
        self.registrar = Registrar(
            self.session, self.journal, job.id, locations, self.subscribers,
            interval=self.config.transfer.job_update_interval,
        )  # fmt: skip
        progress = self.journal.progress(job.id)
        self._bytes_done = progress.bytes_done
        self._files_done = progress.files_done
        self._files_failed = 0
        self._bytes_total = progress.bytes_total
        self._files_total = progress.files_total
        self.started = time.monotonic()
        self.journal.reset_files(job.id, ["active"])
        description = (
            self.journal.job(job.id).message
            or f"from {job.source} to {', '.join(job.destinations)}"
        )
        for subscriber in self.subscribers:
            subscriber.on_job_started(self.snapshot(), description)

        files = self.journal.files(job.id, ["pending"])
        direct = [f for f in files if f.backend == "direct"]
        accsyn = [f for f in files if f.backend == "accsyn"]
        # Files that landed before an interruption but whose registration had not been
        # committed yet; then containers whose members were all there already.
        for row in self.journal.files(job.id, ["done"]):
            self.registrar.landed(row.destination, row.component_id)
        self.registrar.flush()
        drivers = []
        if accsyn:
            from .accsyn_backend import AccsynDriver

            drivers.append(AccsynDriver(self, job, locations, accsyn))
        self._run_direct(job, locations, direct, drivers)
        return self._conclude(job)

    def _endpoints(self, job: Job, locations: dict[str, Any], destination: str) -> Endpoints:
        return Endpoints(
            source=locations[job.source].accessor,
            destination=locations[destination].accessor,
            settings=self.config.settings_for(job.source, destination),
            limiter=self.limiter,
            cancelled=self.interrupt,
            memory=self.memory,
        )

    def _run_direct(
        self, job: Job, locations: dict[str, Any], files: list[FileRow], drivers: list[Any]
    ) -> None:
        settings = self.config.settings_for(job.source, job.destinations[0])
        self.limiter = BandwidthLimiter(settings.bandwidth)
        self.memory = threading.BoundedSemaphore(max(1, MAX_MEMORY // max(settings.chunk_size, 1)))
        endpoints = {d: self._endpoints(job, locations, d) for d in job.destinations}
        tasks = [
            FileTask(
                key=row,
                endpoints=endpoints[row.destination],
                source_ri=row.source_ri,
                dest_ri=row.dest_ri,
                size=row.size,
                token=row.token,
                chunk_size=row.chunk_size,
                source_mtime=row.source_mtime,
                tidy=self.resuming,
            )
            for row in files
        ]
        scheduler = Scheduler(
            self,
            files_in_flight=settings.files_in_flight,
            streams=max(e.streams for e in endpoints.values()),
            interrupt=self.interrupt,
            name=f"job-{job.id}",
        )
        scheduler.run(tasks, drivers)
        self._not_started = scheduler.not_started
        if self._registration_error is not None:
            self._flush_landed()
            raise self._registration_error
        if self.cancelled.is_set():
            for task in scheduler.active.values():
                if task.token:
                    task.endpoints.abort(task.dest_ri, task.token)
                    self.journal.clear_chunks(task.key.id)
            for driver in drivers:
                driver.cancel()

    # ------------------------------------------------------------------ scheduler listener

    def on_prepared(self, task: FileTask) -> dict[int, WrittenChunk]:
        row: FileRow = task.key
        if task.size != row.size:
            self._bytes_total += task.size - row.size
        self.journal.update_file(
            row.id,
            size=task.size,
            source_mtime=task.source_mtime,
            token=task.token,
            chunk_size=task.chunk_size,
            status="active",
        )
        row.size, row.token, row.chunk_size, row.source_mtime = (
            task.size,
            task.token,
            task.chunk_size,
            task.source_mtime,
        )
        # A chunk journalled with another digest (by an earlier version) is sent again
        # rather than mixed into one fingerprint with the others.
        kind = task.endpoints.digest_kind.name
        return {
            offset: WrittenChunk(offset, length, digest, receipt)
            for offset, length, digest, chunk_kind, receipt in self.journal.chunks(row.id)
            if chunk_kind == kind
        }

    def on_chunk(self, task: FileTask, chunk: WrittenChunk) -> None:
        self.journal.record_chunk(
            task.key.id,
            chunk.offset,
            chunk.length,
            chunk.digest,
            task.endpoints.digest_kind.name,
            chunk.receipt,
        )
        self._add_bytes(chunk.length)

    def on_stream_bytes(self, nbytes: int) -> None:
        # Called from a worker: only the thread-safe meter; totals follow at file end.
        self.meter.add(nbytes)

    def on_done(self, task: FileTask, digest: str | None, nbytes: int) -> None:
        if task.strategy != "stream":
            self.meter.add(nbytes)
        self.file_landed(task.key, digest, nbytes)

    def on_failed(self, task: FileTask, error: BaseException) -> None:
        self.file_failed(task.key, str(error) or type(error).__name__)

    def on_restart(self, task: FileTask) -> None:
        self._bytes_done -= sum(c.length for c in task.done.values())
        task.key.token = None
        task.key.chunk_size = None
        self.journal.clear_chunks(task.key.id)

    def on_tick(self) -> None:
        self._flush_landed()
        self._housekeeping()

    def _add_bytes(self, nbytes: int) -> None:
        self._bytes_done += nbytes
        if nbytes > 0:
            self.meter.add(nbytes)
        self._emit()

    # ------------------------------------------------------------------ for backends

    def file_landed(self, row: FileRow, digest: str | None, nbytes: int) -> None:
        """A file landed and verified; *nbytes* are its bytes not counted yet."""
        self._bytes_done += nbytes
        # Journalled in batches: a sequence of small frames lands hundreds of files a
        # second. One that landed but was not journalled when the process died is sent
        # again on resume, which is safe (writes are atomic and verified).
        self._landed.append((row.id, digest, nbytes))
        self._files_done += 1
        assert self.registrar is not None
        self.registrar.landed(row.destination, row.component_id)
        registration_due = self.registrar.due()
        if registration_due or len(self._landed) >= LANDED_BATCH:
            self._flush_landed()
        if registration_due:
            self._register()
        self._emit()

    def _register(self) -> None:
        """Commit the availability that is due, while the transfer runs."""
        if self._registration_error is not None:
            return
        try:
            self.registrar.flush()
        except Exception as error:
            # ftrack is down (the session retried already): stop, but journal the files
            # still landing so a retry only registers them; the job then fails with it.
            self._registration_error = error
            self.interrupt.set()

    def _flush_landed(self) -> None:
        if self._landed:
            landed, self._landed = self._landed, []
            self.journal.mark_done(landed)

    def file_failed(self, row: FileRow, reason: str) -> None:
        """A file failed for good; the job will end failed and name it."""
        label = self._label(row)
        message = f"{label} to {row.destination}: {reason}"
        self.failures.append((label, message))
        self.journal.update_file(row.id, status="failed", error=reason, attempts=row.attempts + 1)
        self._files_failed += 1
        for subscriber in self.subscribers:
            subscriber.on_file_failed(self.job_id, f"{label} to {row.destination}", reason)
        self._emit()

    def add_partial_bytes(self, nbytes: int) -> None:
        """Progress inside a file that a backend reports as a whole (accsyn tasks)."""
        if nbytes:
            self._add_bytes(nbytes)

    def add_total_bytes(self, nbytes: int) -> None:
        self._bytes_total += nbytes

    def _label(self, row: FileRow) -> str:
        if row.component_id:
            component = self.registrar._rows.get((row.destination, row.component_id))
            if component:
                return component.label
        return row.source_ri

    def _housekeeping(self) -> None:
        self.journal.heartbeat(self.job_id, self.owner)
        job = self.journal.job(self.job_id)
        if job.cancel_requested_by and not self.cancelled.is_set():
            self.cancelled_by = job.cancel_requested_by
            self.cancelled.set()
            self.interrupt.set()
        if self.stop.is_set():
            self.interrupt.set()
        if self.registrar.due():
            self._register()

    def snapshot(self) -> Snapshot:
        rate = self.meter.rate()
        remaining = max(0, self._bytes_total - self._bytes_done)
        registrar = self.registrar
        return Snapshot(
            job_id=self.job_id,
            files_total=self._files_total,
            files_done=self._files_done,
            files_failed=self._files_failed,
            bytes_total=self._bytes_total,
            bytes_done=self._bytes_done,
            components_total=registrar.total if registrar else 0,
            components_available=registrar.already_registered() if registrar else 0,
            rate=rate,
            eta=(remaining / rate) if rate > 0 else None,
        )

    def _emit(self) -> None:
        # Thousands of small files land per second at times; subscribers (a bar, a
        # throttled Job) need no more than a few snapshots a second. The start and the
        # end are reported on their own.
        if not self._emit_throttle.ready():
            return
        snapshot = self.snapshot()
        for subscriber in self.subscribers:
            subscriber.on_progress(snapshot)

    # ------------------------------------------------------------------ the end

    def _conclude(self, job: Job) -> str:
        self._flush_landed()
        if self.cancelled.is_set():
            self.registrar.flush()
            available = self.registrar.already_registered()
            return self._finish(
                "cancelled",
                f"cancelled by {self.cancelled_by}; {available} of {self.registrar.total} components "
                f"arrived and stay available at {', '.join(job.destinations)}",
            )
        if self.stop.is_set():
            self.registrar.flush()
            snapshot = self.snapshot()
            for subscriber in self.subscribers:
                subscriber.on_job_finished(
                    snapshot,
                    "paused",
                    f"paused at {snapshot.percent:.0f} %: the transfer service stopped; "
                    "the send resumes where it stopped when the service restarts",
                )
            return "running"
        self.registrar.flush()
        elapsed = time.monotonic() - (self.started or time.monotonic())
        progress = self.journal.progress(job.id)
        notes = [f"{s.label}: {s.reason}" for s in self.plan_notes]
        if progress.files_failed or self.registrar.unregistered():
            failed = self.journal.files(job.id, ["failed"])
            first = (
                self.failures[0][1]
                if self.failures
                else (
                    f"{self._label(failed[0])} to {failed[0].destination}: {failed[0].error}"
                    if failed
                    else ""
                )
            )
            message = (
                f"{progress.files_failed} of {progress.files_total} files failed; first: {first}. "
                + (
                    f"{counted(self._not_started, 'other file')} not tried after that, as the same "
                    f"failure would stop them; `ftrack-transfer retry {job.id}` sends them once it is "
                    "fixed. "
                    if self._not_started
                    else ""
                )
                + f"{counted(progress.files_done, 'file')} arrived; {progress.components_registered} of "
                f"{progress.components_total} components are available at {', '.join(job.destinations)}"
            )
            return self._finish("failed", message)
        rate = progress.bytes_total / elapsed if elapsed > 0 else 0.0
        components = len(
            {
                row.component_id
                for row in self.journal.components(job.id)
                if row.container_id is None
            }
        )
        where = (
            f"to {job.destinations[0]}"
            if len(job.destinations) == 1
            else (f"to each of {', '.join(job.destinations)}")
        )
        message = (
            f"sent {counted(components, 'component')} ({counted(progress.files_total, 'file')}, {format_size(progress.bytes_total)}) "
            f"from {job.source} {where} in {format_duration(elapsed)} ({format_rate(rate)})"
        )
        skipped = self._skipped_note(job)
        if skipped:
            message += f"; {skipped}"
        if notes:
            message += f"; not sent: {'; '.join(notes[:5])}" + (" ..." if len(notes) > 5 else "")
        return self._finish("done", message)

    def _skipped_note(self, job: Job) -> str:
        plan_message = job.message or ""
        return "; ".join(p for p in plan_message.split("; ") if "already at" in p)

    def _finish(self, status: str, message: str) -> str:
        # The ftrack Job first, the journal last: a process killed in between leaves the
        # job unfinished in the journal, so the next runner ends it (and its Job) again,
        # rather than a finished job whose Job stays running for ever.
        snapshot = self.snapshot()
        for subscriber in self.subscribers:
            subscriber.on_job_finished(snapshot, status, message)
        if self.subscribers:
            reported = all(s.finished for s in self.subscribers if isinstance(s, JobReporter))
        else:
            reported = self._report_without_session(status, message)
        # A final status ftrack did not take is remembered, and serve reports it again.
        self.journal.update_job(
            self.job_id,
            status=status,
            message=message,
            finished=time.time(),
            ftrack_unreported=int(not reported),
        )
        return status

    def _report_without_session(self, status: str, message: str) -> bool:
        """A job that failed before its session existed still ends its ftrack Job."""
        job = self.journal.job(self.job_id)
        if not job.ftrack_job_id:
            return True
        try:
            session = self.session_factory()
        except Exception:
            logger.warning(
                "job %s %s: %s (ftrack unreachable; Job not updated)", self.job_id, status, message
            )
            return False
        try:
            title = job.request.get("title", "Transfer")
            return JobReporter(session, job.ftrack_job_id, title, 0).finish(status, message)
        finally:
            session.close()


def report_unreported(journal: Journal, session: ftrack_api.Session) -> int:
    """Give ftrack the final status of jobs that ended while it was unreachable, so no
    ftrack Job stays ``running`` once ftrack is back. Returns how many were reported."""
    reported = 0
    for job in journal.unreported_jobs():
        if not job.ftrack_job_id:
            journal.update_job(job.id, ftrack_unreported=0)
            continue
        title = job.request.get("title", "Transfer")
        if JobReporter(session, job.ftrack_job_id, title, 0).finish(job.status, job.message):
            journal.update_job(job.id, ftrack_unreported=0)
            reported += 1
    return reported


def _discard_pending(session: Any) -> None:
    """Drop what a failed commit left recorded, so the final Job update does not send it
    again (a registration outside the journal's knowledge)."""
    if session is not None:
        with contextlib.suppress(Exception):  # best effort before reporting the failure
            session.rollback()


def cancel_job(journal: Journal, config: SitesConfig, job_id: str, username: str) -> None:
    """Cancel a job no live process is running: remove its temporaries, end its ftrack Job.

    What already arrived stays registered at the destination.
    """
    from .configure_location import build_accessor
    from .ftrack_session import open_session

    job = journal.job(job_id)
    for row in journal.files(job_id):
        if row.token and row.status != "done" and row.backend == "direct":
            try:
                accessor = build_accessor(config.location(row.destination))
                Endpoints(
                    accessor, accessor, config.transfer, BandwidthLimiter(None), threading.Event()
                ).abort(row.dest_ri, row.token)
            except UserError:
                logger.warning(
                    "job %s: cannot reach %s to remove %s", job_id, row.destination, row.dest_ri
                )
            journal.clear_chunks(row.id)
    progress = journal.progress(job_id)
    message = (
        f"cancelled by {username}; {progress.components_registered} of {progress.components_total} "
        f"components arrived and stay available at {', '.join(job.destinations)}"
        if job.status not in ("queued", "planning")
        else f"cancelled by {username} before it started"
    )
    journal.update_job(
        job_id, status="cancelled", message=message, finished=time.time(), owner=None
    )
    if job.ftrack_job_id:
        try:
            session = open_session()
        except UserError as error:
            logger.warning(
                "job %s cancelled, but its ftrack Job was not updated: %s", job_id, error
            )
            return
        try:
            reporter = JobReporter(
                session, job.ftrack_job_id, job.request.get("title", "Transfer"), 0
            )
            reporter.on_job_finished(
                Snapshot(job_id, 0, 0, 0, 0, 0, 0, 0, 0.0, None), "cancelled", message
            )
        finally:
            session.close()
