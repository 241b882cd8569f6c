"""Local or mounted storage (a studio NAS share, a workstation disk).

Writes never touch the final name before they are complete and verified: chunks go
into a hidden temporary file beside it (``.<name>.<token>.part``) with ``pwrite`` at
their offsets, so several threads can write one file at once, and the commit renames it
into place after an ``fsync``. The root is never created by the accessor: an unmounted
share must fail loudly instead of filling the mount point's parent disk.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import hashlib
import os
import pathlib
import socket
from collections.abc import Iterator, Sequence

import ftrack_api.data

from . import paths, sequences, writes
from .base import (
    Checksum,
    ChunkedWrite,
    ChunkWriter,
    Option,
    RangedRead,
    ServerSideCopy,
    Stat,
    StreamedRead,
    StreamedWrite,
    TransferAccessor,
    VerifyLevel,
    WrittenChunk,
)
from .digests import DigestKind
from .errors import (
    AccessorConfigurationError,
    ParentResourceNotFoundError,
    ResourceInvalidError,
    ResourceNotFoundError,
    UnsafeResourceIdentifierError,
    VerificationError,
    from_os_error,
    named,
)
from .streams import ChunkStreamWriter, stream_mode
from .writeback import start_writeback

_MiB = 1024 * 1024
# Close-on-exec where there is one; binary mode where there is a text mode (Windows).
_O_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
# Reads for verification and copies; large enough that syscall overhead vanishes,
# small enough that several at once stay cheap.
_IO_BLOCK = 8 * _MiB
# Writes go to the page cache at most this much at a time (OpenSSH's sftp-server writes at
# most 255 KiB). A larger write lets Linux back it with large page-cache folios, and on
# virtual machines that hand free memory back to the host (free page reporting, common in
# clouds) those are faulted in again by the hypervisor, while the other writers of the
# file spin on its lock. A 1 GiB SFTP download on a 2-core VM took 3.8-4.1 s with 8 MiB
# writes, 2.7-3.5 s with 1 MiB and 2.3 s with 256 KiB; an S3 download 3.1-3.9 s and 1.9 s.
_WRITE_PIECE = 256 * 1024
# Pieces of a streamed read: a few syscalls per MiB, and the buffer stays in the cache.
_READ_PIECE = 1 * _MiB
#: The receipt of a chunk that :meth:`DiskAccessor.write_chunk` read back and found equal.
READ_BACK = "read-back"


class DiskAccessor(
    TransferAccessor,
    RangedRead,
    ChunkedWrite,
    StreamedRead,
    StreamedWrite,
    ServerSideCopy,
    Checksum,
):
    """Files under a local directory *root* (a per-OS table in the sites config)."""

    name = "disk"
    options = (
        Option(
            "root",
            kind="roots",
            required=True,
            help="Directory holding the location's files, per operating system.",
        ),
    )

    #: Block size of the streams :meth:`open` returns.
    stream_block_size = 8 * _MiB
    #: Threads re-reading chunks to verify a commit (hashing releases the GIL).
    verify_threads = 4
    #: No round trip to cover: the storage at the other end says how many chunks to
    #: keep in flight (disk to disk, the default).
    default_streams = None

    def __init__(self, root: str) -> None:
        super().__init__()
        if not isinstance(root, str) or not root:
            raise AccessorConfigurationError(
                "disk accessor: option 'root' must be a directory path"
            )
        # Nothing here touches the file system: a share that is down must not stall
        # building the accessor (an ftrack session builds every location's).
        self.root = os.path.abspath(os.path.expanduser(os.path.expandvars(root)))
        self._real_root: str | None = None

    # -- identity ----------------------------------------------------------------------

    def storage_key(self) -> str:
        return f"disk:{socket.gethostname()}"

    def describe(self) -> str:
        return f"disk {self.root}"

    def check(self) -> None:
        self._require_root("check")
        self.list("")

    # -- paths -------------------------------------------------------------------------

    def _path(self, resource_identifier: str) -> str:
        """Local path of *resource_identifier*, refused if it leaves the root."""
        relative = paths.safe_relative(resource_identifier)
        if not relative:
            return self.root
        path = os.path.join(self.root, *relative.split("/"))
        # Symbolic links are resolved so a link inside the root cannot lead out of it.
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise UnsafeResourceIdentifierError(
                resource_identifier, "resolves outside the location root through a symbolic link"
            )
        return path

    def get_filesystem_path(self, resource_identifier: str) -> str:
        return self._path(resource_identifier)

    def get_url(self, resource_identifier: str) -> str:
        return pathlib.Path(self._path(resource_identifier)).as_uri()

    @contextlib.contextmanager
    def _errors(self, operation: str, resource_identifier: str) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            raise from_os_error(error, operation, resource_identifier, self.describe()) from error

    def _require_root(self, operation: str) -> None:
        if not os.path.isdir(self.root):
            raise AccessorConfigurationError(
                f"Cannot {operation} on disk {self.root}: the root directory does not exist "
                "(is the share mounted?); mount it or fix the location's root"
            )

    # -- ftrack Accessor ---------------------------------------------------------------

    def list(self, resource_identifier: str) -> list[str]:
        path = self._path(resource_identifier)
        relative = paths.safe_relative(resource_identifier)
        with self._errors("list", resource_identifier), os.scandir(path) as entries:
            names = sorted(e.name for e in entries if not writes.is_temporary(e.name))
        return [f"{relative}/{n}" if relative else n for n in names]

    def exists(self, resource_identifier: str) -> bool:
        return os.path.exists(self._path(resource_identifier))

    def is_file(self, resource_identifier: str) -> bool:
        return os.path.isfile(self._path(resource_identifier))

    def is_container(self, resource_identifier: str) -> bool:
        return os.path.isdir(self._path(resource_identifier))

    def is_sequence(self, resource_identifier: str) -> bool:
        found = sequences.split(paths.safe_relative(resource_identifier))
        if found is None:
            return False
        container, pattern = found
        try:
            return any(pattern.fullmatch(name) for name in os.listdir(self._path(container)))
        except OSError:
            return False

    def open(self, resource_identifier: str, mode: str = "rb") -> ftrack_api.data.Data:
        path = self._path(resource_identifier)
        if stream_mode(mode, resource_identifier) == "w":
            if os.path.isdir(path):
                raise ResourceInvalidError(
                    f"Cannot write {named(resource_identifier)} on {self.describe()}: it is a container",
                    "open",
                    resource_identifier,
                )
            # Size only: a checksum here means reading the whole file back.
            return ChunkStreamWriter(self, resource_identifier, self.stream_block_size)
        with self._errors("open", resource_identifier):
            return ftrack_api.data.File(path, "rb")

    def remove(self, resource_identifier: str) -> None:
        if not paths.safe_relative(resource_identifier):
            raise ResourceInvalidError(
                f"Refusing to remove the root of {self.describe()}", "remove", resource_identifier
            )
        path = self._path(resource_identifier)
        with self._errors("remove", resource_identifier):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.remove(path)

    def make_container(self, resource_identifier: str, recursive: bool = True) -> None:
        path = self._path(resource_identifier)
        self._require_root("make a container")
        if path == self.root:
            return
        with self._errors("make container", resource_identifier):
            if recursive:
                os.makedirs(path, exist_ok=True)
                return
            try:
                os.mkdir(path)
            except FileNotFoundError:
                raise ParentResourceNotFoundError(
                    f"Cannot make container {named(resource_identifier)} on {self.describe()}: "
                    "its parent does not exist (make it first, or make containers recursively)",
                    "make container",
                    resource_identifier,
                ) from None
            except FileExistsError:
                if not os.path.isdir(path):
                    raise

    # -- TransferAccessor ---------------------------------------------------------------

    def stat(self, resource_identifier: str) -> Stat:
        path = self._path(resource_identifier)
        with self._errors("stat", resource_identifier):
            st = os.stat(path)
        if not os.path.isfile(path):
            raise ResourceInvalidError(
                f"Cannot stat {named(resource_identifier)} on {self.describe()}: not a file",
                "stat",
                resource_identifier,
            )
        return Stat(st.st_size, st.st_mtime)

    # -- RangedRead ----------------------------------------------------------------------

    def read_range(self, resource_identifier: str, offset: int, length: int) -> bytes:
        path = self._path(resource_identifier)
        with self._errors("read", resource_identifier):
            fd = os.open(path, os.O_RDONLY | _O_FLAGS)
            try:
                return _pread_exact(fd, offset, length)
            finally:
                os.close(fd)

    # -- StreamedRead --------------------------------------------------------------------

    def read_pieces(
        self, resource_identifier: str, offset: int, length: int
    ) -> Iterator[memoryview]:
        path = self._path(resource_identifier)
        with self._errors("read", resource_identifier):
            fd = os.open(path, os.O_RDONLY | _O_FLAGS)
        try:
            view = memoryview(bytearray(max(1, min(_READ_PIECE, length))))
            position, end = offset, offset + length
            while position < end:
                with self._errors("read", resource_identifier):
                    got = _pread_into(fd, view[: min(len(view), end - position)], position)
                if not got:
                    return
                yield view[:got]
                position += got
        finally:
            os.close(fd)

    # -- StreamedWrite -------------------------------------------------------------------

    @contextlib.contextmanager
    def open_chunk(
        self, resource_identifier: str, token: str, offset: int, length: int
    ) -> Iterator[ChunkWriter]:
        temporary, _ = self._temporary(resource_identifier, token)
        fd = self._open_temporary(temporary, resource_identifier, token, os.O_RDWR)
        try:
            yield _ChunkWriter(self, fd, resource_identifier, offset, length)
        finally:
            os.close(fd)

    # -- ChunkedWrite --------------------------------------------------------------------

    def _temporary(self, resource_identifier: str, token: str) -> tuple[str, str]:
        """``(temporary path, final path)`` of a write."""
        writes.check_token(token, resource_identifier)
        final = self._path(resource_identifier)
        if final == self.root:
            raise ResourceInvalidError(
                f"Cannot write the root of {self.describe()} as a file",
                "write",
                resource_identifier,
            )
        directory, name = os.path.split(final)
        return os.path.join(directory, writes.temporary_name(name, token)), final

    def begin_write(self, resource_identifier: str, size: int, chunk_size: int) -> str:
        token = writes.new_token()
        temporary, final = self._temporary(resource_identifier, token)
        if os.path.isdir(final):
            raise ResourceInvalidError(
                f"Cannot write {named(resource_identifier)} on {self.describe()}: it is a container",
                "write",
                resource_identifier,
            )
        self.make_container(paths.parent(resource_identifier))
        with self._errors("write", resource_identifier):
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_FLAGS, 0o666))
        return token

    def write_chunk(
        self,
        resource_identifier: str,
        token: str,
        offset: int,
        data: bytes | memoryview,
        digest: bytes,
    ) -> str | None:
        temporary, _ = self._temporary(resource_identifier, token)
        fd = self._open_temporary(temporary, resource_identifier, token, os.O_RDWR)
        try:
            writer = _ChunkWriter(self, fd, resource_identifier, offset, len(data))
            writer.write(data)
            return writer.finish()
        finally:
            os.close(fd)

    def commit_write(
        self,
        resource_identifier: str,
        token: str,
        size: int,
        chunks: Sequence[WrittenChunk],
        verify: VerifyLevel = "checksum",
    ) -> None:
        temporary, final = self._temporary(resource_identifier, token)
        if not os.path.exists(temporary) and _has_size(final, size):
            return  # committed already: a retried commit after a lost reply
        fd = self._open_temporary(temporary, resource_identifier, token, os.O_RDONLY)
        try:
            try:
                ordered = writes.check_coverage(resource_identifier, size, chunks, self.describe())
                with self._errors("commit", resource_identifier):
                    found = os.fstat(fd).st_size
                if found != size:
                    raise VerificationError(
                        f"Cannot commit {named(resource_identifier)} on {self.describe()}: "
                        f"{found} bytes written, {size} expected",
                        "commit_write",
                        resource_identifier,
                    )
                if verify in ("checksum", "full"):
                    # "full" re-reads everything; "checksum" only what was not verified on
                    # arrival (chunks journalled by an older version).
                    unchecked = [c for c in ordered if verify == "full" or c.receipt != READ_BACK]
                    self._verify_chunks(fd, unchecked, resource_identifier)
                with self._errors("commit", resource_identifier):
                    os.fsync(fd)
            finally:
                os.close(fd)
        except VerificationError:
            self.abort_write(resource_identifier, token)
            raise
        with self._errors("commit", resource_identifier):
            os.replace(temporary, final)
        _fsync_directory(os.path.dirname(final))

    def abort_write(self, resource_identifier: str, token: str) -> None:
        temporary, _ = self._temporary(resource_identifier, token)
        with self._errors("abort", resource_identifier), contextlib.suppress(FileNotFoundError):
            os.remove(temporary)

    def discard_stale(self, resource_identifier: str, keep: str | None = None) -> int:
        final = self._path(resource_identifier)
        directory, name = os.path.split(final)
        try:
            entries = os.listdir(directory)
        except FileNotFoundError:
            return 0
        stale = writes.stale_temporaries(entries, name, keep)
        for entry in stale:
            with (
                self._errors("clean up", resource_identifier),
                contextlib.suppress(FileNotFoundError),
            ):
                os.remove(os.path.join(directory, entry))
        return len(stale)

    def _open_temporary(
        self, temporary: str, resource_identifier: str, token: str, flags: int
    ) -> int:
        try:
            return os.open(temporary, flags | _O_FLAGS)
        except FileNotFoundError:
            raise ResourceNotFoundError(
                f"No write of {resource_identifier!r} with token {token} in progress on "
                f"{self.describe()} (aborted or committed already); begin the write again",
                "write",
                resource_identifier,
            ) from None
        except OSError as error:
            raise from_os_error(error, "write", resource_identifier, self.describe()) from error

    def _verify_chunks(
        self, fd: int, ordered: Sequence[WrittenChunk], resource_identifier: str
    ) -> None:
        """Re-read every chunk with the engine's boundaries and compare its digest."""
        if not ordered:
            return  # at "checksum", every chunk was read back on arrival: no pool needed

        def digest(chunk: WrittenChunk) -> bytes:
            with self._errors("verify", resource_identifier):
                return _hash_range(self.digest_kind, fd, chunk.offset, chunk.length)

        # Without pread (Windows) the descriptor's position is shared: one reader only.
        threads = self.verify_threads if hasattr(os, "pread") else 1
        workers = max(1, min(threads, len(ordered)))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for chunk, found in zip(ordered, pool.map(digest, ordered), strict=True):
                if found != chunk.digest:
                    raise VerificationError(
                        f"Cannot commit {named(resource_identifier)} on {self.describe()}: the chunk "
                        f"at byte {chunk.offset} ({chunk.length} bytes) differs from the source "
                        f"({self.digest_kind.name} mismatch)",
                        "commit_write",
                        resource_identifier,
                    )

    # -- ServerSideCopy ------------------------------------------------------------------

    def can_copy_from(self, source: TransferAccessor) -> bool:
        other = local_disk(source)
        return other is not None and other.storage_key() == self.storage_key()

    def copy_from(
        self,
        source: TransferAccessor,
        source_identifier: str,
        resource_identifier: str,
        size: int,
        verify: VerifyLevel = "checksum",
    ) -> None:
        other = local_disk(source)
        if other is None:
            raise ResourceInvalidError(
                f"Cannot copy to {self.describe()} from {source.describe()}: not a local disk",
                "copy",
                resource_identifier,
            )
        source_path = other._path(source_identifier)
        token = self.begin_write(resource_identifier, size, max(size, 1))
        temporary, final = self._temporary(resource_identifier, token)
        try:
            with self._errors("copy", source_identifier):
                source_fd = os.open(source_path, os.O_RDONLY | _O_FLAGS)
            try:
                with self._errors("copy", resource_identifier):
                    target_fd = os.open(temporary, os.O_RDWR | _O_FLAGS)
                try:
                    with self._errors("copy", resource_identifier):
                        _copy_fd(source_fd, target_fd, size)
                        found = os.fstat(target_fd).st_size
                    if found != size or os.fstat(source_fd).st_size != size:
                        raise VerificationError(
                            f"Cannot copy {source_identifier!r} to {resource_identifier!r} on "
                            f"{self.describe()}: {found} bytes copied, {size} expected",
                            "copy",
                            resource_identifier,
                        )
                    if verify in ("checksum", "full"):
                        with self._errors("verify", resource_identifier):
                            same = _same_content(self.digest_kind, source_fd, target_fd, size)
                        if not same:
                            raise VerificationError(
                                f"Copy of {source_identifier!r} to {resource_identifier!r} on "
                                f"{self.describe()} differs from its source "
                                f"({self.digest_kind.name} mismatch)",
                                "copy",
                                resource_identifier,
                            )
                    with self._errors("copy", resource_identifier):
                        os.fsync(target_fd)
                finally:
                    os.close(target_fd)
            finally:
                os.close(source_fd)
            with self._errors("copy", resource_identifier):
                os.replace(temporary, final)
        except BaseException:
            self.abort_write(resource_identifier, token)
            raise
        _fsync_directory(os.path.dirname(final))

    # -- Checksum ------------------------------------------------------------------------

    def checksum(self, resource_identifier: str) -> str | None:
        path = self._path(resource_identifier)
        with self._errors("checksum", resource_identifier), open(path, "rb") as handle:
            return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def local_disk(accessor: object) -> DiskAccessor | None:
    """The :class:`DiskAccessor` through which *accessor* reaches local files, if any."""
    if isinstance(accessor, DiskAccessor):
        return accessor
    local = getattr(accessor, "local_disk", None)
    return local if isinstance(local, DiskAccessor) else None


def _pread_exact(fd: int, offset: int, length: int) -> bytes:
    data = _pread(fd, length, offset)
    if len(data) == length or not data:
        return data
    pieces = [data]
    got = len(data)
    while got < length:
        more = _pread(fd, length - got, offset + got)
        if not more:
            break
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


def _pread(fd: int, length: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, length, offset)
    # Each caller opened its own descriptor, so seek-then-read cannot interleave.
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, length)


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of *data* at *offset*, at most :data:`_WRITE_PIECE` bytes per call."""
    view = memoryview(data).cast("B")
    while view:
        written = _pwrite(fd, view[:_WRITE_PIECE], offset)
        view, offset = view[written:], offset + written


def _pwrite(fd: int, data: memoryview, offset: int) -> int:
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.write(fd, data)


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Read into *view* at *offset*; how many bytes (``preadv`` fills the caller's buffer,
    where ``pread`` would allocate one per call)."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = _pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


class _ChunkWriter(ChunkWriter):
    """Writes one chunk of a temporary file, each piece read back as soon as written.

    Verified on arrival, while the rest is still on the wire, rather than re-read and
    re-hashed at commit: comparing with the bytes still in memory costs a fraction of a
    second hash pass.
    """

    def __init__(
        self, accessor: DiskAccessor, fd: int, resource_identifier: str, offset: int, length: int
    ) -> None:
        self.accessor = accessor
        self.fd = fd
        self.resource_identifier = resource_identifier
        self.offset = self.position = offset
        self.length = length
        self.back = bytearray(_WRITE_PIECE)

    def write(self, piece: bytes | bytearray | memoryview) -> None:
        view = memoryview(piece).cast("B")
        with self.accessor._errors("write", self.resource_identifier):
            while view:
                written = _pwrite(self.fd, view[:_WRITE_PIECE], self.position)
                if not self._reads_back(view[:written]):
                    raise VerificationError(
                        f"Cannot write {named(self.resource_identifier)} on "
                        f"{self.accessor.describe()}: the chunk at byte {self.offset} "
                        f"({self.length} bytes) reads back different from what was written; "
                        "check the disk and file system",
                        "write_chunk",
                        self.resource_identifier,
                    )
                view, self.position = view[written:], self.position + written

    def _reads_back(self, written: memoryview) -> bool:
        back = self.back if len(written) == len(self.back) else bytearray(len(written))
        with memoryview(back) as into:
            got = _pread_into(self.fd, into, self.position)
        # bytearray == memoryview compares with memcmp; two memoryviews byte by byte.
        return got == len(written) and back == written

    def finish(self) -> str | None:
        # So the commit's fsync, which decides durability, finds little left to write.
        start_writeback(self.fd, self.offset, self.position - self.offset)
        return READ_BACK


def _hash_range(kind: DigestKind, fd: int, offset: int, length: int) -> bytes:
    digest = kind.new()
    end = offset + length
    while offset < end:
        data = _pread(fd, min(_IO_BLOCK, end - offset), offset)
        if not data:
            break
        digest.update(data)
        offset += len(data)
    return digest.digest()


def _same_content(kind: DigestKind, first_fd: int, second_fd: int, size: int) -> bool:
    """Hash two files side by side: hashing and pread release the GIL, so reading and
    hashing both copies at once takes about half the time of one after the other."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(_hash_range, kind, first_fd, 0, size)
        second = pool.submit(_hash_range, kind, second_fd, 0, size)
        return first.result() == second.result()


def _copy_fd(source_fd: int, target_fd: int, size: int) -> None:
    """Copy *size* bytes inside the kernel where it can (reflinks on btrfs/XFS)."""
    offset = 0
    copy_file_range = getattr(os, "copy_file_range", None)
    if copy_file_range is not None:
        try:
            while offset < size:
                copied = copy_file_range(source_fd, target_fd, size - offset, offset, offset)
                if copied == 0:
                    break
                offset += copied
            return
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    sendfile = getattr(os, "sendfile", None)
    if sendfile is not None:
        try:
            os.lseek(target_fd, offset, os.SEEK_SET)
            while offset < size:
                sent = sendfile(target_fd, source_fd, offset, min(size - offset, 1 << 30))
                if sent == 0:
                    break
                offset += sent
            return
        except OSError as error:
            if error.errno not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    while offset < size:
        data = _pread(source_fd, min(_IO_BLOCK, size - offset), offset)
        if not data:
            break
        _write_all(target_fd, data, offset)
        offset += len(data)


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; some file systems (and Windows) cannot, which is
    # not worth failing a finished transfer for.
    try:
        fd = os.open(directory, os.O_RDONLY | _O_FLAGS)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _has_size(path: str, size: int) -> bool:
    try:
        return os.stat(path).st_size == size
    except OSError:
        return False
