"""Source data sets: random bytes (incompressible), written once per work folder.

The data sets live under the ``hq`` location's root, so the same files serve the
transfers without ftrack and the ftrack sends. They are reused when a previous run left
them with the right sizes, and are read into the page cache before each case that uses
them, so they are there for every side alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

_BLOCK = 8 * 1024 * 1024
FRAME_START = 1001


@dataclasses.dataclass(frozen=True)
class DataSet:
    """Files under ``root / folder``; ``names`` relative to that folder."""

    root: Path
    folder: str
    names: tuple[str, ...]
    size: int  # of each file

    @property
    def path(self) -> Path:
        return self.root / self.folder

    @property
    def total(self) -> int:
        return self.size * len(self.names)

    def relative(self, name: str) -> str:
        """Resource identifier of a file under the data root (the hq location)."""
        return f"{self.folder}/{name}"

    def warm(self) -> DataSet:
        """Read every file once, so that the data is in the page cache for every side
        alike: data sets reused from an earlier run may have been evicted, and the side
        that runs first (ours) would otherwise pay for reading them from disk."""
        buffer = memoryview(bytearray(_BLOCK))
        for name in self.names:
            with open(self.path / name, "rb", buffering=0) as handle:
                while handle.readinto(buffer):
                    pass
        return self


def _write_random(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as out:
        left = size
        while left:
            n = min(_BLOCK, left)
            out.write(os.urandom(n))
            left -= n
    temporary.replace(path)


def single(root: Path, size: int) -> DataSet:
    name = f"single-{size}.bin"
    _write_random(root / "single" / name, size)
    return DataSet(root, "single", (name,), size)


def frames(root: Path, count: int, size: int) -> DataSet:
    """An image sequence ``plate.1001.exr`` ... in its own folder."""
    folder = f"seq-{count}x{size}"
    names = tuple(f"plate.{FRAME_START + i:04d}.exr" for i in range(count))
    for name in names:
        _write_random(root / folder / name, size)
    return DataSet(root, folder, names, size)


def small_files(root: Path, count: int, size: int) -> DataSet:
    folder = f"small-{count}x{size}"
    names = tuple(f"f{i:05d}.bin" for i in range(count))
    for name in names:
        _write_random(root / folder / name, size)
    return DataSet(root, folder, names, size)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def tree_bytes(path: Path) -> tuple[int, int]:
    """(files, bytes) under a local folder (what a destination received)."""
    files = total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            files += 1
            total += os.stat(os.path.join(folder, name)).st_size
    return files, total


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
