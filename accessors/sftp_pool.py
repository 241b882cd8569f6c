"""A thread-safe pool of SFTP connections, opened on first use and reused.

One paramiko stream is bound to one CPU core by its Python packet handling; parallel
chunks only go faster on parallel connections (each with its own transport thread and
its own server process). The pool hands one connection to one thread at a time, opens
new ones up to its size, and drops a connection that failed at the connection level so
the next attempt starts on a fresh one. :func:`read_streams_for_link` says how many of
them a large file read should keep busy.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator

import ftrack_api.exception

from .base import DEFAULT_STREAMS
from .sftp_connect import SftpConnection

#: Below this round trip one connection's SSH window (OpenSSH's is 2 MiB) carries more
#: than a gigabyte a second, so parallel connections add no throughput on their own.
LOW_LATENCY = 0.002


def read_streams_for_link(round_trip: float | None, cores: int) -> int:
    """Chunks of one file to read at once over a link with *round_trip* seconds of
    latency (``None``: not measured yet) from a host with *cores* CPUs.

    Over a long link each connection is held back by its window: several fill it. Over
    a short one a connection reads as fast as its ``ssh`` process decrypts, so more
    connections than cores only compete for them (2 cores, 1 GiB over loopback: 5 and
    10 % slower with 4 than with 2, in two runs of four rounds each). Two stay the
    least, so a chunk's last round trip never leaves the link idle. Writes are not
    reduced: each chunk ends with the server's fsync, during which its connection idles
    while the others keep the link busy (the same runs: 5 % faster and 7 % slower with
    2, no gain beyond the noise).
    """
    if round_trip is None or round_trip >= LOW_LATENCY:
        return DEFAULT_STREAMS
    return max(2, min(DEFAULT_STREAMS, cores))


def usable_cores() -> int:
    """CPUs this process may run on (a container's or a taskset's share, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ConnectionLost(ConnectionError):
    """A connection died under an operation (the server closed it or dropped off)."""


class ConnectionPool:
    def __init__(self, connect: Callable[[], SftpConnection], size: int) -> None:
        self._connect = connect
        self.size = max(1, size)
        self._cond = threading.Condition()
        self._idle: list[SftpConnection] = []
        self._open = 0  # idle + in use + being opened

    @contextlib.contextmanager
    def connection(self) -> Iterator[SftpConnection]:
        """Borrow a connection for one operation.

        An exception that leaves the connection dead is re-raised as
        :class:`ConnectionLost` (chained to the original), so callers can tell a dropped
        link from an error the server reported on a healthy one.
        """
        conn = self._acquire()
        try:
            yield conn
        except BaseException as error:
            healthy = conn.alive()
            if healthy and isinstance(error, GeneratorExit):
                # A streamed read stopped early by its consumer, its replies settled
                # (or the connection closed, then it is not healthy).
                self._release(conn)
                raise
            if (
                healthy
                and isinstance(error, OSError | EOFError | ftrack_api.exception.AccessorError)
                and not isinstance(error, ConnectionError | TimeoutError)
            ):
                # An error the server reported (no such file, permission denied): the
                # connection itself is fine.
                self._release(conn)
                raise
            # Anything else may leave unread replies on the channel: never reuse it.
            self._discard(conn)
            if healthy or isinstance(error, ConnectionError):
                raise
            raise ConnectionLost(f"connection lost: {error or type(error).__name__}") from error
        self._release(conn)

    def close(self) -> None:
        """Close idle connections; connections in use close when they are returned."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()

    @property
    def open_connections(self) -> int:
        with self._cond:
            return self._open

    def _acquire(self) -> SftpConnection:
        with self._cond:
            while True:
                while self._idle:
                    conn = self._idle.pop()
                    if conn.alive():
                        return conn
                    self._open -= 1
                    with contextlib.suppress(Exception):
                        conn.close()
                if self._open < self.size:
                    self._open += 1
                    break
                self._cond.wait()
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _release(self, conn: SftpConnection) -> None:
        with self._cond:
            self._idle.append(conn)
            self._cond.notify()

    def _discard(self, conn: SftpConnection) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()
        with contextlib.suppress(Exception):
            conn.close()
