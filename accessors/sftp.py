"""SFTP storage (a vendor's server, a site's gateway), through OpenSSH's ssh or paramiko.

SFTP protocol only: no shell and no remote command is ever run, so a chroot'ed
``internal-sftp`` account is enough and no path is ever parsed by a shell. Host keys are
checked against known_hosts (never accepted blindly). Connections are opened on first
use, pooled for parallel chunks, and re-opened when they drop; transient failures are
retried with exponential backoff and jitter before :class:`TransientAccessorError`.

Chunked writes go to ``.<name>.<token>.part`` in the target directory and are renamed
into place with ``posix-rename@openssh.com``, which replaces the final name atomically.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import functools
import getpass
import logging
import os
import posixpath
import socket
import stat as stat_module
import urllib.parse
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import ftrack_api.data
import ftrack_api.exception
import paramiko

from . import paths, sequences, sftp_io, writes
from .base import (
    ChunkedWrite,
    ChunkWriter,
    Option,
    RangedRead,
    Stat,
    StreamedRead,
    StreamedWrite,
    TransferAccessor,
    VerifyLevel,
    WrittenChunk,
)
from .errors import (
    AccessorConfigurationError,
    ContainerNotEmptyError,
    ParentResourceNotFoundError,
    ResourceInvalidError,
    ResourceNotFoundError,
    TransientAccessorError,
    UnsupportedOperationError,
    VerificationError,
    from_os_error,
    named,
)
from .retry import RetryPolicy
from .sftp_connect import SSH_CLIENTS, Connector, Endpoint, SftpConnection
from .sftp_pool import ConnectionLost, ConnectionPool, read_streams_for_link, usable_cores
from .streams import ChunkStreamWriter, RangeReader, stream_mode

T = TypeVar("T")
log = logging.getLogger(__name__)

_MiB = 1024 * 1024
_CONNECTION_ERRNOS = {
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
}


def is_transient(error: BaseException) -> bool:
    """Whether *error* is worth retrying on a fresh connection."""
    if isinstance(error, AccessorConfigurationError):
        return False
    if isinstance(error, paramiko.AuthenticationException | paramiko.BadHostKeyException):
        return False
    if isinstance(error, EOFError | paramiko.SSHException | paramiko.SFTPError):
        return True
    if isinstance(error, ConnectionError | TimeoutError | socket.timeout):
        return True
    return isinstance(error, OSError) and error.errno in _CONNECTION_ERRNOS


class SftpAccessor(TransferAccessor, RangedRead, ChunkedWrite, StreamedRead, StreamedWrite):
    """Files under *root* on an SFTP server."""

    name = "sftp"
    options = (
        Option("host", required=True, help="SFTP server host name or address."),
        Option("port", kind="int", default=22, help="SSH port."),
        Option("username", help="Login name (default: the current user)."),
        Option("root", required=True, help="Absolute path of the location on the server."),
        Option("key_file", kind="path", must_exist=True, help="Private key file."),
        Option(
            "known_hosts",
            kind="path",
            default="~/.ssh/known_hosts",
            help="known_hosts file the server's host key is checked against.",
        ),
        Option(
            "passphrase_env",
            help="Name of the environment variable holding the key's passphrase.",
        ),
        Option("use_agent", kind="bool", default=False, help="Log in with the SSH agent's keys."),
        Option(
            "ssh_client",
            default="auto",
            help="SSH client under SFTP: 'auto' (OpenSSH's ssh where installed and "
            "key_file is set without a passphrase, else paramiko), 'openssh' or 'paramiko'.",
        ),
        Option("connections", kind="int", default=4, help="Parallel connections (pool size)."),
        Option(
            "connect_timeout",
            kind="duration",
            default=15.0,
            help="Time allowed to connect, exchange keys and log in.",
        ),
        Option("retries", kind="int", default=5, help="Attempts per operation."),
        Option(
            "local_root",
            kind="roots",
            help="Where the same root is mounted on this host (for filesystem paths).",
        ),
    )

    #: Block size of the streams :meth:`open` returns.
    stream_block_size = 8 * _MiB
    #: Preferred bytes per SFTP read and write request (capped by what the server
    #: announces) and bytes in flight per chunk (see ``sftp_io``).
    read_request_size = sftp_io.READ_REQUEST_SIZE
    write_request_size = sftp_io.WRITE_REQUEST_SIZE
    bytes_in_flight = sftp_io.BYTES_IN_FLIGHT
    #: SSH channel window and largest packet the server may send us (downloads). Larger
    #: packets cut paramiko's per-packet Python work; the window only needs to cover the
    #: bytes in flight (``bytes_in_flight``): a larger one only buffers more (measured:
    #: 4 MiB was both faster and lighter than 16 MiB for 512 MiB downloads).
    window_size = 4 * _MiB
    max_packet_size = 256 * 1024
    #: First retry delay (seconds); doubled per attempt, with jitter, up to ``retry_maximum``.
    retry_initial = 0.1
    retry_maximum = 10.0

    def __init__(
        self,
        host: str,
        root: str,
        port: int = 22,
        username: str | None = None,
        key_file: str | None = None,
        known_hosts: str = "~/.ssh/known_hosts",
        passphrase_env: str | None = None,
        use_agent: bool = False,
        ssh_client: str = "auto",
        connections: int = 4,
        connect_timeout: float = 15.0,
        retries: int = 5,
        local_root: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(root, str) or not root.startswith("/"):
            raise AccessorConfigurationError(
                f"sftp accessor for {host}: option 'root' must be an absolute path on the "
                f"server, not {root!r}"
            )
        if ssh_client not in SSH_CLIENTS:
            raise AccessorConfigurationError(
                f"sftp accessor for {host}: option 'ssh_client' must be one of "
                f"{', '.join(SSH_CLIENTS)}, not {ssh_client!r}"
            )
        self.root = posixpath.normpath(root)
        self.local_root = local_root
        self.endpoint = Endpoint(
            host=host,
            port=int(port),
            username=username or getpass.getuser(),
            key_file=os.path.expanduser(key_file) if key_file else None,
            known_hosts=os.path.expanduser(known_hosts or "~/.ssh/known_hosts"),
            passphrase_env=passphrase_env,
            use_agent=bool(use_agent),
            connect_timeout=float(connect_timeout),
            window_size=self.window_size,
            max_packet_size=self.max_packet_size,
            ssh_client=ssh_client,
        )
        self.retry = RetryPolicy(max(1, int(retries)), self.retry_initial, self.retry_maximum)
        # Nothing connects here: the pool opens connections when an operation needs one.
        self._connector = Connector(self.endpoint)
        self._pool = ConnectionPool(self._connector.connect, int(connections))
        # Read once: read_streams is asked at every turn of the scheduler's loop.
        self._cores = usable_cores()

    # -- identity ----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return self._pool.size

    @property
    def round_trip(self) -> float | None:
        """The link's latency as the connections measured it (seconds; ``None`` before
        the first connection)."""
        return self._connector.round_trip

    @property
    def read_streams(self) -> int:
        """Chunks of one file read at once: 4 until a connection has measured the link,
        then fewer over a short link from a host with fewer cores (see
        :func:`~.sftp_pool.read_streams_for_link`), never more than the pool's
        connections. Writes keep ``default_streams``."""
        return min(self.connections, read_streams_for_link(self.round_trip, self._cores))

    def storage_key(self) -> str:
        ep = self.endpoint
        return f"sftp:{ep.username}@{ep.host}:{ep.port}"

    def describe(self) -> str:
        return f"{self.endpoint.where}{self.root}"

    def close(self) -> None:
        self._pool.close()

    def _remote(self, resource_identifier: str) -> str:
        return paths.join(self.root, resource_identifier)

    # -- running operations ------------------------------------------------------------

    def _run(
        self, operation: str, resource_identifier: str, work: Callable[[SftpConnection], T]
    ) -> T:
        """Run *work* on a pooled connection, retrying transient failures.

        SFTP status errors come back as ``OSError`` and are mapped to the accessor
        errors; connection failures are retried on a new connection, then reported as
        :class:`TransientAccessorError`.
        """

        def attempt() -> T:
            with self._pool.connection() as conn:
                return work(conn)

        return self._retried(operation, resource_identifier, attempt)

    def _retried(self, operation: str, resource_identifier: str, attempt: Callable[[], T]) -> T:
        def give_up(error: BaseException, attempts: int) -> TransientAccessorError:
            reason = str(error) or type(error).__name__
            return TransientAccessorError(
                f"Cannot {operation} {named(resource_identifier)} on {self.describe()}: {reason} "
                f"(gave up after {attempts} attempts)",
                operation,
                resource_identifier,
            )

        try:
            return self.retry.call(
                attempt,
                is_transient=is_transient,
                give_up=give_up,
                what=f"{operation} {named(resource_identifier)} on {self.describe()}",
            )
        except (TransientAccessorError, AccessorConfigurationError):
            raise
        except OSError as error:
            raise self._map(error, operation, resource_identifier) from error

    def _failed(self, operation: str, resource_identifier: str, error: Exception) -> Exception:
        """*error*, raised while streaming (so not retried here), as an accessor error."""
        if isinstance(error, ftrack_api.exception.AccessorError):
            return error
        if is_transient(error):
            reason = str(error) or type(error).__name__
            return TransientAccessorError(
                f"Cannot {operation} {named(resource_identifier)} on {self.describe()}: {reason}",
                operation,
                resource_identifier,
            )
        if isinstance(error, OSError):
            return self._map(error, operation, resource_identifier)
        return error

    @contextlib.contextmanager
    def _held(self, operation: str, resource_identifier: str) -> Iterator[SftpConnection]:
        """A pooled connection held for a streamed read or write of one chunk.

        Getting it is retried as :meth:`_run` retries (a server restarting, an idle
        connection that dropped); a failure while streaming is not, as pieces were
        handed on already: the engine sends the chunk again.
        """

        def borrow() -> tuple[contextlib.AbstractContextManager[SftpConnection], SftpConnection]:
            borrowed = self._pool.connection()
            return borrowed, borrowed.__enter__()

        borrowed, conn = self._retried(operation, resource_identifier, borrow)
        try:
            yield conn
        except BaseException as error:
            try:
                borrowed.__exit__(type(error), error, error.__traceback__)
            except ConnectionLost:
                # The pool gave up the dead connection; what the stream met is still the
                # failure to report (a transient one, so the engine sends the chunk again),
                # and a consumer's early stop stays a stop.
                if isinstance(error, Exception):
                    raise self._failed(operation, resource_identifier, error) from error
            raise
        else:
            borrowed.__exit__(None, None, None)

    def _reads(self, conn: SftpConnection) -> tuple[int, int]:
        """Request size and requests in flight for reads on *conn*."""
        return sftp_io.pipeline(self.read_request_size, conn.read_limit, self.bytes_in_flight)

    def _writes(self, conn: SftpConnection) -> tuple[int, int]:
        return sftp_io.pipeline(self.write_request_size, conn.write_limit, self.bytes_in_flight)

    def _map(self, error: OSError, operation: str, resource_identifier: str) -> Exception:
        # paramiko turns SFTP statuses into OSError: ENOENT and EACCES with their errno,
        # SSH_FX_FAILURE (disk full, quota, ...) as a bare OSError("Failure"), which
        # says nothing to a user without the hint.
        if error.errno is None and str(error) == "Failure":
            error = OSError(
                "the server reported a failure without a reason (often a full disk or "
                "quota on the server)"
            )
        return from_os_error(error, operation, resource_identifier, self.describe())

    def _attributes(self, resource_identifier: str) -> paramiko.SFTPAttributes | None:
        """``stat`` of a resource, or ``None`` when it does not exist."""
        path = self._remote(resource_identifier)

        def work(conn: SftpConnection) -> paramiko.SFTPAttributes | None:
            sftp = conn.sftp
            try:
                return sftp.stat(path)
            except FileNotFoundError:
                return None

        return self._run("stat", resource_identifier, work)

    # -- ftrack Accessor ---------------------------------------------------------------

    def list(self, resource_identifier: str) -> list[str]:
        path = self._remote(resource_identifier)
        relative = paths.safe_relative(resource_identifier)

        def work(conn: SftpConnection) -> list[str] | None:
            sftp = conn.sftp
            try:
                return sftp.listdir(path)
            except OSError:
                # OpenSSH reports listing a file as "no such file": look before mapping.
                if _kind(sftp, path) == "file":
                    return None
                raise

        names = self._run("list", resource_identifier, work)
        if names is None:
            raise ResourceInvalidError(
                f"Cannot list {named(resource_identifier)} on {self.describe()}: not a container",
                "list",
                resource_identifier,
            )
        names = sorted(n for n in names if not writes.is_temporary(n))
        return [f"{relative}/{n}" if relative else n for n in names]

    def exists(self, resource_identifier: str) -> bool:
        return self._attributes(resource_identifier) is not None

    def is_file(self, resource_identifier: str) -> bool:
        attributes = self._attributes(resource_identifier)
        return attributes is not None and stat_module.S_ISREG(attributes.st_mode or 0)

    def is_container(self, resource_identifier: str) -> bool:
        attributes = self._attributes(resource_identifier)
        return attributes is not None and stat_module.S_ISDIR(attributes.st_mode or 0)

    def is_sequence(self, resource_identifier: str) -> bool:
        found = sequences.split(paths.safe_relative(resource_identifier))
        if found is None:
            return False
        container, pattern = found
        try:
            names = self.list(container)
        except (ResourceNotFoundError, ResourceInvalidError):
            return False
        return any(pattern.fullmatch(posixpath.basename(n)) for n in names)

    def open(self, resource_identifier: str, mode: str = "rb") -> ftrack_api.data.Data:
        if stream_mode(mode, resource_identifier) == "w":
            if self.is_container(resource_identifier):
                raise ResourceInvalidError(
                    f"Cannot write {named(resource_identifier)} on {self.describe()}: it is a container",
                    "open",
                    resource_identifier,
                )
            return ChunkStreamWriter(self, resource_identifier, self.stream_block_size)
        size = self.stat(resource_identifier).size
        return RangeReader(
            lambda offset, length: self.read_range(resource_identifier, offset, length),
            size,
            self.stream_block_size,
            resource_identifier,
        )

    def remove(self, resource_identifier: str) -> None:
        if not paths.safe_relative(resource_identifier):
            raise ResourceInvalidError(
                f"Refusing to remove the root of {self.describe()}", "remove", resource_identifier
            )
        path = self._remote(resource_identifier)

        def work(conn: SftpConnection) -> bool:
            sftp = conn.sftp
            attributes = sftp.lstat(path)
            if not stat_module.S_ISDIR(attributes.st_mode or 0):
                sftp.remove(path)
                return True
            try:
                sftp.rmdir(path)
            except OSError:
                # SFTP has no "not empty" status; look before deciding what went wrong.
                if sftp.listdir(path):
                    return False
                raise
            return True

        if not self._run("remove", resource_identifier, work):
            raise ContainerNotEmptyError(
                f"Cannot remove {named(resource_identifier)} on {self.describe()}: the container is "
                "not empty",
                "remove",
                resource_identifier,
            )

    def make_container(self, resource_identifier: str, recursive: bool = True) -> None:
        relative = paths.safe_relative(resource_identifier)
        parts = relative.split("/") if relative else []

        def work(conn: SftpConnection) -> None:
            sftp = conn.sftp
            if not parts:
                self._require_root(sftp)
                return
            if _is_dir(sftp, self._remote(relative)):
                return  # the common case: one round trip
            start = 0 if recursive else len(parts) - 1
            for depth in range(start, len(parts)):
                path = self._remote("/".join(parts[: depth + 1]))
                try:
                    sftp.mkdir(path)
                except PermissionError:
                    raise
                except OSError:
                    kind = _kind(sftp, path)
                    if kind == "dir":
                        continue  # made meanwhile, or a level that existed
                    if kind == "file":
                        raise ResourceInvalidError(
                            f"Cannot make container {resource_identifier!r} on "
                            f"{self.describe()}: {'/'.join(parts[: depth + 1])!r} is a file",
                            "make container",
                            resource_identifier,
                        ) from None
                    self._require_root(sftp)  # a missing root is a configuration problem
                    if not recursive:
                        raise ParentResourceNotFoundError(
                            f"Cannot make container {resource_identifier!r} on "
                            f"{self.describe()}: its parent does not exist (make it first, "
                            "or make containers recursively)",
                            "make container",
                            resource_identifier,
                        ) from None
                    raise

        self._run("make container", resource_identifier, work)

    def _require_root(self, sftp: paramiko.SFTPClient) -> None:
        if not _is_dir(sftp, self.root):
            raise AccessorConfigurationError(
                f"The root directory of {self.describe()} does not exist on the server; create "
                "it or fix the location's root"
            )

    def get_filesystem_path(self, resource_identifier: str) -> str:
        relative = paths.safe_relative(resource_identifier)
        if not self.local_root:
            raise UnsupportedOperationError(
                f"No local path for {named(resource_identifier)} on {self.describe()}: set the "
                "location's local_root where this host mounts the same root",
                "get_filesystem_path",
                resource_identifier,
            )
        return os.path.join(self.local_root, *relative.split("/")) if relative else self.local_root

    def get_url(self, resource_identifier: str) -> str:
        ep = self.endpoint
        user = urllib.parse.quote(ep.username, safe="")
        host = f"[{ep.host}]" if ":" in ep.host else ep.host
        path = urllib.parse.quote(self._remote(resource_identifier))
        return f"sftp://{user}@{host}:{ep.port}{path}"

    # -- TransferAccessor ---------------------------------------------------------------

    def check(self) -> None:
        self._run("check", "", lambda conn: self._require_root(conn.sftp))
        self.list("")

    def stat(self, resource_identifier: str) -> Stat:
        attributes = self._attributes(resource_identifier)
        if attributes is None:
            raise ResourceNotFoundError(
                f"Cannot stat {named(resource_identifier)} on {self.describe()}: no such file",
                "stat",
                resource_identifier,
            )
        if not stat_module.S_ISREG(attributes.st_mode or 0):
            raise ResourceInvalidError(
                f"Cannot stat {named(resource_identifier)} on {self.describe()}: not a file",
                "stat",
                resource_identifier,
            )
        return Stat(attributes.st_size or 0, attributes.st_mtime)

    # -- RangedRead ----------------------------------------------------------------------

    def read_range(self, resource_identifier: str, offset: int, length: int) -> bytes:
        path = self._remote(resource_identifier)
        return self._run(
            "read", resource_identifier, lambda conn: self._read(conn, path, offset, length)
        )

    def _read(self, conn: SftpConnection, path: str, offset: int, length: int) -> bytes:
        handle = sftp_io.open_file(conn.sftp, path, sftp_io.READ)
        try:
            return sftp_io.pread(conn.sftp, handle, offset, length, *self._reads(conn))
        finally:
            sftp_io.close_file(conn.sftp, handle)

    # -- StreamedRead --------------------------------------------------------------------

    def read_pieces(
        self, resource_identifier: str, offset: int, length: int
    ) -> Iterator[memoryview]:
        path = self._remote(resource_identifier)
        try:
            with self._held("read", resource_identifier) as conn:
                handle = sftp_io.open_file(conn.sftp, path, sftp_io.READ)
                stream = sftp_io.pieces(conn.sftp, handle, offset, length, *self._reads(conn))
                try:
                    # Not `yield from`: it would close the stream itself on an early stop
                    # and raise the stream's failure over the consumer's.
                    for piece in stream:  # noqa: UP028
                        yield piece
                except GeneratorExit:
                    # The consumer stopped early: settle the replies still due, or give
                    # the connection up; its own error is the one to report.
                    _settle(conn, stream.close, lambda: sftp_io.close_file(conn.sftp, handle))
                    raise
                sftp_io.close_file(conn.sftp, handle)
        except GeneratorExit:
            raise
        except Exception as error:
            raise self._failed("read", resource_identifier, error) from error

    # -- StreamedWrite -------------------------------------------------------------------

    @contextlib.contextmanager
    def open_chunk(
        self, resource_identifier: str, token: str, offset: int, length: int
    ) -> Iterator[ChunkWriter]:
        temporary, _ = self._temporary(resource_identifier, token)
        with self._held("write", resource_identifier) as conn:
            try:
                # No CREATE: a chunk of an aborted write must fail, not start a new file.
                handle = sftp_io.open_file(conn.sftp, temporary, sftp_io.UPDATE)
            except FileNotFoundError:
                raise self._no_write(resource_identifier, token) from None
            except Exception as error:
                raise self._failed("write", resource_identifier, error) from error
            writer = _ChunkWriter(
                self, conn, resource_identifier, handle, offset, conn_writes=self._writes(conn)
            )
            try:
                yield writer
            finally:
                if not writer.finished:
                    _settle(
                        conn, writer.pieces.settle, lambda: sftp_io.close_file(conn.sftp, handle)
                    )

    # -- ChunkedWrite --------------------------------------------------------------------
    #
    # Round trips matter more than bytes for small files on long links: a chunk costs two
    # (open, then the writes and the close in one batch), a commit three, and put_small
    # three (open, writes + fsync + fstat + close, rename).

    def _temporary(self, resource_identifier: str, token: str) -> tuple[str, str]:
        writes.check_token(token, resource_identifier)
        final = self._remote(resource_identifier)
        if final == self.root:
            raise ResourceInvalidError(
                f"Cannot write the root of {self.describe()} as a file",
                "write",
                resource_identifier,
            )
        directory, name = posixpath.split(final)
        return posixpath.join(directory, writes.temporary_name(name, token)), final

    def begin_write(self, resource_identifier: str, size: int, chunk_size: int) -> str:
        token = writes.new_token()
        temporary, _ = self._temporary(resource_identifier, token)
        self.make_container(paths.parent(resource_identifier))

        def work(conn: SftpConnection) -> None:
            sftp_io.close_file(conn.sftp, sftp_io.open_file(conn.sftp, temporary, sftp_io.CREATE))

        self._run("write", resource_identifier, work)
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

        def work(conn: SftpConnection) -> None:
            try:
                # No CREATE: a chunk of an aborted write must fail, not start a new file.
                handle = sftp_io.open_file(conn.sftp, temporary, sftp_io.UPDATE)
            except FileNotFoundError:
                raise self._no_write(resource_identifier, token) from None
            # Synced now, while other chunks are on the wire: the commit's fsync, which
            # decides durability, then finds little left to write (1 GiB: 0.3 s -> 1 ms).
            sftp_io.pwrite(
                conn.sftp, handle, offset, data, *self._writes(conn), sync=True, close=True
            )

        self._run("write", resource_identifier, work)
        return None

    def commit_write(
        self,
        resource_identifier: str,
        token: str,
        size: int,
        chunks: Sequence[WrittenChunk],
        verify: VerifyLevel = "checksum",
    ) -> None:
        temporary, final = self._temporary(resource_identifier, token)
        try:
            ordered = writes.check_coverage(resource_identifier, size, chunks, self.describe())

            def flush(conn: SftpConnection) -> int | None:
                """Size of the temporary file after an fsync; None if already committed."""
                try:
                    handle = sftp_io.open_file(conn.sftp, temporary, sftp_io.UPDATE)
                except FileNotFoundError:
                    if _size(conn.sftp, final) == size:
                        return None  # committed by an attempt whose reply was lost
                    raise self._no_write(resource_identifier, token) from None
                return sftp_io.finish(conn.sftp, handle)

            found = self._run("commit", resource_identifier, flush)
            if found is None:
                return
            self._check_size(resource_identifier, found, size)
            if verify == "full":
                # SFTP has no content hash of its own (OpenSSH lacks "check-file"):
                # "checksum" stops at the size, "full" reads the data back.
                self._verify_by_reading(temporary, ordered, resource_identifier)
        except VerificationError:
            self.abort_write(resource_identifier, token)
            raise
        self._rename(resource_identifier, temporary, final, size)

    def abort_write(self, resource_identifier: str, token: str) -> None:
        temporary, _ = self._temporary(resource_identifier, token)

        def work(conn: SftpConnection) -> None:
            with contextlib.suppress(FileNotFoundError):
                conn.sftp.remove(temporary)

        self._run("abort", resource_identifier, work)

    def discard_stale(self, resource_identifier: str, keep: str | None = None) -> int:
        directory, name = posixpath.split(self._remote(resource_identifier))

        def work(conn: SftpConnection) -> int:
            try:
                entries = conn.sftp.listdir(directory)
            except FileNotFoundError:
                return 0
            stale = writes.stale_temporaries(entries, name, keep)
            for entry in stale:
                with contextlib.suppress(FileNotFoundError):
                    conn.sftp.remove(posixpath.join(directory, entry))
            return len(stale)

        return self._run("clean up", resource_identifier, work)

    def put_small(
        self,
        resource_identifier: str,
        data: bytes,
        digest: bytes,
        verify: VerifyLevel = "checksum",
    ) -> None:
        """A whole small file in three round trips (plus parents, when they are missing)."""
        token = writes.new_token()
        temporary, final = self._temporary(resource_identifier, token)

        def work(conn: SftpConnection) -> int | None:
            try:
                handle = sftp_io.open_file(conn.sftp, temporary, sftp_io.CREATE)
            except FileNotFoundError:
                return None  # the parent container does not exist yet
            return sftp_io.pwrite(
                conn.sftp, handle, 0, data, *self._writes(conn), sync=True, close=True
            )

        try:
            # Inside the try: a write refused half-way (a full disk) has already created
            # the temporary, which must not stay behind.
            found = self._run("write", resource_identifier, work)
            if found is None:
                self.make_container(paths.parent(resource_identifier))
                found = self._run("write", resource_identifier, work)
            self._check_size(resource_identifier, found, len(data))
            if verify == "full":
                chunk = WrittenChunk(0, len(data), digest)
                self._verify_by_reading(temporary, [chunk], resource_identifier)
            self._rename(resource_identifier, temporary, final, len(data))
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to report
                self.abort_write(resource_identifier, token)
            raise

    def _check_size(self, resource_identifier: str, found: int | None, size: int) -> None:
        if found != size:
            raise VerificationError(
                f"Cannot commit {named(resource_identifier)} on {self.describe()}: {found} bytes "
                f"written, {size} expected",
                "commit_write",
                resource_identifier,
            )

    def _rename(self, resource_identifier: str, temporary: str, final: str, size: int) -> None:
        def work(conn: SftpConnection) -> None:
            try:
                _replace(conn.sftp, temporary, final, self.describe())
            except FileNotFoundError:
                if _size(conn.sftp, final) != size:
                    raise
                # Renamed by an attempt whose reply was lost.

        self._run("commit", resource_identifier, work)

    def _no_write(self, resource_identifier: str, token: str) -> ResourceNotFoundError:
        return ResourceNotFoundError(
            f"No write of {resource_identifier!r} with token {token} in progress on "
            f"{self.describe()} (aborted or committed already); begin the write again",
            "write",
            resource_identifier,
        )

    def _verify_by_reading(
        self, temporary: str, ordered: Sequence[WrittenChunk], resource_identifier: str
    ) -> None:
        def digest(chunk: WrittenChunk) -> bytes:
            return self.digest_kind.of(
                self._run(
                    "verify",
                    resource_identifier,
                    lambda conn: self._read(conn, temporary, chunk.offset, chunk.length),
                )
            )

        workers = max(1, min(self.connections, len(ordered)))
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


class _ChunkWriter(ChunkWriter):
    """A chunk written on one held connection, the writes pipelined as pieces come."""

    def __init__(
        self,
        accessor: SftpAccessor,
        conn: SftpConnection,
        resource_identifier: str,
        handle: bytes,
        offset: int,
        conn_writes: tuple[int, int],
    ) -> None:
        self.accessor = accessor
        self.conn = conn
        self.resource_identifier = resource_identifier
        self.pieces = sftp_io.PieceWriter(conn.sftp, handle, offset, *conn_writes)
        self.finished = False

    def write(self, piece: bytes | bytearray | memoryview) -> None:
        self._do(self.pieces.write, piece)

    def finish(self) -> str | None:
        # Synced now, while other chunks are on the wire: the commit's fsync, which
        # decides durability, then finds little left to write (1 GiB: 0.3 s -> 1 ms).
        try:
            self._do(lambda: self.pieces.finish(sync=True))
        finally:
            self.finished = True  # the batch closed the handle, whatever its outcome
        return None

    def _do(self, step: Callable[..., None], *args: object) -> None:
        try:
            step(*args)
        except Exception as error:
            if not _refused(error):
                self.finished = True  # nothing to settle: the connection is given up
                self.conn.close()
            raise self.accessor._failed("write", self.resource_identifier, error) from error


def _refused(error: BaseException) -> bool:
    """Whether *error* is the server's refusal (a status), raised once every reply was
    read: the connection is in step and can serve the next operation."""
    return isinstance(error, OSError) and not isinstance(error, ConnectionError | TimeoutError)


def _settle(conn: SftpConnection, *steps: Callable[[], object]) -> None:
    """Run *steps* that read what is due on *conn*; if one fails, close the connection
    (the pool then drops it) rather than report a failure behind the first one."""
    try:
        for step in steps:
            step()
    except Exception:
        with contextlib.suppress(Exception):
            conn.close()


def _kind(sftp: paramiko.SFTPClient, path: str) -> str | None:
    try:
        mode = sftp.stat(path).st_mode or 0
    except FileNotFoundError:
        return None
    return "dir" if stat_module.S_ISDIR(mode) else "file"


def _is_dir(sftp: paramiko.SFTPClient, path: str) -> bool:
    return _kind(sftp, path) == "dir"


def _size(sftp: paramiko.SFTPClient, path: str) -> int | None:
    try:
        return sftp.stat(path).st_size
    except FileNotFoundError:
        return None


#: Connections whose server refused ``posix-rename@openssh.com``: asked once each, not
#: once per file (a sequence commits every frame).
_WITHOUT_POSIX_RENAME: weakref.WeakSet[paramiko.SFTPClient] = weakref.WeakSet()


def _replace(sftp: paramiko.SFTPClient, source: str, target: str, where: str) -> None:
    """Rename *source* over *target* atomically (``posix-rename@openssh.com``)."""
    if sftp not in _WITHOUT_POSIX_RENAME:
        if sftp_io.posix_rename(sftp, source, target):
            return
        _WITHOUT_POSIX_RENAME.add(sftp)
    # A server without the extension: plain SFTP rename refuses to replace, so the
    # old file is removed first (a short window where neither exists).
    _warn_non_atomic(where)
    with contextlib.suppress(FileNotFoundError):
        sftp.remove(target)
    sftp.rename(source, target)


@functools.cache
def _warn_non_atomic(where: str) -> None:
    # Once per server: a sequence would otherwise log it for every frame.
    log.warning(
        "the SFTP server of %s lacks posix-rename@openssh.com: a file that already exists "
        "is replaced by removing it first (for a moment neither copy exists)",
        where,
    )
