"""Progress events and the subscribers that turn them into a Job, a bar and logs.

The engine reports what happens to a job through :class:`Subscriber` callbacks (the
s3transfer model); the ftrack Job reporter, the terminal progress bar and the log
writer are all subscribers of the same events, so they always agree.
Callbacks run on the engine's scheduler thread and must return quickly.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time

from .units import format_duration, format_rate, format_size

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Where a job stands, as every subscriber shows it."""

    job_id: str
    files_total: int
    files_done: int
    files_failed: int
    bytes_total: int
    bytes_done: int
    components_total: int
    components_available: int
    rate: float  # bytes per second, recent
    eta: float | None  # seconds

    @property
    def percent(self) -> float:
        if self.bytes_total:
            return min(100.0, 100.0 * self.bytes_done / self.bytes_total)
        if self.files_total:
            return 100.0 * self.files_done / self.files_total
        return 100.0

    def describe(self) -> str:
        """One line for a Job description or a log: counts, percent, speed, ETA."""
        parts = [f"{self.files_done} of {self.files_total} files"]
        if self.components_total:
            parts.append(
                f"{self.components_available} of {self.components_total} components available"
            )
        parts.append(f"{self.percent:.0f} %")
        parts.append(f"{format_size(self.bytes_done)} of {format_size(self.bytes_total)}")
        parts.append(format_rate(self.rate))
        parts.append(f"ETA {format_duration(self.eta)}")
        if self.files_failed:
            parts.append(f"{self.files_failed} failed")
        return ", ".join(parts)


class RateMeter:
    """Throughput over a sliding window, so a stall shows as a falling rate."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._sum = 0  # of the samples in the window: rate() is asked after every file
        self._lock = threading.Lock()

    def add(self, nbytes: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._samples.append((now, nbytes))
            self._sum += nbytes
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._samples and now - self._samples[0][0] > self.window:
            self._sum -= self._samples.popleft()[1]

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if not self._samples:
                return 0.0
            span = max(now - self._samples[0][0], 1.0)
            return self._sum / span


class Subscriber:
    """Receives a job's events; override what you need. Default: do nothing."""

    def on_job_started(self, snapshot: Snapshot, description: str) -> None:
        """The job starts (or resumes); *description* says what it sends where."""

    def on_progress(self, snapshot: Snapshot) -> None:
        """Bytes moved or files finished; may be called very often."""

    def on_file_failed(self, job_id: str, file_label: str, reason: str) -> None:
        """A file failed for good (after its retries)."""

    def on_components_available(
        self, job_id: str, destination: str, component_ids: list[str]
    ) -> None:
        """Components were registered at *destination* in ftrack."""

    def on_job_finished(self, snapshot: Snapshot, status: str, message: str) -> None:
        """Final: *status* is done, failed or cancelled; *message* says what happened."""


class Throttle:
    """Lets an action through at most once per *interval* seconds (the last one always)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = float("-inf")

    def ready(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


class LogSubscriber(Subscriber):
    """Progress in the log, at most every *interval* seconds."""

    def __init__(self, interval: float = 10.0) -> None:
        self.throttle = Throttle(interval)

    def on_job_started(self, snapshot: Snapshot, description: str) -> None:
        logger.info("job %s started: %s", snapshot.job_id, description)

    def on_progress(self, snapshot: Snapshot) -> None:
        if self.throttle.ready():
            logger.info("job %s: %s", snapshot.job_id, snapshot.describe())

    def on_file_failed(self, job_id: str, file_label: str, reason: str) -> None:
        logger.warning("job %s: %s failed: %s", job_id, file_label, reason)

    def on_job_finished(self, snapshot: Snapshot, status: str, message: str) -> None:
        log = logger.info if status == "done" else logger.warning
        log("job %s %s: %s", snapshot.job_id, status, message)
