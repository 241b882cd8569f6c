"""Runs transfers in the background: copies each task's files from the source party's
root to the destination party's root, in chunks, reporting progress, speed and time
remaining as it goes.

One worker thread per running transfer, its tasks one after the other (highest priority
first). A file is written under a hidden part name next to its destination and renamed
when complete, so a reader never sees a partial file under the final name; a paused
transfer keeps its part files and resumes from their size, an aborted one removes them.
A destination that already has the source's size and modification time is skipped, the
way rsync and accsyn resume.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pathlib
import threading
import time
from typing import BinaryIO

from .faults import Faults
from .model import NEVER, Task, Transfer, now
from .store import Store

logger = logging.getLogger(__name__)

_SPEED_WINDOW = 1.0  # seconds of history behind the reported speed


def part_name(destination: pathlib.Path, task_id: str) -> pathlib.Path:
    """Where a file is written until complete (hidden, tied to its task)."""
    return destination.with_name(f".{destination.name}.{task_id[:8]}.part")


class _Stopped(Exception):
    """The task cannot go on: its transfer was paused or aborted, or it was taken off."""

    def __init__(self, keep_part: bool) -> None:
        super().__init__()
        self.keep_part = keep_part


class Executor:
    def __init__(
        self,
        store: Store,
        faults: Faults,
        chunk_size: int = 1 << 20,
        bandwidth: float | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        if bandwidth is not None and bandwidth <= 0:
            raise ValueError("bandwidth must be positive (bytes/s) or None")
        self.store = store
        self.faults = faults
        self.chunk_size = chunk_size
        self.bandwidth = bandwidth
        self._stopping = threading.Event()
        self._workers: dict[str, threading.Thread] = {}
        self._dispatcher: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="accsyn-dispatch", daemon=True
        )
        self._dispatcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker after its current chunk; part files stay for a later resume."""
        self._stopping.set()
        with self.store.lock:
            self.store.touch()
            threads = [*self._workers.values()]
        for thread in [self._dispatcher, *threads]:
            if thread is not None:
                thread.join(timeout)
        self._dispatcher = None

    @property
    def busy(self) -> bool:
        with self.store.lock:
            return bool(self._workers)

    # -- dispatch -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        store = self.store
        while not self._stopping.is_set():
            cleanups = []
            with store.lock:
                for transfer in [*store.transfers.values(), *store.archived.values()]:
                    if transfer.id in self._workers:
                        continue
                    if transfer.cleanup:
                        transfer.cleanup = False
                        cleanups.append(transfer)
                    elif _wants_run(transfer):
                        worker = threading.Thread(
                            target=self._run,
                            args=(transfer,),
                            name=f"accsyn-transfer-{transfer.id}",
                            daemon=True,
                        )
                        self._workers[transfer.id] = worker
                        worker.start()
                if not cleanups:
                    store.changed.wait(0.5)
            for transfer in cleanups:
                _remove_parts(transfer)

    def _run(self, transfer: Transfer) -> None:
        store = self.store
        try:
            with store.lock:
                if not _wants_run(transfer):
                    return
                transfer.status, transfer.message = "running", ""
                store.touch()
            self._measure(transfer)
            meter = _Meter(self.bandwidth)
            plan: collections.deque[Task] = collections.deque()
            revision = -1
            while True:
                with store.lock:
                    if self._stopping.is_set() or transfer.status != "running":
                        break
                    if revision != transfer.revision or not plan:
                        plan, revision = collections.deque(transfer.runnable()), transfer.revision
                    while plan and plan[0].status not in ("pending", "queued"):
                        plan.popleft()
                    if not plan:
                        _finalise(transfer)
                        store.touch()
                        break
                    task = plan.popleft()
                    task.status, task.message, task.transferred = "executing", "", 0
                    store.touch()
                self._execute(transfer, task, meter)
        except Exception:  # a bug here must not kill the service silently
            logger.exception("Transfer %s crashed", transfer.id)
            with store.lock:
                transfer.status, transfer.message = "failed", "Internal error in the executor"
        finally:
            with store.lock:
                self._workers.pop(transfer.id, None)
                transfer.speed, transfer.etr = 0.0, ""
                if transfer.cleanup:
                    transfer.cleanup = False
                    cleanup = True
                else:
                    cleanup = False
                store.touch()
            if cleanup:
                _remove_parts(transfer)

    def _measure(self, transfer: Transfer) -> None:
        """Size every task not sized yet (accsyn's ``init`` phase)."""
        with self.store.lock:
            pending = [t for t in transfer.tasks.values() if t.size < 0]
        sizes = {task.id: task.source.size() for task in pending}
        with self.store.lock:
            for task in pending:
                task.size = sizes[task.id]
            self.store.touch()

    # -- one task -------------------------------------------------------------------------

    def _execute(self, transfer: Transfer, task: Task, meter: _Meter) -> None:
        started = time.monotonic()
        source = task.source.local()
        try:
            fault = self.faults.take_task(task.source.spec)
            if fault is not None:
                raise _TaskFailed(fault.message)
            if not source.exists():
                raise _TaskFailed(f"Source file {task.source.spec} does not exist")
            files = _plan_files(source, task.destination.local())
            total = sum(size for _, _, size in files)
            with self.store.lock:
                task.size = total
            if source.is_dir():
                task.destination.local().mkdir(parents=True, exist_ok=True)
            for src, dst, size in files:
                self._copy(transfer, task, src, dst, size, meter)
        except _Stopped:
            return
        except _TaskFailed as failure:
            self._end_task(task, "failed", str(failure), started)
            return
        except OSError as error:
            message = f"Could not transfer {task.source.spec} to {task.destination.spec}: {error}"
            self._end_task(task, "failed", message, started)
            return
        self._end_task(task, "done", "", started)

    def _end_task(self, task: Task, status: str, message: str, started: float) -> None:
        with self.store.lock:
            if task.status != "executing":
                return  # taken off meanwhile (excluded, on hold)
            task.status, task.message = status, message
            task.finished, task.time = now(), time.monotonic() - started
            if status == "done":
                task.transferred = max(task.size, 0)
            self.store.touch()

    def _copy(
        self,
        transfer: Transfer,
        task: Task,
        src: pathlib.Path,
        dst: pathlib.Path,
        size: int,
        meter: _Meter,
    ) -> None:
        stat = src.stat()
        if dst.is_file():
            done = dst.stat()
            if done.st_size == stat.st_size and int(done.st_mtime) == int(stat.st_mtime):
                self._account(transfer, task, size, meter)
                return
        dst.parent.mkdir(parents=True, exist_ok=True)
        part = part_name(dst, task.id)
        offset = part.stat().st_size if part.is_file() else 0
        if offset > size:
            offset = 0
        try:
            with src.open("rb") as reader, part.open("r+b" if offset else "wb") as writer:
                reader.seek(offset)
                writer.seek(offset)
                writer.truncate()
                self._account(transfer, task, offset, meter, moved=False)
                self._pump(transfer, task, reader, writer, meter)
        except _Stopped as stopped:
            if not stopped.keep_part:
                part.unlink(missing_ok=True)
            raise
        os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(part, dst)

    def _pump(
        self, transfer: Transfer, task: Task, reader: BinaryIO, writer: BinaryIO, meter: _Meter
    ) -> None:
        while True:
            self._check(transfer, task)
            chunk = reader.read(self.chunk_size)
            if not chunk:
                return
            writer.write(chunk)
            self._account(transfer, task, len(chunk), meter)
            delay = meter.delay()
            if delay > 0:
                self._wait(transfer, task, delay)

    def _account(
        self, transfer: Transfer, task: Task, nbytes: int, meter: _Meter, moved: bool = True
    ) -> None:
        with self.store.lock:
            task.transferred += nbytes
            if moved:
                meter.add(nbytes)
            if meter.due():
                # Summing over every task is O(tasks): done a few times a second, not per chunk.
                rate = meter.speed()
                remaining = sum(
                    max(t.size, 0) - t.transferred
                    for t in transfer.tasks.values()
                    if t.status in ("pending", "queued", "executing")
                )
                transfer.speed = rate / 1e6
                transfer.etr = _clock(remaining / rate) if rate > 0 else ""
            self.store.touch()

    def _check(self, transfer: Transfer, task: Task) -> None:
        with self.store.lock:
            self._check_locked(transfer, task)

    def _check_locked(self, transfer: Transfer, task: Task) -> None:
        if self._stopping.is_set() or transfer.status == "paused":
            task.status = "queued"
            raise _Stopped(keep_part=True)
        if transfer.status != "running":  # aborted, or forced done
            task.status = "queued"
            raise _Stopped(keep_part=False)
        if task.status != "executing":  # excluded, on hold, or marked done by hand
            raise _Stopped(keep_part=False)

    def _wait(self, transfer: Transfer, task: Task, delay: float) -> None:
        """Hold back for the bandwidth cap, but react at once to pause, abort or stop."""
        deadline = time.monotonic() + delay
        with self.store.lock:
            while True:
                self._check_locked(transfer, task)
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.store.changed.wait(left)


class _TaskFailed(Exception):
    pass


class _Meter:
    """Bytes moved over a sliding window, and how long to wait to honour a cap."""

    def __init__(self, bandwidth: float | None) -> None:
        self.bandwidth = bandwidth
        self.start = time.monotonic()
        self.total = 0
        self.samples: collections.deque[tuple[float, int]] = collections.deque()
        self._reported = 0.0

    def due(self, every: float = 0.1) -> bool:
        """True at most every *every* seconds: when speed and etr are worth recomputing."""
        now_ = time.monotonic()
        if now_ - self._reported >= every:
            self._reported = now_
            return True
        return False

    def add(self, nbytes: int) -> None:
        now_ = time.monotonic()
        self.total += nbytes
        self.samples.append((now_, self.total))
        while len(self.samples) > 2 and now_ - self.samples[0][0] > _SPEED_WINDOW:
            self.samples.popleft()

    def speed(self) -> float:
        """Bytes per second over the window; 0 until two samples far enough apart exist
        (the first chunk goes out at once, a rate from it alone would be absurd)."""
        if len(self.samples) >= 2:
            (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
            if t1 - t0 > 0.05:
                return (b1 - b0) / (t1 - t0)
        return 0.0

    def delay(self) -> float:
        if not self.bandwidth:
            return 0.0
        return self.total / self.bandwidth - (time.monotonic() - self.start)


def _wants_run(transfer: Transfer) -> bool:
    if transfer.status == "init":
        return True
    return transfer.status == "waiting" and transfer.parked != transfer.revision


def _finalise(transfer: Transfer) -> None:
    counted = transfer.counted()
    failed = [t for t in counted if t.status == "failed"]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        transfer.status = "failed"
        transfer.message = (
            f"{len(failed)} of {len(counted)} task(s) failed: task {first.uri}: "
            f"{first.message}{more}"
        )
    elif any(t.status == "onhold" for t in counted):
        transfer.status, transfer.parked = "waiting", transfer.revision
    else:
        transfer.status, transfer.finished, transfer.message = "done", now(), ""
    if transfer.status != "done":
        transfer.finished = NEVER


def _plan_files(source: pathlib.Path, destination: pathlib.Path) -> list[tuple]:
    if source.is_file():
        return [(source, destination, source.stat().st_size)]
    files = []
    for path in sorted(source.rglob("*")):
        if path.is_file() and not _is_part(path):
            files.append((path, destination / path.relative_to(source), path.stat().st_size))
    return files


def _is_part(path: pathlib.Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".part")


def _remove_parts(transfer: Transfer) -> None:
    """Remove what unfinished tasks left behind (their part files, nothing else)."""
    for task in list(transfer.tasks.values()):
        if task.status == "done":
            continue
        target = task.destination.local()
        candidates = [part_name(target, task.id)]
        if target.is_dir():
            candidates += target.rglob(f".*.{task.id[:8]}.part")
        for part in candidates:
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
