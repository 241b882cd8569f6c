"""One conformance suite for every accessor (disk, SFTP, S3, accsyn through its mount).

Each test runs against every backend on a fresh root, on real servers (OpenSSH's sshd,
moto's S3 server). Backend-specific behaviour (host keys, S3 retries, disk errors) is in
the per-backend modules.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import gc
import hashlib
import inspect

import ftrack_api.data
import ftrack_api.exception as fe
import ftrack_api.symbol
import pytest
from ftrack_transfer.accessors import accessor_class, available
from ftrack_transfer.accessors.base import (
    Checksum,
    ChunkedWrite,
    RangedRead,
    ServerSideCopy,
    StreamedRead,
    StreamedWrite,
    TransferAccessor,
    WrittenChunk,
    supports,
)
from ftrack_transfer.accessors.digests import SHA256
from ftrack_transfer.accessors.disk import DiskAccessor, local_disk
from ftrack_transfer.accessors.errors import (
    ContainerNotEmptyError,
    ParentResourceNotFoundError,
    PermissionDeniedError,
    ResourceInvalidError,
    ResourceNotFoundError,
    UnsafeResourceIdentifierError,
    UnsupportedOperationError,
    VerificationError,
)

from tests.fixtures.storage import KINDS, StorageCase, read_only_directory

from .common import (
    CHUNK,
    MiB,
    chunks_of,
    payload,
    read_file,
    upload,
    write_chunks,
    write_file,
)

LARGE = 12 * MiB  # three 5 MiB chunks, the last one short


# -- declaration -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_registered_with_options_matching_the_constructor(kind: str) -> None:
    cls = accessor_class(kind)
    assert kind in available()
    assert cls.name == kind
    assert issubclass(cls, TransferAccessor)
    parameters = inspect.signature(cls.__init__).parameters
    names = [o.name for o in cls.options]
    assert len(names) == len(set(names))
    assert set(names) == set(parameters) - {"self"}
    for option in cls.options:
        parameter = parameters[option.name]
        assert option.required == (parameter.default is inspect.Parameter.empty), option.name
    assert not cls.__abstractmethods__


def test_capabilities(any_accessor: TransferAccessor) -> None:
    assert supports(any_accessor, RangedRead)
    assert supports(any_accessor, ChunkedWrite)
    has_hash = isinstance(any_accessor, Checksum)
    assert has_hash == (not any_accessor.storage_key().startswith("sftp:"))
    assert isinstance(any_accessor, ServerSideCopy) == has_hash
    # S3 needs a chunk's digest before its first byte, so it takes whole chunks.
    streams = not any_accessor.storage_key().startswith("s3:")
    assert supports(any_accessor, StreamedRead) == streams
    assert supports(any_accessor, StreamedWrite) == streams
    assert any_accessor.describe()
    any_accessor.check()


# -- files -------------------------------------------------------------------------------


def test_empty_root(any_accessor: TransferAccessor) -> None:
    assert any_accessor.list("") == []
    assert any_accessor.exists("")
    assert any_accessor.is_container("")
    assert not any_accessor.is_file("")


def test_small_file_round_trip(any_accessor: TransferAccessor) -> None:
    write_file(any_accessor, "a/b/small.txt", b"hello world")
    assert any_accessor.exists("a/b/small.txt")
    assert any_accessor.is_file("a/b/small.txt")
    assert not any_accessor.is_container("a/b/small.txt")
    assert any_accessor.is_container("a/b")
    assert any_accessor.stat("a/b/small.txt").size == 11
    assert read_file(any_accessor, "a/b/small.txt") == b"hello world"
    assert any_accessor.list("") == ["a"]
    assert any_accessor.list("a/b") == ["a/b/small.txt"]


def test_empty_file(any_accessor: TransferAccessor) -> None:
    write_file(any_accessor, "empty.bin", b"")
    assert any_accessor.is_file("empty.bin")
    assert any_accessor.stat("empty.bin").size == 0
    assert read_file(any_accessor, "empty.bin") == b""
    upload(any_accessor, "empty2.bin", b"")
    assert any_accessor.stat("empty2.bin").size == 0


def test_large_file_streams_in_and_out(any_accessor: TransferAccessor) -> None:
    data = payload(LARGE, seed=1)
    write_file(any_accessor, "big/plate.exr", data)
    assert any_accessor.list("big") == ["big/plate.exr"]  # no temporary names left
    assert any_accessor.stat("big/plate.exr").size == LARGE
    assert read_file(any_accessor, "big/plate.exr", piece=MiB) == data
    stream = any_accessor.open("big/plate.exr", "rb")
    stream.seek(LARGE - 10)
    assert stream.read() == data[-10:]
    stream.seek(3)
    assert stream.tell() == 3
    assert stream.read(5) == data[3:8]
    stream.close()


def test_overwrite_replaces_whole_file(any_accessor: TransferAccessor) -> None:
    write_file(any_accessor, "f.bin", payload(100, 1))
    write_file(any_accessor, "f.bin", b"short")
    assert read_file(any_accessor, "f.bin") == b"short"


def test_unicode_and_spaces(any_accessor: TransferAccessor) -> None:
    name = "dir with space/ünïcødé 漢字 file (v2).exr"
    write_file(any_accessor, name, b"data")
    assert any_accessor.list("dir with space") == [name]
    assert read_file(any_accessor, name) == b"data"
    assert any_accessor.get_container(name) == "dir with space"
    any_accessor.remove(name)
    assert not any_accessor.exists(name)


def test_unsupported_open_mode(any_accessor: TransferAccessor) -> None:
    with pytest.raises(UnsupportedOperationError, match="'ab'"):
        any_accessor.open("x.txt", "ab")


def test_stock_ftrack_copy_loop(accessor_case: StorageCase, tmp_path) -> None:
    """What ``Location._add_data`` does, from a stock ftrack disk source."""
    source = DiskAccessor(str(tmp_path / "source"))
    (tmp_path / "source").mkdir()
    data = payload(7 * MiB + 3, seed=2)
    (tmp_path / "source" / "plate.exr").write_bytes(data)
    target = accessor_case.accessor
    resource_identifier = "proj/sq/sh/v001/plate.exr"

    container = target.get_container(resource_identifier)
    target.make_container(container)
    target.make_container(container)  # must ignore existing containers
    assert not target.exists(resource_identifier)
    source_data = source.open("plate.exr", "rb")
    target_data = target.open(resource_identifier, "wb")
    assert isinstance(source_data, ftrack_api.data.Data)
    assert isinstance(target_data, ftrack_api.data.Data)
    for chunk in iter(lambda: source_data.read(ftrack_api.symbol.CHUNK_SIZE), b""):
        target_data.write(chunk)
        assert not target.exists(resource_identifier)  # nothing final before close
    target_data.close()
    source_data.close()
    assert read_file(target, resource_identifier) == data

    # Reading through ftrack's own String buffer as the source works the same way.
    buffer = ftrack_api.data.String(b"from a String")
    target_data = target.open("proj/string.txt", "wb")
    target_data.write(buffer.read())
    target_data.close()
    assert read_file(target, "proj/string.txt") == b"from a String"


def test_dropped_writer_leaves_nothing(accessor_case: StorageCase) -> None:
    """A copy loop that raised before close(): the half-written file never appears."""
    accessor = accessor_case.accessor
    stream = accessor.open("dropped/file.bin", "wb")
    stream.write(payload(11 * MiB, 3))  # two blocks already handed to the storage
    del stream
    gc.collect()
    assert not accessor.exists("dropped/file.bin")
    if accessor_case.local_root is not None:
        leftovers = [p.name for p in accessor_case.local_path("dropped").iterdir()]
        assert leftovers == []


def test_concurrent_files(any_accessor: TransferAccessor) -> None:
    files = {f"many/{i:02d}.bin": payload(100_000 + i, i) for i in range(16)}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: write_file(any_accessor, *item), files.items()))
        found = dict(
            zip(files, pool.map(lambda ri: read_file(any_accessor, ri), files), strict=True)
        )
    assert found == files
    assert any_accessor.list("many") == sorted(files)


# -- containers and sequences -------------------------------------------------------------


def test_containers(any_accessor: TransferAccessor) -> None:
    any_accessor.make_container("a/b/c")
    any_accessor.make_container("a/b/c")  # idempotent
    assert any_accessor.is_container("a")
    assert any_accessor.is_container("a/b/c")
    assert any_accessor.list("a") == ["a/b"]
    assert any_accessor.list("a/b/c") == []
    any_accessor.make_container("a/b/d", recursive=False)
    assert any_accessor.list("a/b") == ["a/b/c", "a/b/d"]
    with pytest.raises(ParentResourceNotFoundError, match="x/y"):
        any_accessor.make_container("x/y", recursive=False)
    write_file(any_accessor, "a/file.txt", b"1")
    with pytest.raises(ResourceInvalidError):
        any_accessor.make_container("a/file.txt")
    with pytest.raises(ContainerNotEmptyError, match="'a/b'"):
        any_accessor.remove("a/b")
    any_accessor.remove("a/b/c")
    any_accessor.remove("a/b/d")
    any_accessor.remove("a/b")
    assert not any_accessor.exists("a/b")
    assert any_accessor.list("a") == ["a/file.txt"]


def test_get_container(any_accessor: TransferAccessor) -> None:
    assert any_accessor.get_container("a/b/c.exr") == "a/b"
    assert any_accessor.get_container("c.exr") == ""
    with pytest.raises(fe.AccessorParentResourceNotFoundError):
        any_accessor.get_container("")


def test_sequences(any_accessor: TransferAccessor) -> None:
    for frame in (1001, 1002, 1003):
        write_file(any_accessor, f"shot/plate.{frame:04d}.exr", b"frame")
    write_file(any_accessor, "shot/other.exr", b"x")
    assert any_accessor.is_sequence("shot/plate.%04d.exr")
    assert any_accessor.is_sequence("shot/plate.%d.exr")
    assert not any_accessor.is_sequence("shot/plate.%03d.exr")  # padding must match
    assert not any_accessor.is_sequence("shot/other.%04d.exr")
    assert not any_accessor.is_sequence("shot/plate.1001.exr")
    assert not any_accessor.is_sequence("nowhere/plate.%04d.exr")
    assert not any_accessor.exists("shot/plate.%04d.exr")
    assert any_accessor.list("shot") == [
        "shot/other.exr",
        "shot/plate.1001.exr",
        "shot/plate.1002.exr",
        "shot/plate.1003.exr",
    ]
    with pytest.raises(fe.AccessorResourceNotFoundError):
        any_accessor.remove("shot/plate.%04d.exr")  # ftrack tolerates this for sequences


# -- errors --------------------------------------------------------------------------------


def test_not_found(any_accessor: TransferAccessor) -> None:
    where = any_accessor.describe()
    for call in (
        lambda: any_accessor.open("missing.exr", "rb"),
        lambda: any_accessor.stat("missing.exr"),
        lambda: any_accessor.list("missing"),
        lambda: any_accessor.remove("missing.exr"),
        lambda: any_accessor.read_range("missing.exr", 0, 10),
        lambda: any_accessor.open("no/parent/missing.exr", "rb"),
    ):
        with pytest.raises(fe.AccessorResourceNotFoundError) as caught:
            call()
        assert isinstance(caught.value, ResourceNotFoundError)
        message = str(caught.value)
        assert "missing" in message
        assert where.split(" (")[0] in message
        assert "\n" not in message
    assert not any_accessor.exists("missing.exr")
    assert not any_accessor.is_file("missing.exr")
    assert not any_accessor.is_container("missing")


def test_wrong_kind(any_accessor: TransferAccessor) -> None:
    write_file(any_accessor, "d/file.txt", b"1")
    with pytest.raises(fe.AccessorResourceInvalidError):
        any_accessor.list("d/file.txt")
    with pytest.raises(fe.AccessorResourceInvalidError):
        any_accessor.stat("d")
    with pytest.raises(fe.AccessorResourceInvalidError):
        any_accessor.open("d", "wb")
    with pytest.raises(fe.AccessorResourceInvalidError):
        any_accessor.remove("")


UNSAFE = ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "a\x00b", "a\\b.txt", "C:/x"]


@pytest.mark.parametrize("identifier", UNSAFE)
def test_unsafe_identifiers_refused(any_accessor: TransferAccessor, identifier: str) -> None:
    calls = {
        "list": lambda: any_accessor.list(identifier),
        "exists": lambda: any_accessor.exists(identifier),
        "is_file": lambda: any_accessor.is_file(identifier),
        "open rb": lambda: any_accessor.open(identifier, "rb"),
        "open wb": lambda: any_accessor.open(identifier, "wb"),
        "stat": lambda: any_accessor.stat(identifier),
        "remove": lambda: any_accessor.remove(identifier),
        "make_container": lambda: any_accessor.make_container(identifier),
        "get_container": lambda: any_accessor.get_container(identifier),
        "read_range": lambda: any_accessor.read_range(identifier, 0, 1),
        "begin_write": lambda: any_accessor.begin_write(identifier, 1, CHUNK),
    }
    for name, call in calls.items():
        with pytest.raises(UnsafeResourceIdentifierError) as caught:
            call()
        assert repr(identifier) in str(caught.value), name
        assert isinstance(caught.value, fe.AccessorResourceIdentifierError)


# S3 has no directories to make read-only: its AccessDenied is tested in test_s3.
@pytest.mark.parametrize("accessor_case", ["disk", "sftp", "accsyn"], indirect=True)
def test_permission_denied(accessor_case: StorageCase) -> None:
    accessor = accessor_case.accessor
    accessor.make_container("locked")
    with read_only_directory(accessor_case.local_path("locked")):
        for call in (
            lambda: write_file(accessor, "locked/new.exr", b"data"),
            lambda: accessor.make_container("locked/sub"),
            lambda: accessor.begin_write("locked/new.exr", 10, CHUNK),
        ):
            with pytest.raises(fe.AccessorPermissionDeniedError) as caught:
                call()
            assert isinstance(caught.value, PermissionDeniedError)
            assert "locked" in str(caught.value)
    assert accessor.list("locked") == []


# -- RangedRead -------------------------------------------------------------------------------


def test_ranged_reads(any_accessor: TransferAccessor) -> None:
    data = payload(LARGE, 4)
    upload(any_accessor, "r.bin", data)
    assert any_accessor.read_range("r.bin", 0, 10) == data[:10]
    assert any_accessor.read_range("r.bin", CHUNK - 3, 7) == data[CHUNK - 3 : CHUNK + 4]
    assert any_accessor.read_range("r.bin", LARGE - 5, 100) == data[-5:]  # short at the end
    assert any_accessor.read_range("r.bin", LARGE, 10) == b""
    assert any_accessor.read_range("r.bin", 5, 0) == b""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        pieces = list(
            pool.map(lambda o: any_accessor.read_range("r.bin", o, CHUNK), range(0, LARGE, CHUNK))
        )
    assert b"".join(pieces) == data


# -- ChunkedWrite --------------------------------------------------------------------------


def test_chunked_write_parallel_out_of_order(accessor_case: StorageCase) -> None:
    accessor = accessor_case.accessor
    data = payload(LARGE, 5)
    token = accessor.begin_write("shot/v001/plate.exr", LARGE, CHUNK)
    assert isinstance(token, str) and len(token) < 200
    pieces = chunks_of(data)
    written = write_chunks(
        accessor, "shot/v001/plate.exr", token, [pieces[2], pieces[0], pieces[1]]
    )
    assert not accessor.exists("shot/v001/plate.exr")  # visible only after the commit
    assert accessor.list("shot/v001") == []
    accessor.commit_write("shot/v001/plate.exr", token, LARGE, written, "checksum")
    assert accessor.list("shot/v001") == ["shot/v001/plate.exr"]
    assert read_file(accessor, "shot/v001/plate.exr") == data
    if accessor_case.local_root is not None:
        assert [p.name for p in accessor_case.local_path("shot/v001").iterdir()] == ["plate.exr"]


@pytest.mark.parametrize("verify", ["size", "checksum", "full"])
def test_commit_verify_levels(any_accessor: TransferAccessor, verify: str) -> None:
    data = payload(LARGE, 6)
    upload(any_accessor, f"{verify}.bin", data, verify=verify)
    assert any_accessor.read_range(f"{verify}.bin", 0, LARGE) == data


def test_abort_leaves_nothing(accessor_case: StorageCase) -> None:
    accessor = accessor_case.accessor
    data = payload(LARGE, 7)
    token = accessor.begin_write("aborted/file.bin", LARGE, CHUNK)
    write_chunks(accessor, "aborted/file.bin", token, chunks_of(data)[:2])
    accessor.abort_write("aborted/file.bin", token)
    accessor.abort_write("aborted/file.bin", token)  # safe twice
    assert not accessor.exists("aborted/file.bin")
    if accessor_case.local_root is not None:
        assert list(accessor_case.local_path("aborted").iterdir()) == []
    else:
        uploads = accessor.client.list_multipart_uploads(Bucket=accessor.bucket)
        assert not uploads.get("Uploads")
    if accessor_case.kind != "s3":  # moto answers 500 where S3 says NoSuchUpload
        with pytest.raises(fe.AccessorResourceNotFoundError, match="begin the write again"):
            accessor.write_chunk("aborted/file.bin", token, 0, b"x", accessor.digest_kind.of(b"x"))


def test_discard_stale_removes_unnamed_writes_but_keeps_the_journalled_one(
    accessor_case: StorageCase,
) -> None:
    """After a crash, writes whose token was never journalled are cleaned up; the one the
    journal names goes on and commits."""
    accessor = accessor_case.accessor
    data = payload(LARGE, 12)
    lost = [accessor.begin_write("shot/frame.exr", LARGE, CHUNK) for _ in range(2)]
    kept = accessor.begin_write("shot/frame.exr", LARGE, CHUNK)
    other = accessor.begin_write("shot/frame.exr.bak", LARGE, CHUNK)
    assert accessor.discard_stale("shot/frame.exr", keep=kept) == len(lost)
    assert accessor.discard_stale("shot/frame.exr", keep=kept) == 0
    written = write_chunks(accessor, "shot/frame.exr", kept, chunks_of(data))
    accessor.commit_write("shot/frame.exr", kept, LARGE, written, "checksum")
    assert accessor.read_range("shot/frame.exr", 0, LARGE) == data
    # Another file's write, with a name that starts the same, is not touched.
    assert accessor.discard_stale("shot/frame.exr") == 0
    accessor.abort_write("shot/frame.exr.bak", other)
    if accessor_case.local_root is not None:
        assert sorted(p.name for p in accessor_case.local_path("shot").iterdir()) == ["frame.exr"]
    else:
        assert not accessor.client.list_multipart_uploads(Bucket=accessor.bucket).get("Uploads")


def test_resumed_write_with_a_new_accessor(accessor_case: StorageCase) -> None:
    """A restarted process continues a write from the journalled token."""
    data = payload(LARGE, 8)
    pieces = chunks_of(data)
    first = accessor_case.accessor
    token = first.begin_write("resumed.bin", LARGE, CHUNK)
    before = write_chunks(first, "resumed.bin", token, pieces[:1])
    first.close()
    second = accessor_case.new()
    after = write_chunks(second, "resumed.bin", token, pieces[1:])
    second.commit_write("resumed.bin", token, LARGE, before + after, "checksum")
    assert second.read_range("resumed.bin", 0, LARGE) == data


def _levels_that_hash(accessor: TransferAccessor) -> list[str]:
    """Levels at which commit compares the chunks' digests."""
    # "checksum" compares hashes only where the storage has them without a read-back. A
    # local disk instead reads each chunk back as it arrives (tested in test_disk.py).
    if isinstance(accessor, Checksum) and local_disk(accessor) is None:
        return ["checksum", "full"]
    return ["full"]


def test_wrong_chunk_digest_fails_verification(any_accessor: TransferAccessor) -> None:
    data = payload(LARGE, 9)
    for level in _levels_that_hash(any_accessor):
        token = any_accessor.begin_write("verified.bin", LARGE, CHUNK)
        written = write_chunks(any_accessor, "verified.bin", token, chunks_of(data))
        written.sort(key=lambda c: c.offset)
        bad = dataclasses.replace(written[1], digest=any_accessor.digest_kind.of(b"other"))
        with pytest.raises(VerificationError) as caught:
            any_accessor.commit_write(
                "verified.bin", token, LARGE, [written[0], bad, written[2]], level
            )
        assert "verified.bin" in str(caught.value)
        assert not any_accessor.exists("verified.bin")
        assert any_accessor.list("") == []


def test_incomplete_writes_fail_verification(any_accessor: TransferAccessor) -> None:
    data = payload(LARGE, 10)
    token = any_accessor.begin_write("partial.bin", LARGE, CHUNK)
    written = sorted(
        write_chunks(any_accessor, "partial.bin", token, chunks_of(data)[:2]),
        key=lambda c: c.offset,
    )
    with pytest.raises(VerificationError, match=r"partial\.bin"):
        any_accessor.commit_write("partial.bin", token, LARGE, written, "size")
    assert not any_accessor.exists("partial.bin")

    token = any_accessor.begin_write("partial.bin", LARGE, CHUNK)
    written = write_chunks(any_accessor, "partial.bin", token, chunks_of(data)[:2])
    claimed = [
        *written,
        WrittenChunk(2 * CHUNK, LARGE - 2 * CHUNK, any_accessor.digest_kind.of(data[2 * CHUNK :])),
    ]
    with pytest.raises(VerificationError, match=r"partial\.bin"):
        any_accessor.commit_write("partial.bin", token, LARGE, claimed, "size")
    assert not any_accessor.exists("partial.bin")


def test_put_small(any_accessor: TransferAccessor) -> None:
    any_accessor.put_small("small/a.txt", b"abc", any_accessor.digest_kind.of(b"abc"))
    assert read_file(any_accessor, "small/a.txt") == b"abc"
    any_accessor.put_small("small/a.txt", b"abcd", any_accessor.digest_kind.of(b"abcd"), "full")
    assert read_file(any_accessor, "small/a.txt") == b"abcd"
    with pytest.raises(VerificationError):
        any_accessor.put_small("small/b.txt", b"abc", any_accessor.digest_kind.of(b"xyz"), "full")
    assert not any_accessor.exists("small/b.txt")


# -- StreamedRead and StreamedWrite ----------------------------------------------------------

STREAMING = ["disk", "sftp", "sftp_paramiko", "accsyn"]


def _joined(accessor: StreamedRead, resource_identifier: str, offset: int, length: int) -> bytes:
    # A piece is only valid until the next one is asked for, so each is copied here.
    return b"".join(bytes(p) for p in accessor.read_pieces(resource_identifier, offset, length))


@pytest.mark.parametrize("accessor_case", STREAMING, indirect=True)
def test_read_pieces_equal_the_range(any_accessor: TransferAccessor) -> None:
    assert isinstance(any_accessor, StreamedRead)
    data = payload(LARGE, 13)
    upload(any_accessor, "pieces.bin", data)
    for offset, length in [(0, LARGE), (3, CHUNK), (CHUNK + 7, 2 * MiB + 5), (0, 0)]:
        got = _joined(any_accessor, "pieces.bin", offset, length)
        assert (
            got
            == data[offset : offset + length]
            == any_accessor.read_range("pieces.bin", offset, length)
        )
    # Past the end the stream is shorter, as a ranged read is.
    assert _joined(any_accessor, "pieces.bin", LARGE - 10, CHUNK) == data[-10:]
    with pytest.raises(ResourceNotFoundError, match=r"missing\.bin"):
        _joined(any_accessor, "missing.bin", 0, 10)


@pytest.mark.parametrize("accessor_case", STREAMING, indirect=True)
def test_read_pieces_stopped_early_leaves_the_accessor_usable(
    any_accessor: TransferAccessor,
) -> None:
    assert isinstance(any_accessor, StreamedRead)
    data = payload(LARGE, 14)
    upload(any_accessor, "early.bin", data)
    # Many early stops, more than the connections a pool holds: each must give its
    # connection back settled, or the reads after it would get another read's replies.
    for _ in range(6):
        with contextlib.closing(any_accessor.read_pieces("early.bin", 0, LARGE)) as stream:
            first = bytes(next(stream))
        assert first == data[: len(first)]
        assert any_accessor.read_range("early.bin", CHUNK, 100) == data[CHUNK : CHUNK + 100]
    assert _joined(any_accessor, "early.bin", 0, LARGE) == data


def _write_in_pieces(
    accessor: StreamedWrite, resource_identifier: str, token: str, offset: int, data: bytes
) -> WrittenChunk:
    piece = 300 * 1024  # not a divisor of the chunk, so the last piece is short
    with accessor.open_chunk(resource_identifier, token, offset, len(data)) as writer:
        for start in range(0, len(data), piece):
            writer.write(memoryview(data)[start : start + piece])
        receipt = writer.finish()
    return WrittenChunk(offset, len(data), accessor.digest_kind.of(data), receipt)  # type: ignore[attr-defined]


@pytest.mark.parametrize("accessor_case", STREAMING, indirect=True)
def test_chunks_written_in_pieces_commit_to_the_file(any_accessor: TransferAccessor) -> None:
    assert isinstance(any_accessor, StreamedWrite)
    data = payload(LARGE, 15)
    for verify in ("checksum", "full"):
        name = f"streamed/{verify}.bin"
        token = any_accessor.begin_write(name, LARGE, CHUNK)
        written = [
            _write_in_pieces(any_accessor, name, token, offset, chunk)
            for offset, chunk in reversed(chunks_of(data))
        ]
        any_accessor.commit_write(name, token, LARGE, written, verify)
        assert any_accessor.read_range(name, 0, LARGE) == data
    assert any_accessor.list("streamed") == ["streamed/checksum.bin", "streamed/full.bin"]


@pytest.mark.parametrize("accessor_case", STREAMING, indirect=True)
def test_chunk_abandoned_mid_way_is_written_again(any_accessor: TransferAccessor) -> None:
    """A chunk left without finish (its source failed) is rewritten by the retry; the
    accessor goes on serving other requests in between."""
    assert isinstance(any_accessor, StreamedWrite)
    data = payload(LARGE, 16)
    token = any_accessor.begin_write("retried.bin", LARGE, CHUNK)
    with (
        pytest.raises(RuntimeError, match="source went away"),
        any_accessor.open_chunk("retried.bin", token, 0, CHUNK) as writer,
    ):
        writer.write(b"\0" * MiB)
        raise RuntimeError("source went away")
    assert not any_accessor.exists("retried.bin")  # nothing under the final name
    written = [
        _write_in_pieces(any_accessor, "retried.bin", token, o, c) for o, c in chunks_of(data)
    ]
    any_accessor.commit_write("retried.bin", token, LARGE, written, "full")
    assert any_accessor.read_range("retried.bin", 0, LARGE) == data


@pytest.mark.parametrize("accessor_case", STREAMING, indirect=True)
def test_open_chunk_of_an_aborted_write_names_the_fix(any_accessor: TransferAccessor) -> None:
    assert isinstance(any_accessor, StreamedWrite)
    token = any_accessor.begin_write("gone.bin", LARGE, CHUNK)
    any_accessor.abort_write("gone.bin", token)
    with (
        pytest.raises(fe.AccessorResourceNotFoundError, match="begin the write again"),
        any_accessor.open_chunk("gone.bin", token, 0, 1) as writer,
    ):
        writer.write(b"x")
        writer.finish()
    assert not any_accessor.exists("gone.bin")


# -- ServerSideCopy and Checksum -------------------------------------------------------------


# SFTP has no server-side copy (OpenSSH's copy-data extension is not used).
@pytest.mark.parametrize("accessor_case", ["disk", "s3", "accsyn"], indirect=True)
def test_server_side_copy(accessor_case: StorageCase) -> None:
    accessor = accessor_case.accessor
    assert isinstance(accessor, ServerSideCopy)
    data = payload(LARGE, 11)
    upload(accessor, "src/plate.exr", data)
    other = accessor_case.new()
    assert accessor.can_copy_from(other)
    for verify in ("size", "checksum", "full"):
        accessor.copy_from(other, "src/plate.exr", f"dst/{verify}/plate.exr", LARGE, verify)
        assert read_file(accessor, f"dst/{verify}/plate.exr") == data
    with pytest.raises(fe.AccessorError):
        accessor.copy_from(other, "src/plate.exr", "dst/wrong-size.exr", LARGE + 1, "size")
    assert not accessor.exists("dst/wrong-size.exr")


# SFTP has no content hash without reading the data back.
@pytest.mark.parametrize("accessor_case", ["disk", "s3", "accsyn"], indirect=True)
def test_checksum(any_accessor: TransferAccessor) -> None:
    assert isinstance(any_accessor, Checksum)
    data = payload(LARGE, 12)
    upload(any_accessor, "sum.bin", data)
    value = any_accessor.checksum("sum.bin")
    whole = "sha256:" + hashlib.sha256(data).hexdigest()
    parts = SHA256.composite([SHA256.of(d) for _, d in chunks_of(data)])
    assert value in (whole, f"sha256-composite:{parts}")
    with pytest.raises(fe.AccessorResourceNotFoundError):
        any_accessor.checksum("missing.bin")


def test_filesystem_paths_and_urls(accessor_case: StorageCase) -> None:
    accessor = accessor_case.accessor
    write_file(accessor, "shot 1/plate.exr", b"x")
    if accessor_case.kind in ("disk", "accsyn"):
        path = accessor.get_filesystem_path("shot 1/plate.exr")
        assert path == str(accessor_case.local_path("shot 1/plate.exr"))
        assert accessor.get_url("shot 1/plate.exr").startswith("file:///")
        assert accessor.get_url("shot 1/plate.exr").endswith("/shot%201/plate.exr")
    else:
        with pytest.raises(fe.AccessorUnsupportedOperationError):
            accessor.get_filesystem_path("shot 1/plate.exr")
        url = accessor.get_url("shot 1/plate.exr")
        assert url.startswith("sftp://" if accessor_case.kind == "sftp" else "http://127.0.0.1:")
        assert "shot%201/plate.exr" in url
    with pytest.raises(UnsafeResourceIdentifierError):
        accessor.get_url("../x")
