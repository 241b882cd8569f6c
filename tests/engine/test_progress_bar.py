"""What `send --wait` shows: a live bar on a terminal; plain, paced lines in a log."""

from __future__ import annotations

import io

from ftrack_transfer.transfer.progress import Snapshot
from ftrack_transfer.transfer.progress_bar import ProgressBar
from rich.console import Console

MiB = 1024 * 1024


def snapshot(files_done: int, bytes_done: int) -> Snapshot:
    return Snapshot(
        job_id="job1", files_total=100, files_done=files_done, files_failed=0,
        bytes_total=100 * MiB, bytes_done=bytes_done, components_total=2,
        components_available=files_done // 50, rate=10 * MiB, eta=(100 * MiB - bytes_done) / (10 * MiB),
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_progress_is_a_line_per_interval_and_the_end_is_reported() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(Console(file=out, width=80), "job job1", interval=30.0, clock=clock)
    bar.on_job_started(snapshot(0, 0), "2 components (100 files, 100 MiB) from hq to la")
    for second in range(0, 61, 5):  # a progress event every 5 s for a minute
        clock.now = 1000.0 + second
        bar.on_progress(snapshot(second, second * MiB))
    bar.on_job_finished(snapshot(100, 100 * MiB), "done", "sent 2 components in 01:00")
    lines = out.getvalue().splitlines()
    assert lines == [
        "job job1: 2 components (100 files, 100 MiB) from hq to la",
        "job job1: 30 of 100 files, 0 of 2 components available, 30 %, 30.0 MiB of 100.0 MiB, "
        "10.5 MB/s, ETA 00:07",
        "job job1: 60 of 100 files, 1 of 2 components available, 60 %, 60.0 MiB of 100.0 MiB, "
        "10.5 MB/s, ETA 00:04",
        "done: sent 2 components in 01:00",
    ]
    assert "━" not in out.getvalue()  # no bar drawn once, cut to the width, at the end


def test_on_a_terminal_the_bar_shows_files_available_components_and_the_final_message() -> None:
    out, clock = io.StringIO(), Clock()
    console = Console(file=out, width=120, force_terminal=True, color_system=None)
    bar = ProgressBar(console, "job job1", clock=clock)
    bar.on_job_started(snapshot(0, 0), "2 components (100 files, 100 MiB) from hq to la")
    bar.on_progress(snapshot(50, 50 * MiB))
    bar.on_job_finished(snapshot(100, 100 * MiB), "done", "sent 2 components in 01:00")
    text = out.getvalue()
    assert "job job1 100/100 files, 2/2 available" in text
    assert "━" in text
    assert text.rstrip().endswith("done: sent 2 components in 01:00")
