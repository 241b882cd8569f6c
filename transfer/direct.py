"""The direct backend: how one file moves between two accessors.

Per file, the fastest safe strategy the two accessors support:

* ``server-copy`` - both ends are one storage (:class:`ServerSideCopy`): no byte passes
  through this process;
* ``small`` - the whole file fits in one chunk: one read, one verified atomic write;
* ``chunked`` - ranged reads (:class:`RangedRead`) into parallel chunk writes at offsets
  of a temporary name (:class:`ChunkedWrite`), then verify and commit atomically. Where
  the source streams (:class:`StreamedRead`) and the destination takes pieces
  (:class:`StreamedWrite`), each chunk flows through in pieces, hashed on the way, so
  the destination writes while the source is still sending; otherwise a chunk is read
  whole, hashed, then written;
* ``stream`` - the fallback for accessors without capabilities: ftrack's ``open()``
  streams, which our accessors also write through a temporary name.

The functions here run on worker threads and do I/O only; the scheduler in
``engine.py`` owns every decision and every journal write. Transient failures are
retried here with exponential backoff and jitter (tenacity); what is still failing
after that, or is permanent, propagates to the scheduler.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..accessors.base import (
    DEFAULT_STREAMS,
    ChunkedWrite,
    RangedRead,
    ServerSideCopy,
    Stat,
    StreamedRead,
    StreamedWrite,
    WrittenChunk,
    supports,
)
from ..accessors.digests import XXH128, DigestKind
from ..accessors.errors import OperationFailedError, TransientAccessorError, VerificationError
from .bandwidth import BandwidthLimiter
from .config import TransferSettings
from .retry import Cancelled, retry

T = TypeVar("T")

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Endpoints:
    """The two accessors of a leg, with the settings and shared limits of the job."""

    source: Any
    destination: Any
    settings: TransferSettings
    limiter: BandwidthLimiter
    cancelled: threading.Event
    memory: threading.BoundedSemaphore | None = None

    @property
    def digest_kind(self) -> DigestKind:
        """The hash of chunk digests: the destination's, which checks them."""
        return getattr(self.destination, "digest_kind", XXH128)

    @property
    def streams(self) -> int:
        """Chunks of one file in flight: the config's ``streams``, else the larger default
        of the two storages that have one (an S3 stream waits a round trip per part, so
        S3 wants more in flight than an SFTP connection, whose window covers several; a
        local disk has none), the source's ``read_streams`` where it has them. Read as
        each chunk starts: SFTP's follow the link it measured when it connected."""
        if self.settings.streams is not None:
            return self.settings.streams
        source = getattr(self.source, "read_streams", None)
        if source is None:
            source = getattr(self.source, "default_streams", DEFAULT_STREAMS)
        wanted = (source, getattr(self.destination, "default_streams", DEFAULT_STREAMS))
        return max((w for w in wanted if w), default=DEFAULT_STREAMS)

    @property
    def streamed(self) -> bool:
        """Whether chunks flow through in pieces rather than whole."""
        return supports(self.source, StreamedRead) and supports(self.destination, StreamedWrite)

    def strategy(self, size: int) -> str:
        src, dst = self.source, self.destination
        if supports(dst, ServerSideCopy) and dst.can_copy_from(src):
            return "server-copy"
        if supports(dst, ChunkedWrite) and size <= self.settings.chunk_size:
            return "small"
        if supports(src, RangedRead) and supports(dst, ChunkedWrite):
            return "chunked"
        return "stream"

    def chunk_size(self, size: int) -> int:
        rules = getattr(self.destination, "chunk_rules", None)
        return (
            rules.chunk_size_for(size, self.settings.chunk_size)
            if rules
            else self.settings.chunk_size
        )

    # ------------------------------------------------------------------ retries

    def retry(self, operation: Callable[[], T]) -> T:
        """Run *operation*, retrying transient accessor failures with backoff."""
        return retry(
            operation,
            self.settings,
            transient=lambda error: isinstance(error, TransientAccessorError),
            interrupt=self.cancelled,
        )

    def _check(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled()

    # ------------------------------------------------------------------ steps

    def stat_source(self, ri: str) -> Stat:
        self._check()
        return self.retry(lambda: self.source.stat(ri))

    def read_small(self, ri: str, planned_size: int) -> bytes | None:
        """The whole file if it fits in one chunk, else None (it is bigger than planned).

        Reading one byte more than a chunk tells both at once, without a stat round trip
        per file, which is what makes sequences of small frames fast.
        """
        self._check()
        limit = self.settings.chunk_size
        if supports(self.source, RangedRead):
            data = self.retry(lambda: self.source.read_range(ri, 0, limit + 1))
        else:
            data = self.retry(lambda: _read_stream(self.source, ri, limit + 1))
        return None if len(data) > limit else data

    def put_small(self, ri: str, data: bytes) -> str:
        self._check()
        self.limiter.acquire(len(data), self.cancelled)
        kind = self.digest_kind
        digest = kind.of(data)
        self.retry(lambda: self.destination.put_small(ri, data, digest, self.settings.verify))
        return kind.fingerprint([digest])

    def server_copy(self, source_ri: str, dest_ri: str, size: int) -> None:
        self._check()
        self.retry(
            lambda: self.destination.copy_from(
                self.source, source_ri, dest_ri, size, self.settings.verify
            )
        )

    def begin(self, dest_ri: str, size: int, chunk_size: int) -> str:
        self._check()
        return self.retry(lambda: self.destination.begin_write(dest_ri, size, chunk_size))

    def chunk(
        self, source_ri: str, dest_ri: str, token: str, offset: int, length: int
    ) -> WrittenChunk:
        """Read one range at the source and write it at the same offset at the destination."""
        self._check()
        if self.streamed:
            return self.retry(
                lambda: self._chunk_in_pieces(source_ri, dest_ri, token, offset, length)
            )
        if self.memory is not None:
            self.memory.acquire()
        try:
            self.limiter.acquire(length, self.cancelled)
            self._check()
            data = self.retry(lambda: self.source.read_range(source_ri, offset, length))
            if len(data) != length:
                raise _changed_size(source_ri, offset, length, len(data))
            digest = self.digest_kind.of(data)
            receipt = self.retry(
                lambda: self.destination.write_chunk(dest_ri, token, offset, data, digest)
            )
            return WrittenChunk(offset, length, digest, receipt)
        finally:
            if self.memory is not None:
                self.memory.release()

    def _chunk_in_pieces(
        self, source_ri: str, dest_ri: str, token: str, offset: int, length: int
    ) -> WrittenChunk:
        """One attempt at a chunk, piece by piece: a failure on either side sends the
        whole chunk again (rewriting its range of the temporary is harmless)."""
        hasher = self.digest_kind.new()
        got = 0
        with (
            self.destination.open_chunk(dest_ri, token, offset, length) as writer,
            contextlib.closing(self.source.read_pieces(source_ri, offset, length)) as pieces,
        ):
            for piece in pieces:
                self._check()
                self.limiter.acquire(len(piece), self.cancelled)
                hasher.update(piece)
                writer.write(piece)
                got += len(piece)
            if got != length:
                raise _changed_size(source_ri, offset, length, got)
            receipt = writer.finish()
        return WrittenChunk(offset, length, hasher.digest(), receipt)

    def commit(self, dest_ri: str, token: str, size: int, chunks: Sequence[WrittenChunk]) -> str:
        self._check()
        self.retry(
            lambda: self.destination.commit_write(
                dest_ri, token, size, chunks, self.settings.verify
            )
        )
        return self.digest_kind.fingerprint([c.digest for c in chunks])

    def discard_stale(self, dest_ri: str, keep: str | None) -> None:
        """Remove temporaries an interrupted attempt left that no journalled token names."""
        if supports(self.destination, ChunkedWrite):
            try:
                removed = self.retry(lambda: self.destination.discard_stale(dest_ri, keep))
            except Cancelled:
                raise
            except Exception as error:
                logger.info(
                    "could not clean up after an interrupted write of %s: %s", dest_ri, error
                )
                return
            if removed:
                logger.info("removed %d stale temporaries of %s", removed, dest_ri)

    def abort(self, dest_ri: str, token: str) -> None:
        # Best effort: a leftover temporary is hidden and harmless.
        with contextlib.suppress(Exception):
            self.destination.abort_write(dest_ri, token)

    def stream(
        self, source_ri: str, dest_ri: str, size: int, on_bytes: Callable[[int], None]
    ) -> None:
        """Fallback copy through ftrack ``Data`` objects, then a size check."""
        self._check()
        block = self.settings.chunk_size
        written = 0
        source = self.source.open(source_ri, "rb")
        try:
            target = self.destination.open(dest_ri, "wb")
            try:
                while True:
                    self._check()
                    data = source.read(block)
                    if not data:
                        break
                    self.limiter.acquire(len(data), self.cancelled)
                    target.write(data)
                    written += len(data)
                    on_bytes(len(data))
            finally:
                target.close()
        finally:
            source.close()
        actual = self.destination.stat(dest_ri).size
        if actual != written:
            raise VerificationError(
                f"{dest_ri!r} has {actual} bytes after the copy, expected {written}",
                "verify",
                dest_ri,
            )


def _changed_size(ri: str, offset: int, length: int, got: int) -> OperationFailedError:
    return OperationFailedError(
        f"source file {ri!r} changed size while being sent "
        f"(expected {length} bytes at offset {offset}, got {got}); send it again",
        "read",
        ri,
    )


def _read_stream(accessor: Any, ri: str, limit: int) -> bytes:
    data = accessor.open(ri, "rb")
    try:
        return data.read(limit)
    finally:
        data.close()


def offsets(size: int, chunk_size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of every chunk of a file; an empty file has one empty chunk."""
    if size == 0:
        return [(0, 0)]
    return [(start, min(chunk_size, size - start)) for start in range(0, size, chunk_size)]
