"""Disk accessor behaviour beyond the conformance suite: containment through symbolic
links, unmounted roots, disk-full and permission messages, parallel chunk writes and
in-kernel copies."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import resource
import socket
import sys
from pathlib import Path

import pytest
from ftrack_transfer.accessors import disk, writeback
from ftrack_transfer.accessors.disk import READ_BACK, DiskAccessor
from ftrack_transfer.accessors.errors import (
    AccessorConfigurationError,
    OperationFailedError,
    PermissionDeniedError,
    UnsafeResourceIdentifierError,
    VerificationError,
)

from tests.fixtures.storage import StorageCase, read_only_directory

from .common import MiB, chunks_of, payload, read_file, upload, write_chunks, write_file


def test_identity(tmp_path: Path) -> None:
    accessor = DiskAccessor(str(tmp_path / "x" / ".." / "root"))
    assert accessor.root == str(tmp_path / "root")
    assert accessor.storage_key() == f"disk:{socket.gethostname()}"
    assert accessor.describe() == f"disk {tmp_path / 'root'}"


def test_symbolic_links_cannot_leave_the_root(disk_case: StorageCase, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    # A sibling whose name starts like the root: a string prefix check would let it pass.
    sibling = Path(str(disk_case.local_root) + "2")
    sibling.mkdir()
    (disk_case.local_root / "link").symlink_to(outside)
    (disk_case.local_root / "sib").symlink_to(sibling)
    (disk_case.local_root / "file-link.txt").symlink_to(outside / "secret.txt")
    accessor = disk_case.accessor
    for identifier in ("link/secret.txt", "sib/x.txt", "file-link.txt", "link"):
        with pytest.raises(UnsafeResourceIdentifierError, match="symbolic link") as caught:
            accessor.open(identifier, "rb")
        assert repr(identifier) in str(caught.value)
    with pytest.raises(UnsafeResourceIdentifierError):
        write_file(accessor, "link/new.txt", b"x")
    assert not (outside / "new.txt").exists()
    # Links that stay inside are fine.
    (disk_case.local_root / "real").mkdir()
    (disk_case.local_root / "inside").symlink_to(disk_case.local_root / "real")
    write_file(accessor, "inside/ok.txt", b"ok")
    assert (disk_case.local_root / "real" / "ok.txt").read_bytes() == b"ok"


def test_unmounted_root_is_never_created(tmp_path: Path) -> None:
    root = tmp_path / "mnt" / "projects"
    accessor = DiskAccessor(str(root))
    with pytest.raises(AccessorConfigurationError, match="mounted"):
        accessor.make_container("shots")
    with pytest.raises(AccessorConfigurationError, match="mounted"):
        write_file(accessor, "shots/a.exr", b"x")
    with pytest.raises(AccessorConfigurationError, match="mounted"):
        accessor.check()
    assert not root.exists()


def test_disk_full_message(disk_case: StorageCase, monkeypatch: pytest.MonkeyPatch) -> None:
    accessor = disk_case.accessor
    real_pwrite = os.pwrite
    monkeypatch.setattr(
        os,
        "pwrite",
        lambda fd, data, offset: (
            (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
            if offset >= MiB
            else real_pwrite(fd, data, offset)
        ),
    )
    accessor.stream_block_size = MiB
    with pytest.raises(OperationFailedError) as caught:
        write_file(accessor, "full/plate.exr", payload(3 * MiB))
    message = str(caught.value)
    assert "'full/plate.exr'" in message
    assert accessor.describe() in message
    assert "No space left on device" in message and "free space" in message
    assert list((disk_case.local_root / "full").iterdir()) == []


def test_file_size_limit_is_a_clean_failure(disk_case: StorageCase) -> None:
    """A real write failure from the kernel (a file-size limit), not an injected one."""
    accessor = disk_case.accessor
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * MiB, hard))
    try:
        with pytest.raises(OperationFailedError) as caught:
            upload(accessor, "limited.bin", payload(12 * MiB))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert "'limited.bin'" in str(caught.value) and "File too large" in str(caught.value)
    assert not accessor.exists("limited.bin")


def test_permission_denied_message(disk_case: StorageCase) -> None:
    accessor = disk_case.accessor
    accessor.make_container("ro")
    with (
        read_only_directory(disk_case.local_root / "ro"),
        pytest.raises(PermissionDeniedError) as caught,
    ):
        write_file(accessor, "ro/a.exr", b"x")
    message = str(caught.value)
    assert message.startswith("Cannot write 'ro/a.exr' on disk ")
    assert "\n" not in message


def test_many_threads_write_one_file(disk_case: StorageCase) -> None:
    accessor = disk_case.accessor
    data = payload(16 * MiB, 1)
    token = accessor.begin_write("parallel.bin", len(data), MiB // 4)
    written = write_chunks(accessor, "parallel.bin", token, chunks_of(data, MiB // 4), threads=16)
    accessor.commit_write("parallel.bin", token, len(data), written, "full")
    assert (disk_case.local_root / "parallel.bin").read_bytes() == data


def test_copy_between_roots_on_one_host(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    source, target = DiskAccessor(str(tmp_path / "a")), DiskAccessor(str(tmp_path / "b"))
    data = payload(9 * MiB, 2)
    write_file(source, "plate.exr", data)
    assert target.can_copy_from(source)
    target.copy_from(source, "plate.exr", "shots/plate.exr", len(data), "checksum")
    assert read_file(target, "shots/plate.exr") == data
    assert target.checksum("shots/plate.exr") == source.checksum("plate.exr")
    assert sorted(p.name for p in (tmp_path / "b" / "shots").iterdir()) == ["plate.exr"]


def test_committed_files_are_durable_and_complete(disk_case: StorageCase) -> None:
    accessor = disk_case.accessor
    data = payload(2 * MiB + 1, 3)
    accessor.put_small("d/x.bin", data, accessor.digest_kind.of(data), "full")
    path = disk_case.local_root / "d" / "x.bin"
    assert path.read_bytes() == data
    with contextlib.suppress(AttributeError):
        assert oct(path.stat().st_mode & 0o777) != "0o000"


def test_a_chunk_the_disk_stores_wrongly_is_refused_on_arrival(
    disk_case: StorageCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    accessor = disk_case.accessor
    data = payload(3 * MiB, 11)
    real_pwrite = os.pwrite

    def flip_a_byte(fd: int, piece: memoryview, offset: int) -> int:
        # A disk or file system that corrupts data: one byte of the second MiB changes.
        if offset == MiB:
            piece = memoryview(bytes([piece[0] ^ 0xFF]) + piece[1:].tobytes())
        return real_pwrite(fd, piece, offset)

    token = accessor.begin_write("bad/plate.exr", len(data), len(data))
    monkeypatch.setattr(os, "pwrite", flip_a_byte)
    with pytest.raises(VerificationError) as caught:
        accessor.write_chunk("bad/plate.exr", token, 0, data, accessor.digest_kind.of(data))
    message = str(caught.value)
    assert "'bad/plate.exr'" in message and accessor.describe() in message
    assert "reads back different from what was written" in message
    assert not (disk_case.local_root / "bad" / "plate.exr").exists()


def test_chunks_not_read_back_on_arrival_are_hashed_at_commit(disk_case: StorageCase) -> None:
    """Chunks journalled by a version that did not read back on arrival (no receipt) are
    checked against their digests when the write is committed."""
    accessor = disk_case.accessor
    data = payload(2 * MiB, 12)
    token = accessor.begin_write("old/plate.exr", len(data), MiB)
    written = write_chunks(accessor, "old/plate.exr", token, chunks_of(data, MiB))
    assert {chunk.receipt for chunk in written} == {READ_BACK}
    older = sorted((dataclasses.replace(c, receipt=None) for c in written), key=lambda c: c.offset)
    wrong = [older[0], dataclasses.replace(older[1], digest=accessor.digest_kind.of(b"other"))]
    with pytest.raises(VerificationError, match="differs from the source"):
        accessor.commit_write("old/plate.exr", token, len(data), wrong, "checksum")
    assert not (disk_case.local_root / "old" / "plate.exr").exists()

    token = accessor.begin_write("old/plate.exr", len(data), MiB)
    written = write_chunks(accessor, "old/plate.exr", token, chunks_of(data, MiB))
    older = [dataclasses.replace(c, receipt=None) for c in written]
    accessor.commit_write("old/plate.exr", token, len(data), older, "checksum")
    assert (disk_case.local_root / "old" / "plate.exr").read_bytes() == data


def test_each_verified_chunk_is_handed_to_the_device_before_the_commit(
    disk_case: StorageCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So the fsync at commit has little left to write; a chunk that reads back wrong is
    not handed on."""
    accessor = disk_case.accessor
    data = payload(3 * MiB, 13)
    started: list[tuple[int, int, bool]] = []

    def recorded(fd: int, offset: int, length: int) -> bool:
        started.append((offset, length, writeback.start_writeback(fd, offset, length)))
        return started[-1][2]

    monkeypatch.setattr(disk, "start_writeback", recorded)
    token = accessor.begin_write("wb/plate.exr", len(data), MiB)
    write_chunks(accessor, "wb/plate.exr", token, chunks_of(data, MiB))
    accepted = sys.platform.startswith("linux")  # elsewhere it is a no-op
    assert sorted(started) == [(0, MiB, accepted), (MiB, MiB, accepted), (2 * MiB, MiB, accepted)]


def test_starting_writeback_is_only_a_hint(tmp_path: Path) -> None:
    """Where the kernel refuses (here a pipe, which has no device), nothing is raised."""
    reading, writing = os.pipe()
    try:
        assert writeback.start_writeback(reading, 0, MiB) is False
    finally:
        os.close(reading)
        os.close(writing)
    with open(tmp_path / "f.bin", "wb") as file:
        file.write(b"x" * 4096)
        file.flush()
        assert writeback.start_writeback(file.fileno(), 0, 0) is False  # nothing to write
        assert writeback.start_writeback(file.fileno(), 0, 4096) is sys.platform.startswith("linux")
