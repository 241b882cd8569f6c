"""ftrack ``Data`` objects over the chunk capabilities: what ``open()`` returns.

Stock ftrack code (``Location._add_data``) reads a source with ``read(1 MiB)`` and writes
the target with ``write(chunk)`` until ``close()``. These wrappers turn that into bounded
ranged reads and chunked writes:

* :class:`RangeReader` keeps one block in memory and fetches the next one in the
  background while the caller consumes the current one.
* :class:`ChunkStreamWriter` collects a block, hands it to ``write_chunk`` (one block in
  flight while the next fills), and commits on ``close()``. A writer that is dropped
  without ``close()`` (an exception in the caller's copy loop) aborts, so a half-written
  file never appears under its final name.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import ftrack_api.data

from .base import ChunkedWrite, VerifyLevel, WrittenChunk
from .errors import UnsupportedOperationError

log = logging.getLogger(__name__)


class RangeReader(ftrack_api.data.Data):
    """Seekable, read-only stream over ``read_range(offset, length)``."""

    def __init__(
        self,
        read_range: Callable[[int, int], bytes],
        size: int,
        block_size: int,
        resource_identifier: str,
        *,
        readahead: bool = True,
    ) -> None:
        super().__init__()
        self._read_range = read_range
        self._size = size
        self._block_size = max(1, block_size)
        self._resource_identifier = resource_identifier
        self._readahead = readahead
        self._position = 0
        self._buffer = b""
        self._buffer_offset = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._next: tuple[int, concurrent.futures.Future[bytes]] | None = None

    @property
    def size(self) -> int:
        return self._size

    def read(self, limit: int | None = None) -> bytes:
        self._check_open()
        remaining = self._size - self._position
        if limit is not None and limit >= 0:
            remaining = min(remaining, limit)
        pieces = []
        while remaining > 0:
            view = self._view_at(self._position)
            piece = view[:remaining]
            if not piece:
                break  # the storage returned less than its size said: it shrank
            pieces.append(piece)
            self._position += len(piece)
            remaining -= len(piece)
        return b"".join(pieces)

    def write(self, content: Any) -> None:
        raise UnsupportedOperationError(
            f"{self._resource_identifier!r} is open for reading; open it with mode 'wb' to write",
            "write",
            self._resource_identifier,
        )

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> None:
        self._check_open()
        if whence == os.SEEK_CUR:
            offset += self._position
        elif whence == os.SEEK_END:
            offset += self._size
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        self._position = offset

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._buffer = b""
        if self._next is not None:
            self._next[1].cancel()
            self._next = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed stream")

    def _view_at(self, position: int) -> memoryview:
        start = position - self._buffer_offset
        if 0 <= start < len(self._buffer):
            return memoryview(self._buffer)[start:]
        if position >= self._size:
            return memoryview(b"")
        if self._next is not None and self._next[0] == position:
            data = self._next[1].result()
        else:
            if self._next is not None:
                self._next[1].cancel()
            data = self._read_range(position, min(self._block_size, self._size - position))
        self._next = None
        self._buffer, self._buffer_offset = data, position
        following = position + len(data)
        if self._readahead and data and following < self._size:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="readahead"
                )
            length = min(self._block_size, self._size - following)
            self._next = (following, self._executor.submit(self._read_range, following, length))
        return memoryview(self._buffer)


class ChunkStreamWriter(ftrack_api.data.Data):
    """Write-only stream that stores blocks through a :class:`ChunkedWrite` accessor."""

    def __init__(
        self,
        accessor: ChunkedWrite,
        resource_identifier: str,
        block_size: int,
        *,
        verify: VerifyLevel = "size",
        background: bool = True,
    ) -> None:
        super().__init__()
        self._accessor = accessor
        self._resource_identifier = resource_identifier
        self._block_size = max(1, block_size)
        self._verify: VerifyLevel = verify
        self._buffer = bytearray()
        self._offset = 0  # bytes handed to write_chunk so far
        self._token: str | None = None
        self._chunks: list[WrittenChunk] = []
        self._executor = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="writer")
            if background
            else None
        )
        self._in_flight: concurrent.futures.Future[WrittenChunk] | None = None

    def read(self, limit: int | None = None) -> bytes:
        raise UnsupportedOperationError(
            f"{self._resource_identifier!r} is open for writing; open it with mode 'rb' to read",
            "read",
            self._resource_identifier,
        )

    def write(self, content: bytes | bytearray | memoryview | str) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed stream")
        if isinstance(content, str):
            content = content.encode("utf-8")
        view = memoryview(content).cast("B")
        try:
            # Fill the buffer a block at a time, so one huge write costs no more memory
            # (or copying) than many small ones.
            while view:
                room = self._block_size - len(self._buffer)
                self._buffer += view[:room]
                view = view[room:]
                if len(self._buffer) == self._block_size:
                    block, self._buffer = bytes(self._buffer), bytearray()
                    self._emit(block)
        except BaseException:
            # A failed chunk leaves a hole: the stream cannot be finished, so discard it
            # now rather than when (or if) the caller drops it.
            self.abort()
            raise

    def flush(self) -> None:
        """Nothing to do: data becomes durable and visible only on :meth:`close`."""

    def tell(self) -> int:
        return self._offset + len(self._buffer)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> None:
        # Only the no-op seek FileWrapper-style callers make before writing is allowed.
        target = {os.SEEK_SET: offset, os.SEEK_CUR: self.tell() + offset}.get(whence)
        if target != self.tell():
            raise UnsupportedOperationError(
                f"{self._resource_identifier!r} is written sequentially; seeking is not supported",
                "seek",
                self._resource_identifier,
            )

    def close(self) -> None:
        """Write what is buffered, then verify and commit: the file appears whole or not at all."""
        if self.closed:
            return
        try:
            if self._token is None:
                data = bytes(self._buffer)
                self._accessor.put_small(
                    self._resource_identifier,
                    data,
                    self._accessor.digest_kind.of(data),
                    self._verify,
                )
            else:
                if self._buffer:
                    self._emit(bytes(self._buffer))
                    self._buffer.clear()
                self._wait()
                self._accessor.commit_write(
                    self._resource_identifier,
                    self._token,
                    self._offset,
                    self._chunks,
                    self._verify,
                )
        except BaseException:
            self.abort()
            raise
        self.closed = True
        self._shutdown()

    def abort(self) -> None:
        """Discard everything written so far. Safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        self._buffer.clear()
        with contextlib.suppress(BaseException):
            self._wait()
        token, self._token = self._token, None
        self._shutdown()
        if token is not None:
            try:
                self._accessor.abort_write(self._resource_identifier, token)
            except Exception as error:  # the caller's own error matters more
                log.warning(
                    "could not discard the partial write of %r: %s",
                    self._resource_identifier,
                    error,
                )

    def __enter__(self) -> ChunkStreamWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # Reached when a caller dropped the stream without close(): never commit then.
        if not getattr(self, "closed", True):
            with contextlib.suppress(BaseException):
                self.abort()

    def _emit(self, block: bytes) -> None:
        if self._token is None:
            self._token = self._accessor.begin_write(self._resource_identifier, 0, self._block_size)
        offset, self._offset = self._offset, self._offset + len(block)
        self._wait()
        work = (self._accessor, self._resource_identifier, self._token, offset, block)
        if self._executor is None:
            self._chunks.append(_store(*work))
        else:
            # A plain function, not a bound method: the worker must not keep the stream
            # alive, or a dropped stream would not be aborted until its chunk finished.
            self._in_flight = self._executor.submit(_store, *work)

    def _wait(self) -> None:
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            self._chunks.append(future.result())

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def _store(
    accessor: ChunkedWrite, resource_identifier: str, token: str, offset: int, block: bytes
) -> WrittenChunk:
    digest = accessor.digest_kind.of(block)
    receipt = accessor.write_chunk(resource_identifier, token, offset, block, digest)
    return WrittenChunk(offset, len(block), digest, receipt)


def stream_mode(mode: str, resource_identifier: str) -> str:
    """``"r"`` or ``"w"`` for the binary modes ``open()`` supports; raise for the others.

    Appending or updating in place cannot be made atomic on every storage, and text mode
    has no meaning for media files.
    """
    if mode in ("rb", "r"):
        return "r"
    if mode in ("wb", "w"):
        return "w"
    raise UnsupportedOperationError(
        f"Cannot open {resource_identifier!r} with mode {mode!r}; use 'rb' to read or 'wb' "
        "to write a whole file",
        "open",
        resource_identifier,
    )
