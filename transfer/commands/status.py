"""``ftrack-transfer status [JOB]``: jobs, their progress, and the schedules' last runs."""

from __future__ import annotations

import argparse
import datetime

from rich.table import Table

from ..config import load_config
from ..journal import Journal
from ..units import format_size
from .tables import table_console


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("job", nargs="?", help="a job id (or its first characters) for details")
    parser.add_argument(
        "--limit", type=int, default=20, help="how many recent jobs to list (default 20)"
    )


def _when(stamp: float | None) -> str:
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    journal = Journal(config.journal_path())
    console = table_console()
    if args.job:
        job = journal.job(args.job)
        progress = journal.progress(job.id)
        console.print(
            f"[bold]job {job.id}[/] {job.status} ({job.origin}, by {job.username or '-'})"
        )
        console.print(
            f"from {job.source} to {', '.join(job.destinations)}; created {_when(job.created)}"
        )
        console.print(
            f"{progress.files_done} of {progress.files_total} files, "
            f"{format_size(progress.bytes_done)} of {format_size(progress.bytes_total)}, "
            f"{progress.components_registered} of {progress.components_total} components available"
        )
        if job.ftrack_job_id:
            console.print(f"ftrack Job {job.ftrack_job_id}")
        if job.message:
            console.print(job.message)
        failed = journal.files(job.id, ["failed"])
        if failed:
            table = Table(title="failed files")
            for column in ("to", "file", "error"):
                table.add_column(column)
            for row in failed:
                table.add_row(row.destination, row.source_ri, row.error or "")
            console.print(table)
        return 0
    table = Table(title=f"jobs in {journal.path}")
    for column in (
        "job",
        "status",
        "origin",
        "user",
        "from",
        "to",
        "progress",
        "created",
        "message",
    ):
        table.add_column(column, overflow="fold")
    for job in journal.jobs(limit=args.limit):
        progress = journal.progress(job.id)
        percent = (
            100.0 * progress.bytes_done / progress.bytes_total if progress.bytes_total else 0.0
        )
        table.add_row(
            job.id, job.status, job.origin, job.username or "-", job.source, ", ".join(job.destinations),
            f"{progress.files_done}/{progress.files_total} files, {percent:.0f} %", _when(job.created),
            (job.message or "")[:120],
        )  # fmt: skip
    console.print(table)
    runs = journal.schedule_runs()
    if runs:
        schedules = Table(title="schedules: last run")
        for column in ("schedule", "status", "started", "finished", "result"):
            schedules.add_column(column, overflow="fold")
        for run_ in runs:
            schedules.add_row(run_["name"], run_["status"] or "-", _when(run_["started"]), _when(run_["finished"]),
                              run_["summary"] or "")  # fmt: skip
        console.print(schedules)
    return 0
