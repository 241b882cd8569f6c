"""A thread-safe pool of SFTP connections, opened on first use and reused.

One paramiko stream is bound to one CPU core by its Python packet handling; parallel
chunks only go faster on parallel connections (each with its own transport thread and
its own server process). The pool hands one connection to one thread at a time, opens
new ones up to its size, and drops a connection that failed at the connection level so
the next attempt starts on a fresh one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import ftrack_api.exception

from .sftp_connect import SftpConnection


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
