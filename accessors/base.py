"""The accessor contract: ftrack's Accessor plus what the transfer engine needs.

Every accessor in this package is a full :class:`ftrack_api.accessor.base.Accessor`,
so stock ftrack code (``Location.add_component``, ``get_filesystem_path``) works with it.
On top of that small mandatory surface, an accessor may offer *capabilities*, mixin
classes the engine discovers at run time with :func:`supports` (the rclone model: a
small mandatory interface plus optional features, with a fallback when one is absent):

==================  ==============================================================
capability          what the engine does with it
==================  ==============================================================
:class:`RangedRead`     reads a file as independent byte ranges, several at once
:class:`ChunkedWrite`   writes ranges at offsets into a temporary name, verifies,
                        then commits atomically under the final name (or aborts)
:class:`StreamedRead`   reads a range as a stream of pieces, more on the way while
                        one is handled
:class:`StreamedWrite`  writes a chunk piece by piece as the pieces arrive
:class:`ServerSideCopy` copies inside one storage without the bytes passing through
                        this process
:class:`Checksum`       asks the storage for a content hash without reading the data
==================  ==============================================================

Where the source streams and the destination takes pieces, a chunk never sits whole in
memory: each piece goes on to the destination while the next is still on the wire (the
way OpenSSH's ``sftp`` keeps one connection busy), so one connection does the work that
took several when each chunk was first received whole and then written.

Every accessor also implements :meth:`TransferAccessor.stat` and declares its options
as data (:class:`Option`) so the sites config can validate them before anything
touches storage.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

import ftrack_api.accessor.base

from . import paths
from .digests import XXH128, DigestKind
from .errors import (  # noqa: F401 - re-exported: the contract names its errors
    AccessorConfigurationError,
    ParentResourceNotFoundError,
    TransientAccessorError,
    VerificationError,
)

#: Verification levels, weakest first. ``size`` always runs; ``checksum`` checks content
#: where the destination can without a separate read-back pass (S3 part checksums; a local
#: disk reads each chunk back as it lands); ``full`` reads the written data back.
VerifyLevel = Literal["size", "checksum", "full"]
VERIFY_LEVELS: tuple[VerifyLevel, ...] = ("size", "checksum", "full")
#: Chunks of one file in flight by default (see ``TransferAccessor.default_streams``).
DEFAULT_STREAMS = 4


@dataclasses.dataclass(frozen=True)
class Stat:
    """Size and modification time of a file resource."""

    size: int
    mtime: float | None = None


@dataclasses.dataclass(frozen=True)
class ChunkRules:
    """Constraints of a backend's chunked writes (S3: parts of 5 MiB or more, 10,000 at most)."""

    min_chunk_size: int = 1
    max_chunks: int | None = None

    def chunk_size_for(self, size: int, preferred: int) -> int:
        """Return the chunk size to use for a file of *size* bytes."""
        chunk = max(preferred, self.min_chunk_size)
        if self.max_chunks and size > chunk * self.max_chunks:
            chunk = -(-size // self.max_chunks)
        return chunk


@dataclasses.dataclass(frozen=True)
class WrittenChunk:
    """One chunk as written: where it sits, its digest (of the destination's
    :attr:`ChunkedWrite.digest_kind`), and the backend's receipt (an S3 part ETag,
    ``None`` where the backend needs nothing to commit)."""

    offset: int
    length: int
    digest: bytes
    receipt: str | None = None


@dataclasses.dataclass(frozen=True)
class Option:
    """One configuration field of an accessor, declared as data.

    ``kind`` is one of ``str``, ``int``, ``bool``, ``size`` (``"8MiB"`` or an int of
    bytes), ``duration`` (``"30s"``, ``"5m"``), ``path`` (a local file path, relative
    to the config file), ``roots`` (a per-OS table of roots, see the disk accessor),
    ``list`` (a list of strings).
    """

    name: str
    kind: str = "str"
    required: bool = False
    default: Any = None
    help: str = ""
    #: ``True`` for a path the config must be able to read (key files, known_hosts).
    must_exist: bool = False


class TransferAccessor(ftrack_api.accessor.base.Accessor, abc.ABC):
    """Mandatory interface of every accessor in this package.

    Subclasses implement every abstract method of ftrack's Accessor and :meth:`stat`,
    declare ``name`` (the key used in the sites config) and ``options``, and keep
    connections lazy: constructing an accessor never touches the network, so starting
    an ftrack session stays fast when a site is down.
    """

    #: Key in the sites config (``accessor = "sftp"``) and in the registry.
    name: ClassVar[str]
    #: Configuration fields, validated by the sites config before construction.
    options: ClassVar[tuple[Option, ...]] = ()
    #: Chunks of one file in flight when the sites config does not set ``streams``;
    #: ``None`` for a storage that waits on no link (a local disk): the other end decides.
    #: An accessor reading better with another number offers ``read_streams`` too (SFTP
    #: computes it from the link it measured), used where it is the source.
    default_streams: ClassVar[int | None] = DEFAULT_STREAMS

    @abc.abstractmethod
    def stat(self, resource_identifier: str) -> Stat:
        """Return the :class:`Stat` of a file; ``AccessorResourceNotFoundError`` if absent."""

    @abc.abstractmethod
    def storage_key(self) -> str:
        """Identify the storage this accessor reaches, without secrets.

        Two accessors with the same key reach the same bytes under the same identifiers'
        namespace root mapping, so :class:`ServerSideCopy` between them is possible.
        Examples: ``disk:<hostname>``, ``sftp:user@host:22``, ``s3:http://127.0.0.1:9000``.
        """

    def get_container(self, resource_identifier: str) -> str:
        """The parent of an identifier: path arithmetic, the same for every storage (so
        it is answered without a connection or a mount)."""
        if not paths.safe_relative(resource_identifier):
            raise ParentResourceNotFoundError(
                f"The root of {self.describe()} has no container",
                "get container",
                resource_identifier,
            )
        return paths.parent(resource_identifier)

    def describe(self) -> str:
        """A short, secret-free description for logs, tables and error messages."""
        return self.storage_key()

    def check(self) -> None:
        """Connect and verify the storage is usable; raise with the reason otherwise.

        Used by ``ftrack-transfer locations --check``; the default does a ``list`` of
        the root.
        """
        self.list("")

    def close(self) -> None:
        """Release connections and pools. Safe to call more than once."""

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> TransferAccessor:
        """Build the accessor from validated option values (see :class:`Option`)."""
        return cls(**values)


class RangedRead(abc.ABC):
    """Capability: read independent byte ranges of a file."""

    @abc.abstractmethod
    def read_range(self, resource_identifier: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset`` (fewer only at the end of the file)."""


class ChunkedWrite(abc.ABC):
    """Capability: parallel chunk writes into a temporary name, then an atomic commit.

    The engine calls :meth:`begin_write` once per file and keeps the returned token in
    its journal, so a restarted process can continue writing chunks with the same token
    after a crash. Nothing appears under the final name before :meth:`commit_write`
    has verified the data; :meth:`abort_write` removes what was written.
    """

    #: Backend constraints on chunk sizes and counts.
    chunk_rules: ClassVar[ChunkRules] = ChunkRules()
    #: The hash of the chunk digests given to :meth:`write_chunk` and checked by this
    #: destination (see ``digests``): SHA-256 where the storage verifies it on arrival.
    digest_kind: ClassVar[DigestKind] = XXH128

    @abc.abstractmethod
    def begin_write(self, resource_identifier: str, size: int, chunk_size: int) -> str:
        """Prepare a write of *size* bytes in chunks of *chunk_size* (the last may be
        shorter); create parent containers; return a token.

        *size* is a hint (``0`` when it is not known in advance, as for a stream written
        through ``open(..., "wb")``); the size that counts is the one given to
        :meth:`commit_write`. Chunks start at multiples of *chunk_size*.

        The token is a short string (a temporary name, an upload id) that identifies
        the write across processes; the engine journals it and may call
        :meth:`write_chunk` with it from a restarted process.
        """

    @abc.abstractmethod
    def write_chunk(
        self,
        resource_identifier: str,
        token: str,
        offset: int,
        data: bytes | memoryview,
        digest: bytes,
    ) -> str | None:
        """Write *data* at *offset*; return a receipt to pass back to :meth:`commit_write`.

        *digest* is the chunk's :attr:`digest_kind` digest computed by the engine while
        reading the source; backends that can have the storage verify a chunk on arrival
        (S3 part checksums) send it along and a mismatch raises.
        """

    @abc.abstractmethod
    def commit_write(
        self,
        resource_identifier: str,
        token: str,
        size: int,
        chunks: Sequence[WrittenChunk],
        verify: VerifyLevel = "checksum",
    ) -> None:
        """Verify the written data at the requested level, then make it final atomically.

        Raises :class:`VerificationError` (and leaves the final name untouched) when the
        data does not match.
        """

    @abc.abstractmethod
    def abort_write(self, resource_identifier: str, token: str) -> None:
        """Discard a write: remove the temporary data. Safe if nothing was written."""

    @abc.abstractmethod
    def discard_stale(self, resource_identifier: str, keep: str | None = None) -> int:
        """Remove the temporaries of unfinished writes of *resource_identifier*, except
        the one of token *keep*; return how many were removed.

        A process can die after a write began but before its token was journalled; the
        engine calls this before writing a file again after such an interruption, so
        nothing is left behind that no token names.
        """

    def put_small(
        self,
        resource_identifier: str,
        data: bytes,
        digest: bytes,
        verify: VerifyLevel = "checksum",
    ) -> None:
        """Write a whole small file atomically and verified, in as few requests as possible.

        The default goes through begin / write / commit; backends with a cheaper path
        (S3 ``PutObject`` with a checksum) override it.
        """
        token = self.begin_write(resource_identifier, len(data), max(len(data), 1))
        try:
            receipt = self.write_chunk(resource_identifier, token, 0, data, digest)
            self.commit_write(
                resource_identifier,
                token,
                len(data),
                [WrittenChunk(0, len(data), digest, receipt)],
                verify,
            )
        except BaseException:
            self.abort_write(resource_identifier, token)
            raise


class StreamedRead(abc.ABC):
    """Capability: read a range as pieces, with the pieces after it already requested."""

    @abc.abstractmethod
    def read_pieces(
        self, resource_identifier: str, offset: int, length: int
    ) -> Iterator[memoryview]:
        """Yield the bytes of ``[offset, offset + length)`` in order, in pieces (fewer
        bytes in all only where the file ends first).

        A piece is valid until the next one is asked for: its buffer is reused. Close the
        iterator (``contextlib.closing``) to stop early; what is in flight is settled so
        the connection stays usable. Errors are this accessor's, as from
        :meth:`RangedRead.read_range`.
        """


class ChunkWriter(abc.ABC):
    """One chunk of a :class:`ChunkedWrite` being written piece by piece."""

    @abc.abstractmethod
    def write(self, piece: bytes | bytearray | memoryview) -> None:
        """Write *piece* after the bytes written so far (it may be reused once this
        returns)."""

    @abc.abstractmethod
    def finish(self) -> str | None:
        """End the chunk once all of it is written; return the receipt for
        :meth:`ChunkedWrite.commit_write` (as :meth:`ChunkedWrite.write_chunk` does)."""


class StreamedWrite(abc.ABC):
    """Capability: write one chunk of a :class:`ChunkedWrite` as its pieces arrive.

    Offered by destinations that do not need a chunk's digest before its first byte
    (S3 sends it with the request, so it takes whole chunks).
    """

    @abc.abstractmethod
    def open_chunk(
        self, resource_identifier: str, token: str, offset: int, length: int
    ) -> contextlib.AbstractContextManager[ChunkWriter]:
        """A :class:`ChunkWriter` for the *length* bytes at *offset* of the write of
        *token*. Leaving the context without :meth:`ChunkWriter.finish` abandons the
        chunk: what was written stays in the temporary, to be written again."""


class ServerSideCopy(abc.ABC):
    """Capability: copy a file inside one storage without moving bytes through us."""

    def can_copy_from(self, source: TransferAccessor) -> bool:
        """Whether :meth:`copy_from` works from *source* (same storage, see ``storage_key``)."""
        return isinstance(source, type(self)) and source.storage_key() == self.storage_key()  # type: ignore[attr-defined]

    @abc.abstractmethod
    def copy_from(
        self,
        source: TransferAccessor,
        source_identifier: str,
        resource_identifier: str,
        size: int,
        verify: VerifyLevel = "checksum",
    ) -> None:
        """Copy *source_identifier* of *source* to *resource_identifier* here.

        Atomic like :meth:`ChunkedWrite.commit_write`: the final name appears only with
        the whole, verified copy.
        """


class Checksum(abc.ABC):
    """Capability: a content hash from the storage itself, without a read-back."""

    @abc.abstractmethod
    def checksum(self, resource_identifier: str) -> str | None:
        """Return ``"<algorithm>:<value>"`` or ``None`` when the storage has none for it."""


def supports(accessor: object, capability: type) -> bool:
    """Whether *accessor* offers *capability* (one of the mixins above)."""
    return isinstance(accessor, capability)


def option_defaults(options: Sequence[Option]) -> dict[str, Any]:
    """Default values of *options*, for accessors built without a config file."""
    return {o.name: o.default for o in options if not o.required}
