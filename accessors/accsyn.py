"""accsyn shares: storage that accsyn moves, read and written here through a local mount.

An accsyn *party* (``site=<code>`` for a site server, a user's e-mail for their
workstation) owns a root share; resource identifiers are paths relative to it. Bytes
between parties travel as accsyn tasks, which the transfer engine builds from
:meth:`AccsynAccessor.accsyn_path` (``<party>:<path>``). Where this host mounts the share
(``local_root``, or ``ACCSYN_<SHARE>_PATH`` as accsyn's own tools use), the accessor reads
and writes through that mount like a disk location; without one, file I/O is refused
with a message saying how to provide it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence

import ftrack_api.data

from . import paths
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
from .disk import DiskAccessor
from .errors import (
    AccessorConfigurationError,
    UnsupportedOperationError,
)

_PARTY = re.compile(r"^(site=[A-Za-z0-9_.-]+|[^@\s:]+@[^@\s:]+)$")


def share_environment_variable(share: str) -> str:
    """``ACCSYN_<SHARECODE>_PATH``: where accsyn's tools find a share's local mount."""
    return f"ACCSYN_{re.sub(r'[^A-Za-z0-9]', '_', share).upper()}_PATH"


class AccsynAccessor(
    TransferAccessor,
    RangedRead,
    ChunkedWrite,
    StreamedRead,
    StreamedWrite,
    ServerSideCopy,
    Checksum,
):
    """Files of an accsyn party's share; local I/O through the share's mount on this host."""

    name = "accsyn"
    options = (
        Option(
            "party",
            required=True,
            help='accsyn party: "site=<code>" or a user e-mail (default: from the location name).',
        ),
        Option("share", help="accsyn volume/folder code (default: the party's root share)."),
        Option(
            "local_root",
            kind="roots",
            help="Where this host mounts the share (default: $ACCSYN_<SHARE>_PATH).",
        ),
    )

    def __init__(self, party: str, share: str | None = None, local_root: str | None = None) -> None:
        super().__init__()
        if not isinstance(party, str) or not _PARTY.match(party):
            raise AccessorConfigurationError(
                f'accsyn accessor: bad party {party!r}; use "site=<code>" or a user e-mail'
            )
        self.party = party
        self.share = share or None
        if not local_root and self.share:
            local_root = os.environ.get(share_environment_variable(self.share)) or None
        self.local_root = local_root or None
        #: The disk accessor on the local mount, ``None`` where this host has none.
        self.local_disk = _Mount(self.local_root, self.describe()) if self.local_root else None

    # -- accsyn ------------------------------------------------------------------------

    def accsyn_path(self, resource_identifier: str) -> str:
        """``<party>:<path>``, the notation of accsyn task sources and destinations.

        The path is relative to the party's default root share, or written
        ``volume=<share>/<path>`` when the location names a share.
        """
        relative = paths.safe_relative(resource_identifier)
        if self.share:
            return f"{self.party}:volume={self.share}/{relative}".rstrip("/")
        return f"{self.party}:{relative}"

    # -- identity ----------------------------------------------------------------------

    def storage_key(self) -> str:
        return f"accsyn:{self.party}:{self.share or ''}"

    def describe(self) -> str:
        where = f"accsyn {self.party}" + (f" share {self.share}" if self.share else "")
        if not self.local_root:
            return f"{where} (not mounted on this host)"
        return f"{where} (mounted at {self.local_root})"

    def check(self) -> None:
        if self.local_disk is not None:
            self.local_disk.check()

    def _disk(self, operation: str, resource_identifier: str) -> DiskAccessor:
        if self.local_disk is None:
            variable = share_environment_variable(self.share or "<SHARE>")
            raise UnsupportedOperationError(
                f"Cannot {operation} {resource_identifier!r}: {self.describe()}; set the "
                f"location's local_root (or {variable}) to where this host mounts the share, "
                "or move it with an accsyn transfer",
                operation,
                resource_identifier,
            )
        return self.local_disk

    # -- ftrack Accessor ---------------------------------------------------------------

    def list(self, resource_identifier: str) -> list[str]:
        return self._disk("list", resource_identifier).list(resource_identifier)

    def exists(self, resource_identifier: str) -> bool:
        return self._disk("check", resource_identifier).exists(resource_identifier)

    def is_file(self, resource_identifier: str) -> bool:
        return self._disk("check", resource_identifier).is_file(resource_identifier)

    def is_container(self, resource_identifier: str) -> bool:
        return self._disk("check", resource_identifier).is_container(resource_identifier)

    def is_sequence(self, resource_identifier: str) -> bool:
        return self._disk("check", resource_identifier).is_sequence(resource_identifier)

    def open(self, resource_identifier: str, mode: str = "rb") -> ftrack_api.data.Data:
        return self._disk("open", resource_identifier).open(resource_identifier, mode)

    def remove(self, resource_identifier: str) -> None:
        self._disk("remove", resource_identifier).remove(resource_identifier)

    def make_container(self, resource_identifier: str, recursive: bool = True) -> None:
        self._disk("make container", resource_identifier).make_container(
            resource_identifier, recursive
        )

    def get_filesystem_path(self, resource_identifier: str) -> str:
        disk = self._disk("get the filesystem path of", resource_identifier)
        return disk.get_filesystem_path(resource_identifier)

    def get_url(self, resource_identifier: str) -> str:
        return self._disk("get the URL of", resource_identifier).get_url(resource_identifier)

    def stat(self, resource_identifier: str) -> Stat:
        return self._disk("stat", resource_identifier).stat(resource_identifier)

    # -- capabilities, through the mount -------------------------------------------------

    def read_range(self, resource_identifier: str, offset: int, length: int) -> bytes:
        return self._disk("read", resource_identifier).read_range(
            resource_identifier, offset, length
        )

    def read_pieces(
        self, resource_identifier: str, offset: int, length: int
    ) -> Iterator[memoryview]:
        return self._disk("read", resource_identifier).read_pieces(
            resource_identifier, offset, length
        )

    def open_chunk(
        self, resource_identifier: str, token: str, offset: int, length: int
    ) -> contextlib.AbstractContextManager[ChunkWriter]:
        return self._disk("write", resource_identifier).open_chunk(
            resource_identifier, token, offset, length
        )

    def begin_write(self, resource_identifier: str, size: int, chunk_size: int) -> str:
        return self._disk("write", resource_identifier).begin_write(
            resource_identifier, size, chunk_size
        )

    def write_chunk(
        self,
        resource_identifier: str,
        token: str,
        offset: int,
        data: bytes | memoryview,
        digest: bytes,
    ) -> str | None:
        return self._disk("write", resource_identifier).write_chunk(
            resource_identifier, token, offset, data, digest
        )

    def commit_write(
        self,
        resource_identifier: str,
        token: str,
        size: int,
        chunks: Sequence[WrittenChunk],
        verify: VerifyLevel = "checksum",
    ) -> None:
        self._disk("commit", resource_identifier).commit_write(
            resource_identifier, token, size, chunks, verify
        )

    def abort_write(self, resource_identifier: str, token: str) -> None:
        self._disk("abort", resource_identifier).abort_write(resource_identifier, token)

    def discard_stale(self, resource_identifier: str, keep: str | None = None) -> int:
        return self._disk("clean up", resource_identifier).discard_stale(resource_identifier, keep)

    def put_small(
        self,
        resource_identifier: str,
        data: bytes,
        digest: bytes,
        verify: VerifyLevel = "checksum",
    ) -> None:
        self._disk("write", resource_identifier).put_small(
            resource_identifier, data, digest, verify
        )

    def can_copy_from(self, source: TransferAccessor) -> bool:
        return self.local_disk is not None and self.local_disk.can_copy_from(source)

    def copy_from(
        self,
        source: TransferAccessor,
        source_identifier: str,
        resource_identifier: str,
        size: int,
        verify: VerifyLevel = "checksum",
    ) -> None:
        self._disk("copy", resource_identifier).copy_from(
            source, source_identifier, resource_identifier, size, verify
        )

    def checksum(self, resource_identifier: str) -> str | None:
        return self._disk("checksum", resource_identifier).checksum(resource_identifier)


class _Mount(DiskAccessor):
    """The share's local mount: a disk accessor whose messages name the accsyn location."""

    def __init__(self, root: str, description: str) -> None:
        super().__init__(root)
        self._description = description

    def describe(self) -> str:
        return self._description
