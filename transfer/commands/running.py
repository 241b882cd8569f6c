"""Running a journalled job from a command: here, or by following a running serve."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from rich.console import Console

from ..config import SitesConfig
from ..engine import JobRunner, report_unreported
from ..ftrack_session import session_factory
from ..journal import FINISHED, Journal
from ..permissions import check_send, user_groups
from ..progress import RateMeter, Snapshot
from ..progress_bar import ProgressBar

logger = logging.getLogger(__name__)


def current_user(session: Any) -> tuple[str, str | None]:
    """The ftrack user this command runs as: (username, id)."""
    user = session.query(
        f'select id, username from User where username is "{session.api_user}"'
    ).first()
    return session.api_user, (user["id"] if user else None)


def permitted_user(
    session: Any, config: SitesConfig, source: str, destinations: list[str]
) -> tuple[str, str | None]:
    """The user this command runs as, once the sites config's permissions let them send
    from *source* to *destinations* (they hold on every surface, not only the action)."""
    username, user_id = current_user(session)
    groups = user_groups(session, user_id) if user_id else ()
    check_send(config, username, groups, source, destinations)
    return username, user_id


def exit_code(status: str) -> int:
    return 0 if status == "done" else 1


def report_missed_endings(journal: Journal) -> None:
    """Give ftrack the final status of earlier jobs that ended while it was unreachable.

    serve does this as it runs; on a machine that never runs serve, the next job run
    here does it, so no ftrack Job stays ``running`` for good.
    """
    if not journal.unreported_jobs():
        return
    try:
        session = session_factory()()
    except Exception as error:
        logger.info("ftrack still unreachable; earlier jobs' final status not reported: %s", error)
        return
    try:
        report_unreported(journal, session)
    except Exception as error:
        logger.info("could not report earlier jobs' final status to ftrack: %s", error)
    finally:
        session.close()


def run_here(journal: Journal, config: SitesConfig, job_id: str, console: Console) -> str:
    """Run a job in this process with a progress bar; Ctrl-C pauses it resumably."""
    report_missed_endings(journal)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        runner = JobRunner(
            journal, config, session_factory(connect_event_hub=True), job_id,
            subscribers=[ProgressBar(Console(stderr=True, soft_wrap=True), f"job {job_id}")], stop=stop,
        )  # fmt: skip
        try:
            return runner.run()
        except KeyboardInterrupt:
            stop.set()
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def follow(journal: Journal, job_id: str, console: Console, timeout: float | None = None) -> str:
    """Show a job run by serve until it ends, from the journal."""
    bar = ProgressBar(Console(stderr=True, soft_wrap=True), f"job {job_id}")
    meter = RateMeter()
    started = False
    last = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = journal.job(job_id)
        progress = journal.progress(job_id)
        meter.add(max(0, progress.bytes_done - last))
        last = progress.bytes_done
        rate = meter.rate()
        snapshot = Snapshot(
            job_id, progress.files_total, progress.files_done, progress.files_failed, progress.bytes_total,
            progress.bytes_done, progress.components_total, progress.components_registered, rate,
            (progress.bytes_total - progress.bytes_done) / rate if rate else None,
        )  # fmt: skip
        if not started and (job.status in ("running", *FINISHED)):
            bar.on_job_started(snapshot, job.message or "")
            started = True
        if started:
            bar.on_progress(snapshot)
        if job.status in FINISHED:
            bar.on_job_finished(snapshot, job.status, job.message)
            return job.status
        if deadline is not None and time.monotonic() > deadline:
            return job.status
        time.sleep(0.5)


def run_or_follow(
    journal: Journal, config: SitesConfig, job_id: str, *, wait: bool, console: Console
) -> int:
    if journal.serve_running():
        if not wait:
            console.print(
                f"queued job {job_id}; the running serve will send it (`ftrack-transfer status {job_id}`)"
            )
            return 0
        return exit_code(follow(journal, job_id, console))
    if not wait:
        console.print(
            f"queued job {job_id} in {journal.path}; no serve is running on this journal, so it starts "
            "when `ftrack-transfer serve` runs (or pass --wait to send it from here)"
        )
        return 0
    return exit_code(run_here(journal, config, job_id, console))
