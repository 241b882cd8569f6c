"""``ftrack-transfer retry JOB`` and ``ftrack-transfer cancel JOB``."""

from __future__ import annotations

import argparse
import getpass
import os
import time

from rich.console import Console

from ..config import load_config
from ..engine import cancel_job
from ..errors import JobError
from ..journal import FINISHED, Journal, owner_alive
from ..units import counted
from .running import run_or_follow


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "job", help="job id (or its first characters), from `ftrack-transfer status`"
    )
    if command == "retry":
        parser.add_argument("--wait", action="store_true", help="show progress until the job ends")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    journal = Journal(config.journal_path())
    console = Console(soft_wrap=True)
    job = journal.job(args.job)
    if args.command == "cancel":
        username = os.environ.get("FTRACK_API_USER") or getpass.getuser()
        if job.status in FINISHED:
            raise JobError(f"job {job.id} has already ended ({job.status}); nothing to cancel")
        journal.request_cancel(job.id, username)
        if owner_alive(job.owner, job.heartbeat):
            deadline = time.monotonic() + 60
            while journal.job(job.id).status not in FINISHED and time.monotonic() < deadline:
                time.sleep(0.2)
            job = journal.job(job.id)
            if job.status not in FINISHED:
                raise JobError(
                    f"job {job.id} did not stop within a minute; its process may be stuck"
                )
        else:
            cancel_job(journal, config, job.id, username)
            job = journal.job(job.id)
        console.print(f"job {job.id} {job.status}: {job.message}")
        return 0
    # retry
    if job.status == "done" and not journal.files(job.id, ["failed"]):
        console.print(f"job {job.id} is done and everything arrived; nothing to retry")
        return 0
    if owner_alive(job.owner, job.heartbeat) and job.status not in FINISHED:
        raise JobError(f"job {job.id} is running ({job.owner}); wait for it or cancel it first")
    reset = journal.reset_files(job.id, ["failed"])
    journal.update_job(
        job.id,
        status="running" if job.files_total else "queued",
        cancel_requested_by=None,
        finished=None,
    )
    unsent = len(journal.files(job.id, ["pending"])) - reset
    queued = counted(reset, "failed file") + (f" and {unsent} not tried" if unsent > 0 else "")
    console.print(f"retrying job {job.id}: {queued} queued again; files that arrived are kept")
    return run_or_follow(
        journal, config, job.id, wait=getattr(args, "wait", False), console=console
    )
