"""The scheduler: many files, each moved by the fastest strategy, on a bounded pool.

A single loop on the caller's thread hands I/O steps to worker threads and reacts to
their results (the s3transfer model: a thin coordinator, tasks, futures). Workers only
do I/O (``direct.Endpoints``); every decision happens in the loop, and everything the
caller must persist or report goes through a :class:`SchedulerListener`, so the loop has
no knowledge of journals, ftrack or progress bars.

Per file: ``small`` (one read, one atomic verified write), ``server-copy``, ``stream``,
or ``chunked`` - begin a write, up to ``streams`` chunks in flight, commit when all have
landed. At most ``files_in_flight`` files are open at once, so a 2,000-frame sequence
keeps many small files moving while a single large file gets parallel streams.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from ..accessors.base import WrittenChunk
from ..accessors.errors import (
    AccessorConfigurationError,
    TransientAccessorError,
    VerificationError,
)
from .direct import Endpoints, offsets
from .retry import Cancelled

logger = logging.getLogger(__name__)

#: A file whose verification fails is sent again from scratch this many times.
VERIFY_RESTARTS = 2


@dataclasses.dataclass(eq=False)
class FileTask:
    """One file to move. ``key`` is the owner's handle (a journal row id, a path...).

    ``token``/``chunk_size``/``source_mtime`` come from an interrupted attempt when
    resuming a chunked write.
    """

    key: Any
    endpoints: Endpoints
    source_ri: str
    dest_ri: str
    size: int
    token: str | None = None
    chunk_size: int | None = None
    source_mtime: float | None = None
    strategy: str = ""
    restarts: int = 0
    failed: bool = False
    stale: bool = False
    #: An earlier attempt may have left temporaries no token names: remove them first.
    tidy: bool = False
    todo: collections.deque = dataclasses.field(default_factory=collections.deque)
    done: dict[int, WrittenChunk] = dataclasses.field(default_factory=dict)
    inflight: int = 0


class SchedulerListener(Protocol):
    """What the scheduler tells its owner; all calls happen on the scheduler's thread
    except :meth:`on_stream_bytes`."""

    def on_prepared(self, task: FileTask) -> dict[int, WrittenChunk]:
        """A chunked write began (or resumes): persist ``token``, ``chunk_size``, ``size``
        and ``source_mtime``; return the chunks an earlier attempt already wrote."""

    def on_chunk(self, task: FileTask, chunk: WrittenChunk) -> None:
        """A chunk is written at the destination (persist it before anything else)."""

    def on_stream_bytes(self, nbytes: int) -> None:
        """Bytes moved inside a file sent as a whole (called from a worker thread)."""

    def on_done(self, task: FileTask, digest: str | None, nbytes: int) -> None:
        """The file landed and verified; *nbytes* of it were not reported as chunks."""

    def on_failed(self, task: FileTask, error: BaseException) -> None:
        """The file failed for good (retries exhausted, or a permanent error)."""

    def on_restart(self, task: FileTask) -> None:
        """Chunks of the file are void (verification failed, or the source changed)."""

    def on_tick(self) -> None:
        """About once a second: heartbeats, cancellation checks, batched flushes."""


class Scheduler:
    """Moves :class:`FileTask` files; :meth:`run` returns when all are done or failed,
    or when *interrupt* is set (then running chunks finish and are reported)."""

    def __init__(
        self,
        listener: SchedulerListener,
        *,
        files_in_flight: int,
        streams: int,
        interrupt: threading.Event,
        name: str = "transfer",
    ) -> None:
        self.listener = listener
        self.files_in_flight = max(1, files_in_flight)
        self.streams = max(1, streams)
        self.workers = max(2, self.files_in_flight + self.streams)
        self.interrupt = interrupt
        self.name = name
        self.active: dict[int, FileTask] = {}
        self._futures: dict[Future, tuple[str, FileTask]] = {}
        #: Legs (by their Endpoints) where a file failed on the storage rather than on
        #: itself: retries used up on a transient failure (the storage is down) or a
        #: configuration error (no such root or bucket, credentials refused). Every other
        #: file would fail the same way, so those not started yet stay pending, for a
        #: retry of the job once the storage is back or fixed.
        self.given_up: set[int] = set()
        self.not_started = 0

    def run(self, tasks: Iterable[FileTask], drivers: Sequence[Any] = ()) -> None:
        """Drive *tasks* (and the *drivers* of other backends, polled each turn)."""
        queue = collections.deque(tasks)
        last_tick = 0.0
        for driver in drivers:
            driver.start()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=self.name) as pool:
            self._pool = pool
            while (
                queue or self.active or any(d.pending() for d in drivers)
            ) and not self.interrupt.is_set():
                while queue and len(self.active) < self.files_in_flight:
                    task = queue.popleft()
                    if id(task.endpoints) in self.given_up:
                        self.not_started += 1
                    else:
                        self._start(task)
                if self._futures:
                    finished, _ = wait(
                        list(self._futures), timeout=0.25, return_when=FIRST_COMPLETED
                    )
                else:
                    finished = set()
                    self.interrupt.wait(0.25)
                for future in finished:
                    kind, task = self._futures.pop(future)
                    self._handle(kind, task, future, queue)
                for driver in drivers:
                    driver.poll()
                if time.monotonic() - last_tick >= 1.0:
                    last_tick = time.monotonic()
                    self.listener.on_tick()
            # Stopping: running tasks end within one chunk each; report what completed
            # (chunks, and whole files that landed meanwhile), so a resume re-sends as
            # little as possible.
            for future in list(self._futures):
                kind, task = self._futures.pop(future)
                try:
                    result = future.result()
                except Exception:  # noqa: S112 - stopping; the file resumes later
                    continue
                if task.failed:
                    continue
                if kind == "chunk":
                    self.listener.on_chunk(task, result)
                else:
                    self._landed(kind, task, result)

    # ------------------------------------------------------------------ loop

    def _submit(self, kind: str, task: FileTask, fn: Callable[..., Any], *args: Any) -> None:
        self._futures[self._pool.submit(fn, *args)] = (kind, task)

    def _start(self, task: FileTask) -> None:
        self.active[id(task)] = task
        ep = task.endpoints
        task.strategy = "chunked" if task.token else ep.strategy(task.size)
        if task.strategy == "small":
            self._submit("small", task, self._small, task)
        elif task.strategy == "server-copy":
            self._submit("done", task, ep.server_copy, task.source_ri, task.dest_ri, task.size)
        elif task.strategy == "stream":
            self._submit(
                "done",
                task,
                ep.stream,
                task.source_ri,
                task.dest_ri,
                task.size,
                self.listener.on_stream_bytes,
            )
        else:
            self._submit("prepared", task, self._prepare, task)

    def _feed(self, task: FileTask) -> None:
        while task.todo and task.inflight < task.endpoints.streams and not task.failed:
            offset, length = task.todo.popleft()
            task.inflight += 1
            self._submit(
                "chunk",
                task,
                task.endpoints.chunk,
                task.source_ri,
                task.dest_ri,
                task.token,
                offset,
                length,
            )
        if not task.todo and task.inflight == 0 and not task.failed:
            chunks = [task.done[o] for o in sorted(task.done)]
            self._submit(
                "committed",
                task,
                task.endpoints.commit,
                task.dest_ri,
                task.token,
                task.size,
                chunks,
            )

    def _handle(self, kind: str, task: FileTask, future: Future, queue: collections.deque) -> None:
        if kind == "chunk":
            task.inflight -= 1
        try:
            result = future.result()
        except Cancelled:
            return
        except VerificationError as error:
            self._verification_failed(task, error, queue)
            return
        except Exception as error:
            self._fail(task, error)
            return
        if task.failed:
            return
        if self._landed(kind, task, result):
            return
        if kind == "small":  # bigger than planned: send it in chunks
            task.strategy = "chunked"
            self._submit("prepared", task, self._prepare, task)
        elif kind == "prepared":
            if task.stale:
                task.stale = False
                self.listener.on_restart(task)
            task.done = self.listener.on_prepared(task)
            task.todo = collections.deque(
                (o, n)
                for o, n in offsets(task.size, task.chunk_size or task.size or 1)
                if o not in task.done
            )
            self._feed(task)
        elif kind == "chunk":
            task.done[result.offset] = result
            self.listener.on_chunk(task, result)
            self._feed(task)

    def _landed(self, kind: str, task: FileTask, result: Any) -> bool:
        """Report the file of *task* done if the step *kind* that returned *result*
        completed it; whether it did."""
        if kind == "committed":  # chunked: its bytes were counted chunk by chunk
            self._done(task, result, 0)
        elif kind == "small" and result is not None:
            self._done(task, result, task.size)
        elif kind == "done":  # server-side copy or stream: its bytes count at the end
            self._done(task, None, task.size)
        else:
            return False
        return True

    def _done(self, task: FileTask, digest: str | None, nbytes: int) -> None:
        self.active.pop(id(task), None)
        self.listener.on_done(task, digest, nbytes)

    def _fail(self, task: FileTask, error: BaseException) -> None:
        if task.failed:
            return
        task.failed = True
        self.active.pop(id(task), None)
        if isinstance(error, TransientAccessorError | AccessorConfigurationError):
            self.given_up.add(id(task.endpoints))
        if task.token and not isinstance(error, TransientAccessorError):
            # A permanent failure will not be resumed: remove the temporary now. A
            # transient one keeps its chunks so a retry of the job continues it.
            task.endpoints.abort(task.dest_ri, task.token)
            self.listener.on_restart(task)
        self.listener.on_failed(task, error)

    def _verification_failed(
        self, task: FileTask, error: VerificationError, queue: collections.deque
    ) -> None:
        if task.token:
            task.endpoints.abort(task.dest_ri, task.token)
        if task.restarts >= VERIFY_RESTARTS:
            task.token = None
            self.listener.on_restart(task)
            self._fail(task, error)
            return
        logger.warning("%s failed verification, sending it again: %s", task.dest_ri, error)
        self.active.pop(id(task), None)
        self.listener.on_restart(task)
        task.failed = True  # chunks of this attempt still in flight are ignored
        queue.appendleft(
            dataclasses.replace(
                task, token=None, chunk_size=None, restarts=task.restarts + 1, failed=False,
                strategy="", todo=collections.deque(), done={}, inflight=0,
            )
        )  # fmt: skip

    # ------------------------------------------------------------------ worker steps

    @staticmethod
    def _small(task: FileTask) -> str | None:
        ep = task.endpoints
        if task.tidy:
            ep.discard_stale(task.dest_ri, None)
        data = ep.read_small(task.source_ri, task.size)
        if data is None:
            return None
        task.size = len(data)
        return ep.put_small(task.dest_ri, data)

    @staticmethod
    def _prepare(task: FileTask) -> None:
        ep = task.endpoints
        if task.tidy:
            ep.discard_stale(task.dest_ri, task.token)
        stat = ep.stat_source(task.source_ri)
        if task.token and (
            stat.size != task.size
            or (task.source_mtime and stat.mtime and stat.mtime != task.source_mtime)
        ):
            # The source changed since the interrupted attempt: its chunks are stale.
            ep.abort(task.dest_ri, task.token)
            task.token = None
            task.chunk_size = None
            task.stale = True
        task.size, task.source_mtime = stat.size, stat.mtime
        if not (task.token and task.chunk_size):
            task.chunk_size = ep.chunk_size(stat.size)
            task.token = ep.begin(task.dest_ri, stat.size, task.chunk_size)


def copy_files(
    pairs: Iterable[tuple[str, str]],
    endpoints: Endpoints,
    *,
    sizes: dict[str, int] | None = None,
) -> dict[str, str | None]:
    """Move files between two accessors without a journal or ftrack; return digests by
    destination identifier. Raises the first failure. For scripts, tests and benchmarks."""

    class _Collect:
        def __init__(self) -> None:
            self.digests: dict[str, str | None] = {}
            self.errors: list[BaseException] = []

        def on_prepared(self, task: FileTask) -> dict[int, WrittenChunk]:
            return {}

        def on_chunk(self, task: FileTask, chunk: WrittenChunk) -> None:
            pass

        def on_stream_bytes(self, nbytes: int) -> None:
            pass

        def on_done(self, task: FileTask, digest: str | None, nbytes: int) -> None:
            self.digests[task.dest_ri] = digest

        def on_failed(self, task: FileTask, error: BaseException) -> None:
            self.errors.append(error)

        def on_restart(self, task: FileTask) -> None:
            pass

        def on_tick(self) -> None:
            pass

    listener = _Collect()
    tasks = [
        FileTask(
            key=dst,
            endpoints=endpoints,
            source_ri=src,
            dest_ri=dst,
            size=(sizes or {}).get(src, -1),
        )
        for src, dst in pairs
    ]
    for task in tasks:
        if task.size < 0:
            task.size = endpoints.source.stat(task.source_ri).size
    settings = endpoints.settings
    Scheduler(
        listener,
        files_in_flight=settings.files_in_flight,
        streams=endpoints.streams,
        interrupt=endpoints.cancelled,
    ).run(tasks)
    if listener.errors:
        raise listener.errors[0]
    return listener.digests
