"""The sandbox's state on disk: one JSON file, rewritten atomically.

Writes are coalesced by a background thread: a batch marks the state dirty and the
writer saves at most every ``interval`` seconds, so thousands of small commits do not
mean thousands of full rewrites. :meth:`StateWriter.stop` saves whatever is left.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import tempfile
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "ftrack-sandbox.json"
FORMAT = 1


def state_path(state_dir: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(state_dir) / STATE_FILE


def load(state_dir: pathlib.Path) -> dict[str, Any] | None:
    """The saved state, or ``None`` if there is none yet."""
    path = state_path(state_dir)
    if not path.exists():
        return None
    with path.open(encoding="utf-8") as handle:
        state = json.load(handle)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a sandbox ftrack state file (format {FORMAT}).")
    return state


def save(state_dir: pathlib.Path, state: dict[str, Any]) -> None:
    """Write *state* so that a crash leaves either the old or the new file."""
    path = state_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ftrack-sandbox-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"format": FORMAT, **state}, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


class StateWriter:
    """Saves ``provider()`` in the background after :meth:`mark_dirty`."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        provider: Callable[[], dict[str, Any]],
        interval: float = 0.2,
    ) -> None:
        self._state_dir = pathlib.Path(state_dir)
        self._provider = provider
        self._interval = interval
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._save_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ftrack-sandbox-state", daemon=True)
        self.saves = 0

    def start(self) -> None:
        self._thread.start()

    def mark_dirty(self) -> None:
        self._dirty.set()

    def flush(self) -> None:
        """Save now, in the caller's thread."""
        self._dirty.clear()
        with self._save_lock:
            save(self._state_dir, self._provider())
            self.saves += 1

    def stop(self) -> None:
        self._stopping.set()
        self._dirty.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            if self._stopping.is_set():
                return
            # Let a burst of commits land before writing them all at once.
            self._stopping.wait(self._interval)
            if self._stopping.is_set():
                return
            try:
                self.flush()
            except Exception:
                log.exception("could not save the sandbox ftrack state")
