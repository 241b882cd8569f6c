"""A terminal progress bar (rich) driven by the same events as the ftrack Job.

Without a terminal (a pipe, a cron job's mail, a service log) a bar cannot redraw: it
would be drawn once, cut to 80 columns, at the end. There the same snapshot is written
as a plain line at a steady pace instead, so a log shows how a long send went.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .progress import Snapshot, Subscriber, Throttle

#: Seconds between two progress lines when the output is not a terminal.
PLAIN_INTERVAL = 30.0


class ProgressBar(Subscriber):
    """Shows one job's bytes, files, speed and ETA; prints the final message."""

    def __init__(
        self,
        console: Console | None = None,
        label: str = "",
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or Console(file=sys.stderr, soft_wrap=True)
        self.label = label
        self.live = self.console.is_terminal
        self.throttle = Throttle(interval)
        self.clock = clock
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task: TaskID | None = None

    def _text(self, snapshot: Snapshot) -> str:
        text = f"{self.label or snapshot.job_id} {snapshot.files_done}/{snapshot.files_total} files"
        if snapshot.components_total:
            text += f", {snapshot.components_available}/{snapshot.components_total} available"
        return text

    def on_job_started(self, snapshot: Snapshot, description: str) -> None:
        self.console.print(f"[bold]{self.label or snapshot.job_id}[/]: {description}")
        if not self.live:
            self.throttle.ready(self.clock())  # the first line comes one interval later
            return
        self.progress.start()
        self.task = self.progress.add_task(self._text(snapshot), total=snapshot.bytes_total or None)
        self.progress.update(self.task, completed=snapshot.bytes_done)

    def on_progress(self, snapshot: Snapshot) -> None:
        if not self.live:
            if self.throttle.ready(self.clock()):
                line = f"{self.label or snapshot.job_id}: {snapshot.describe()}"
                self.console.print(line, soft_wrap=True)  # one line per entry in a log
            return
        if self.task is not None:
            self.progress.update(
                self.task, completed=snapshot.bytes_done, total=snapshot.bytes_total or None,
                description=self._text(snapshot),
            )  # fmt: skip

    def on_file_failed(self, job_id: str, file_label: str, reason: str) -> None:
        self.progress.console.print(f"[red]failed[/]: {file_label}: {reason}")

    def on_job_finished(self, snapshot: Snapshot, status: str, message: str) -> None:
        if self.task is not None:
            self.on_progress(snapshot)
            self.progress.stop()
        colour = {"done": "green", "failed": "red", "cancelled": "yellow"}.get(status, "yellow")
        self.console.print(f"[{colour}]{status}[/]: {message}")
