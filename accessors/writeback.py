"""Start writing a file's range to its device without waiting for it.

A chunked write is made durable by one ``fsync`` at commit. Left alone, the kernel keeps
a whole transfer's pages dirty until then (background writeback starts only past a share
of RAM), so the commit waits for every byte to reach the device: about a quarter of a
second per GiB on a fast local disk, far longer on a network file system. Starting
writeback of each chunk as it lands overlaps that work with the transfer; the ``fsync``
at commit still decides durability.

Linux has ``sync_file_range`` for this, which Python's ``os`` does not expose. Elsewhere,
or where a file system refuses it, :func:`start_writeback` does nothing: it is only a
hint.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

#: ``SYNC_FILE_RANGE_WRITE``: submit the range's dirty pages for writing; do not wait.
_SYNC_FILE_RANGE_WRITE = 2


def _load() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The process's own symbols include libc's; find_library would run ldconfig (a
        # subprocess, about 20 ms) at every start of the command line.
        function = ctypes.CDLL(None).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # ctypes releases the GIL for the call


_sync_file_range = _load()


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing ``[offset, offset + length)`` of *fd* to its
    device; whether it accepted. Never raises and never waits for the device."""
    if _sync_file_range is None or length <= 0:
        return False
    return _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0
