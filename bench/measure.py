"""Run one side of a comparison in its own process and measure it.

Each side (ours, ``cp``, OpenSSH ``sftp``, rclone, boto3, the stock ftrack path) runs
as a child process, so its CPU time and peak memory are its own. CPU time comes from
``os.wait4`` (the child and the processes it waited for: ``sftp`` runs ``ssh``). Peak
memory cannot come from there: Linux carries a process's ``ru_maxrss`` across
``exec``, so every child would report at least this (large) process's size. It is read
instead from each process's own high-water mark (``VmHWM`` in ``/proc/<pid>/status``,
reset by ``exec``) while the side runs, summed over the side's processes. Servers are
separate processes and count for neither side.

Python sides time their transfer themselves (after imports, connection set-up
included) and print one JSON line; command-line tools are timed from start to exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class Sample:
    """One measured run of one side."""

    seconds: float
    wall: float
    cpu: float
    #: Peak resident set size in bytes, summed over the side's processes (0: the side
    #: ended before it could be read).
    rss: int
    returncode: int
    result: dict[str, Any]
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class SideFailed(RuntimeError):
    """A side exited with an error; the message holds the end of its log."""


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path,
    cwd: Path | None = None,
    timeout: float = 3600.0,
    monitor: Callable[[subprocess.Popen[bytes]], None] | None = None,
    check: bool = True,
) -> Sample:
    """Run *argv*; its stdout and stderr go to *log*. *monitor* (if given) runs on a
    thread while the child runs, e.g. to kill it half-way."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        watch = _MemoryWatch(process.pid)
        if monitor is not None:
            threading.Thread(target=monitor, args=(process,), daemon=True).start()
        timer = threading.Timer(timeout, _kill_group, args=(process.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
            watch.stop()
        wall = time.perf_counter() - started
    # wait4 reaped the child; tell Popen so it does not try again.
    process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    result = _last_json(text)
    sample = Sample(
        seconds=float(result.get("seconds", wall)),
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss=watch.peak,
        returncode=process.returncode,
        result=result,
        log=log,
    )
    if check and not sample.ok:
        tail = "\n".join(text.strip().splitlines()[-25:])
        raise SideFailed(f"{argv[0]} exited {process.returncode}; end of {log}:\n{tail}")
    return sample


class _MemoryWatch:
    """Polls the high-water mark of a process and its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self._marks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @property
    def peak(self) -> int:
        return sum(self._marks.values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        pids = [self.pid]
        turn = 0
        while not self._stop.is_set():
            # Finding descendants scans /proc: ten times less often than reading marks.
            if turn % 10 == 0:
                pids = [self.pid, *_descendants(self.pid)]
            turn += 1
            for pid in pids:
                mark = _high_water(pid)
                if mark:
                    # The latest mark, not the largest: between fork and exec a child
                    # reports its parent's memory as its own (a vfork child even shares
                    # it), and exec starts a new mark, which then only grows.
                    self._marks[pid] = mark
            self._stop.wait(self.interval)


def _high_water(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{") and line.endswith("}"):
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict) and "bench" in value:
                    return value
    return {}


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def emit(**values: Any) -> None:
    """Print a side's result line (what :func:`run` parses)."""
    print(json.dumps({"bench": 1, **values}), flush=True)
