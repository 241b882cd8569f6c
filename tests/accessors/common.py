"""Small functions shared by the accessor tests."""

from __future__ import annotations

import concurrent.futures
import random
from collections.abc import Iterable

from ftrack_transfer.accessors.base import ChunkedWrite, WrittenChunk

MiB = 1024 * 1024
#: S3's minimum part size, so one chunk size works for every backend.
CHUNK = 5 * MiB


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def write_file(accessor, resource_identifier: str, data: bytes, piece: int = MiB) -> None:
    """Write through ``open(..., "wb")`` in 1 MiB writes, as ftrack's ``_add_data`` does."""
    stream = accessor.open(resource_identifier, "wb")
    for start in range(0, len(data), piece):
        stream.write(data[start : start + piece])
    stream.close()


def read_file(accessor, resource_identifier: str, piece: int | None = None) -> bytes:
    stream = accessor.open(resource_identifier, "rb")
    try:
        if piece is None:
            return stream.read()
        return b"".join(iter(lambda: stream.read(piece), b""))
    finally:
        stream.close()


def chunks_of(data: bytes, chunk: int = CHUNK) -> list[tuple[int, bytes]]:
    return [(o, data[o : o + chunk]) for o in range(0, len(data), chunk)] or [(0, b"")]


def write_chunks(
    accessor: ChunkedWrite,
    resource_identifier: str,
    token: str,
    pieces: Iterable[tuple[int, bytes]],
    threads: int = 4,
) -> list[WrittenChunk]:
    """Write *pieces* (offset, bytes) in parallel threads; return them as written."""

    def one(piece: tuple[int, bytes]) -> WrittenChunk:
        offset, data = piece
        digest = accessor.digest_kind.of(data)
        receipt = accessor.write_chunk(resource_identifier, token, offset, data, digest)
        return WrittenChunk(offset, len(data), digest, receipt)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, list(pieces)))


def upload(
    accessor: ChunkedWrite,
    resource_identifier: str,
    data: bytes,
    chunk: int = CHUNK,
    verify: str = "checksum",
) -> None:
    """A whole chunked write, chunks written out of order from several threads."""
    token = accessor.begin_write(resource_identifier, len(data), chunk)
    written = write_chunks(accessor, resource_identifier, token, reversed(chunks_of(data, chunk)))
    accessor.commit_write(resource_identifier, token, len(data), written, verify)  # type: ignore[arg-type]
