"""``ftrack-transfer serve``: the action listener, the transfer workers and the schedules.

One long-running process per journal (an OS lock enforces it):

* a listener session connected to the ftrack event hub serves the **accsyn Send** action,
  the auto-return rules (``ftrack.location.component-added``) and the auto-send rules
  (``ftrack.update`` on task assignments); its callbacks only validate and queue work;
* worker threads run queued jobs (:class:`~.engine.JobRunner`), each with its own
  ftrack session;
* a housekeeping thread picks up jobs queued by other processes, runs the schedules,
  and scans for vendor publishes that arrived while nobody was listening.

At start, unfinished jobs in the journal are resumed. On SIGTERM every runner stops at a
chunk boundary and leaves its job resumable; its ftrack Job goes back to ``queued``.
"""

from __future__ import annotations

import datetime
import fnmatch
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ftrack_api
import ftrack_api.event.base

from ..actions.base import notify_user
from ..actions.send import SendAction, SendRequest
from .config import Schedule, SitesConfig, matches_principal
from .configure_location import configure_locations
from .engine import JobRunner, report_unreported, submit
from .errors import UserError
from .ftrack_session import open_session
from .journal import FINISHED, Journal, owner_id
from .planner import Filters
from .progress import LogSubscriber, Subscriber
from .reporter import JobReporter
from .selection import EntityRef, chunks, quote_ids
from .sync import SyncResult, run_sync
from .units import counted

logger = logging.getLogger(__name__)

#: Seconds without a new component-added event before an auto-return job is made.
RETURN_SETTLE = 1.0


class Service:
    """Everything ``serve`` runs; :meth:`start` returns once it is listening."""

    def __init__(
        self,
        config: SitesConfig,
        *,
        journal: Journal | None = None,
        workers: int = 2,
        session_factory: Callable[[], ftrack_api.Session] | None = None,
        listener_factory: Callable[[], ftrack_api.Session] | None = None,
        accsyn_session_factory: Callable[[], Any] | None = None,
        scan_interval: float = 300.0,
        housekeeping_interval: float = 2.0,
        run_schedules: bool = True,
        subscribers: Sequence[Subscriber] = (),
    ) -> None:
        self.config = config
        self.journal = journal or Journal(config.journal_path())
        self.workers = workers
        self.session_factory = session_factory or (lambda: open_session(connect_event_hub=True))
        self.listener_factory = listener_factory or (lambda: open_session(connect_event_hub=True))
        self.accsyn_session_factory = accsyn_session_factory
        self.scan_interval = scan_interval
        self.housekeeping_interval = housekeeping_interval
        self.run_schedules = run_schedules
        self.extra_subscribers = list(subscribers)
        self.owner = owner_id()
        self.stopping = threading.Event()
        self.queue: queue.PriorityQueue[tuple[int, float, str]] = queue.PriorityQueue()
        self.queued: set[str] = set()
        self.running: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._messages: queue.Queue[tuple[str, str, bool]] = queue.Queue()
        self._pending_returns: dict[tuple[int, str], set[str]] = {}
        self._last_return_event = 0.0
        self._schedule_threads: dict[str, threading.Thread] = {}
        self.listener: ftrack_api.Session | None = None
        self.locations: dict[str, Any] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.journal.acquire_serve_lock()
        self.listener = self.listener_factory()
        self.locations = configure_locations(self.listener, self.config)
        self.by_id = {loc["id"]: name for name, loc in self.locations.items()}
        hub = self.listener.event_hub
        SendAction(self.listener, self.config, self.submit_send, self.locations).register()
        if self.config.auto_return:
            hub.subscribe("topic=ftrack.location.component-added", self._on_component_added)
        if self.config.auto_send:
            hub.subscribe("topic=ftrack.update", self._on_update)
        for job in self.journal.resumable_jobs():
            self.enqueue(job.id, job.priority)
        self._spawn("event-hub", self._hub_loop)
        for index in range(self.workers):
            self._spawn(f"worker-{index + 1}", self._worker_loop)
        self._spawn("housekeeping", self._housekeeping_loop)
        logger.info(
            "serving: %d locations, %d workers, %d schedules, journal %s",
            len(self.locations), self.workers, len(self.config.schedules), self.journal.path,
        )  # fmt: skip

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop cleanly: runners pause at a chunk boundary; every job stays resumable."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in [*self._threads, *self._schedule_threads.values()]:
            thread.join(max(0.1, deadline - time.monotonic()))
        if self.listener is not None:
            try:
                self.listener.event_hub.disconnect(unsubscribe=False)
            except Exception:
                logger.debug("event hub disconnect failed", exc_info=True)
            self.listener.close()
        self.journal.close()

    def wait(self) -> None:
        while not self.stopping.wait(1.0):
            pass

    # ------------------------------------------------------------------ queue

    def enqueue(self, job_id: str, priority: int = 500) -> None:
        with self._lock:
            if job_id in self.queued or job_id in self.running:
                return
            self.queued.add(job_id)
        self.queue.put((-priority, time.time(), job_id))

    def submit_send(self, request: SendRequest) -> str:
        """The action's submitter: an ftrack Job the user sees at once, then the queue."""
        assert self.listener is not None
        destinations = ", ".join(request.destinations)
        # The journal names the Job first (see JobRunner.run): a serve killed before
        # creating it leaves a journalled job whose runner creates it.
        ftrack_job_id = str(uuid.uuid4())
        job_id = submit(
            self.journal,
            source=request.source,
            destinations=request.destinations,
            selection=request.selection,
            origin="action",
            username=request.username,
            user_id=request.user_id,
            title=request.title,
            component_names=request.component_names,
            additional_files=request.additional_files,
            priority=request.priority,
            ftrack_job_id=ftrack_job_id,
        )
        try:
            JobReporter.create_job(
                self.listener,
                request.user_id,
                f"{request.title}: queued {counted(request.components_selected, 'component')} from {request.source} to {destinations}",
                job_id=ftrack_job_id,
            )
        except Exception as error:
            # The user is told the send was not queued; the journal must agree.
            self.journal.update_job(
                job_id, status="failed", message=f"the ftrack Job could not be created: {error}",
                finished=time.time(),
            )  # fmt: skip
            raise
        self.enqueue(job_id, request.priority)
        return job_id

    def _worker_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                _, _, job_id = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            with self._lock:
                self.queued.discard(job_id)
                self.running.add(job_id)
            try:
                self._run_job(job_id)
            except Exception:
                # A worker outlives any one job: the journal keeps the job, and the
                # housekeeping loop queues it again while it is unfinished.
                logger.exception("job %s: the runner stopped unexpectedly", job_id)
            finally:
                with self._lock:
                    self.running.discard(job_id)

    def _run_job(self, job_id: str) -> None:
        runner = JobRunner(
            self.journal,
            self.config,
            self.session_factory,
            job_id,
            subscribers=[LogSubscriber(), *self.extra_subscribers],
            stop=self.stopping,
            owner=self.owner,
            accsyn_session_factory=self.accsyn_session_factory,
        )
        try:
            status = runner.run()
        except UserError as error:  # another process holds it
            logger.info("job %s: %s", job_id, error)
            return
        job = self.journal.job(job_id)
        if job.origin == "action" and job.user_id and status in FINISHED:
            text = f"{job.request.get('title', 'Transfer')} {status}: {job.message}"
            self._messages.put((job.user_id, text[:500], status == "done"))

    # ------------------------------------------------------------------ event hub

    def _hub_loop(self) -> None:
        assert self.listener is not None
        hub = self.listener.event_hub
        while not self.stopping.is_set():
            try:
                hub.wait(0.5)
            except ftrack_api.exception.EventHubConnectionError:
                # The hub reconnects by itself (and re-subscribes); keep serving.
                self.stopping.wait(1.0)
            except Exception:
                logger.exception("event processing failed")
            self._flush_messages()
            self._flush_returns()

    def _flush_messages(self) -> None:
        assert self.listener is not None
        while True:
            try:
                user_id, text, success = self._messages.get_nowait()
            except queue.Empty:
                return
            notify_user(self.listener, user_id, text, success)

    # ------------------------------------------------------------------ auto-return

    def _on_component_added(self, event: ftrack_api.event.base.Event) -> None:
        location = self.by_id.get(event["data"].get("location_id"))
        component_id = event["data"].get("component_id")
        if not location or not component_id:
            return
        for index, rule in enumerate(self.config.auto_return):
            if fnmatch.fnmatchcase(location, rule.source) and rule.destination != location:
                self._pending_returns.setdefault((index, location), set()).add(component_id)
                self._last_return_event = time.monotonic()

    def _flush_returns(self) -> None:
        """Turn component-added events into one job per pair, once a publish has settled
        (no new event for a second), so a version's components travel together."""
        if not self._pending_returns or time.monotonic() - self._last_return_event < RETURN_SETTLE:
            return
        pending, self._pending_returns = self._pending_returns, {}
        assert self.listener is not None
        for (index, source), component_ids in pending.items():
            rule = self.config.auto_return[index]
            destination = rule.destination
            destination_id = (
                self.locations[destination]["id"] if destination in self.locations else None
            )
            top_level: set[str] = set()
            for batch in chunks(sorted(component_ids)):
                # Only what the destination lacks: a send *to* the vendor registers
                # components there too, and those must not bounce back as empty jobs.
                for row in self.listener.query(
                    f"select id, container_id from Component where id in {quote_ids(batch)}"
                    f' and not component_locations any (location_id is "{destination_id}")'
                ):
                    top_level.add(row["container_id"] or row["id"])
            fresh = [
                c
                for c in sorted(top_level)
                if self.journal.remember_event(f"return:{c}:{destination}")
            ]
            if fresh:
                selection = [EntityRef("Component", c) for c in fresh]
                self._submit_auto(source, destination, selection, "auto-return", rule.filters)

    def _submit_auto(
        self,
        source: str,
        destination: str,
        selection: list[EntityRef],
        origin: str,
        filters: Mapping[str, Any] | None = None,
        title: str = "",
    ) -> str:
        job_id = submit(
            self.journal,
            source=source,
            destinations=[destination],
            selection=selection,
            origin=origin,
            username=None,
            user_id=None,
            title=title or f"Auto-return {source} to {destination}",
            filters=Filters.from_mapping(filters) if filters else None,
            require_at_source=True,
        )
        logger.info(
            "%s: job %s sends %d entities from %s to %s",
            origin,
            job_id,
            len(selection),
            source,
            destination,
        )
        self.enqueue(job_id)
        return job_id

    def scan_returns(self, session: ftrack_api.Session) -> list[str]:
        """The safety net: components at a vendor location and not yet home."""
        jobs = []
        busy = {
            (j.source, tuple(j.destinations))
            for j in self.journal.jobs(("queued", "planning", "running"), 500)
        }
        for rule in self.config.auto_return:
            for name, location in self.locations.items():
                if not fnmatch.fnmatchcase(name, rule.source) or name == rule.destination:
                    continue
                if (name, (rule.destination,)) in busy or rule.destination not in self.locations:
                    continue
                destination_id = self.locations[rule.destination]["id"]
                # The rule's filter is part of the query, so a component it excludes
                # never turns into an empty job at every scan.
                narrowing = Filters.from_mapping(rule.filters).expression()
                rows = session.query(
                    f'select id from Component where component_locations any (location_id is "{location["id"]}") '
                    f'and not component_locations any (location_id is "{destination_id}") and container_id is none'
                    f"{narrowing}"
                ).all()
                if rows:
                    selection = [EntityRef("Component", row["id"]) for row in rows]
                    jobs.append(
                        self._submit_auto(
                            name, rule.destination, selection, "auto-return", rule.filters
                        )
                    )
        return jobs

    # ------------------------------------------------------------------ auto-send

    def _on_update(self, event: ftrack_api.event.base.Event) -> None:
        for entity in event["data"].get("entities") or []:
            if entity.get("entityType") == "appointment" and entity.get("action") == "add":
                try:
                    self._auto_send(entity["entityId"])
                except UserError as error:
                    logger.warning("auto-send for assignment %s: %s", entity.get("entityId"), error)

    def _auto_send(self, appointment_id: str) -> None:
        assert self.listener is not None
        session = self.listener
        appointment = session.query(
            f'select context_id, resource_id, type from Appointment where id is "{appointment_id}"'
        ).first()
        if appointment is None or appointment["type"] != "assignment":
            return
        user = session.query(
            f'select id, username, email from User where id is "{appointment["resource_id"]}"'
        ).first()
        if user is None:
            return
        from .permissions import user_groups

        groups = user_groups(session, user["id"])
        task = session.query(
            f'select id, name, parent_id from TypedContext where id is "{appointment["context_id"]}"'
        ).first()
        if task is None:
            return
        for rule in self.config.auto_send:
            if not matches_principal(rule.users, user["username"], groups):
                continue
            destination = self._user_location(user)
            if destination is None:
                logger.info(
                    "auto-send: %s has no location in the sites config; nothing sent",
                    user["username"],
                )
                continue
            if not self.journal.remember_event(f"assign:{appointment_id}:{destination}"):
                continue
            versions = self._inputs(session, task["parent_id"], rule.versions)
            if not versions:
                continue
            job_id = submit(
                self.journal,
                source=rule.source,
                destinations=[destination],
                selection=[EntityRef("AssetVersion", v) for v in versions],
                origin="auto-send",
                username=None,
                user_id=None,
                title=f"Inputs of {task['name']} for {user['username']}",
                filters=Filters.from_mapping(rule.filters),
                require_at_source=True,
            )
            self.enqueue(job_id)
            self._note(session, task, f"ftrack-transfer: sending the inputs of {task['name']} "
                       f"({len(versions)} versions) from {rule.source} to {destination} for {user['username']} "
                       f"(job {job_id}).")  # fmt: skip

    def _user_location(self, user: Any) -> str | None:
        names = {user["username"], user.get("email") or ""}
        for name, location in self.config.locations.items():
            if name in self.locations and (name in names or location.accsyn_party in names):
                return name
        return None

    @staticmethod
    def _inputs(session: ftrack_api.Session, parent_id: str, which: str) -> list[str]:
        rows = session.query(
            f'select id, version, asset_id from AssetVersion where asset.context_id is "{parent_id}"'
        ).all()
        if which == "all":
            return [row["id"] for row in rows]
        latest: dict[str, Any] = {}
        for row in rows:
            if row["asset_id"] not in latest or row["version"] > latest[row["asset_id"]]["version"]:
                latest[row["asset_id"]] = row
        return [row["id"] for row in latest.values()]

    def _note(self, session: ftrack_api.Session, task: Any, text: str) -> None:
        user = session.query(f'select id from User where username is "{session.api_user}"').first()
        try:
            session.create(
                "Note",
                {
                    "content": text,
                    "parent_id": task["id"],
                    "parent_type": "TypedContext",
                    "user_id": user["id"] if user else None,
                },
            )
            session.commit()
        except ftrack_api.exception.Error as error:
            session.rollback()
            logger.warning("could not note the auto-send on task %s: %s", task["id"], error)

    # ------------------------------------------------------------------ housekeeping

    def _housekeeping_loop(self) -> None:
        session: ftrack_api.Session | None = None
        last_scan = float("-inf")
        while not self.stopping.wait(self.housekeeping_interval):
            try:
                for job in self.journal.resumable_jobs():
                    self.enqueue(job.id, job.priority)
                if self.run_schedules:
                    self._run_due_schedules()
                unreported = self.journal.unreported_jobs()
                scan_due = (
                    self.config.auto_return and time.monotonic() - last_scan >= self.scan_interval
                )
                if (unreported or scan_due) and session is None:
                    session = self.session_factory()
                if unreported:
                    report_unreported(self.journal, session)
                if scan_due:
                    last_scan = time.monotonic()
                    self.scan_returns(session)
            except Exception:
                logger.exception("housekeeping failed")
                if session is not None:
                    session.close()
                    session = None
        if session is not None:
            session.close()

    def _run_due_schedules(self) -> None:
        now = time.time()
        for schedule in self.config.schedules:
            thread = self._schedule_threads.get(schedule.name)
            if thread is not None and thread.is_alive():
                continue
            last = self.journal.schedule_run(schedule.name)
            if not schedule_due(schedule, last["started"] if last else None, now):
                continue
            if not self.journal.start_schedule_run(schedule.name, self.owner):
                continue
            thread = threading.Thread(
                target=self._run_schedule,
                args=(schedule,),
                name=f"schedule-{schedule.name}",
                daemon=True,
            )
            self._schedule_threads[schedule.name] = thread
            thread.start()

    def run_schedule_now(self, name: str) -> SyncResult:
        """Run one schedule at once, in this thread (as its timer would)."""
        schedule = next((s for s in self.config.schedules if s.name == name), None)
        if schedule is None:
            raise UserError(f"no schedule {name!r} in the sites config")
        if not self.journal.start_schedule_run(name, self.owner):
            raise UserError(f"schedule {name!r} is already running")
        return self._run_schedule(schedule)

    def _run_schedule(self, schedule: Schedule) -> SyncResult:
        try:
            result = run_sync(
                self.journal,
                self.config,
                self.session_factory,
                source=schedule.source,
                destination=schedule.destination,
                project=schedule.project,
                filters=Filters.from_mapping(schedule.filters),
                origin=f"schedule:{schedule.name}",
                subscribers=[LogSubscriber(), *self.extra_subscribers],
                stop=self.stopping,
            )
        except Exception as error:
            logger.warning("schedule %s failed: %s", schedule.name, error)
            result = SyncResult("failed", str(error))
        self.journal.finish_schedule_run(
            schedule.name, result.status, result.summary, result.job_id
        )
        return result


def schedule_due(schedule: Schedule, last_started: float | None, now: float) -> bool:
    """Whether *schedule* should run at *now* (epoch seconds), given its last start."""
    if schedule.every is not None:
        return last_started is None or now - last_started >= schedule.every
    assert schedule.window is not None
    current = datetime.datetime.fromtimestamp(now)
    start = datetime.datetime.combine(
        current.date(), datetime.time.fromisoformat(schedule.window[0])
    )
    end = datetime.datetime.combine(current.date(), datetime.time.fromisoformat(schedule.window[1]))
    if end <= start:  # a window over midnight, e.g. 22:00-04:00
        if current < end:
            start -= datetime.timedelta(days=1)
        else:
            end += datetime.timedelta(days=1)
    if not start <= current < end:
        return False
    return last_started is None or last_started < start.timestamp()
