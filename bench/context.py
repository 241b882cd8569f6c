"""What every case needs: the lab, the profile, the data sets and a way to run a side."""

from __future__ import annotations

import functools
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import data
from .lab import Lab
from .measure import Sample, run
from .profile import Profile

REPOSITORY = Path(__file__).resolve().parent.parent


class Context:
    def __init__(self, lab: Lab, profile: Profile) -> None:
        self.lab = lab
        self.profile = profile
        self._numbers = itertools.count(1)
        self.specs = lab.work / "specs"
        self.specs.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ data sets

    # Each case asks for its data set, which is then read into the page cache (warm).

    def single(self, size: int) -> data.DataSet:
        return self._single(size).warm()

    def sequence(self) -> data.DataSet:
        return self._sequence().warm()

    def small(self) -> data.DataSet:
        return self._small().warm()

    @functools.cache  # noqa: B019 - one context per run; the cache is the point
    def _single(self, size: int) -> data.DataSet:
        return data.single(self.lab.data_root, size)

    @functools.cache  # noqa: B019
    def _sequence(self) -> data.DataSet:
        return data.frames(self.lab.data_root, *self.profile.sequence)

    @functools.cache  # noqa: B019
    def _small(self) -> data.DataSet:
        return data.small_files(self.lab.data_root, *self.profile.small)

    # ------------------------------------------------------------------ running sides

    def _log(self, name: str) -> Path:
        return self.lab.logs / f"{next(self._numbers):04d}-{name.replace('/', '_')}.log"

    def python_side(self, name: str, spec: dict[str, Any], **kwargs: Any) -> Sample:
        """Run ``python -m bench.side`` with *spec* (see ``side.py``)."""
        path = self.specs / f"{next(self._numbers):04d}.json"
        path.write_text(json.dumps(spec))
        return run(
            [self.lab.python, "-m", "bench.side", str(path)],
            env=self.lab.env(),
            log=self._log(name),
            cwd=REPOSITORY,
            timeout=self.profile.side_timeout,
            **kwargs,
        )

    def command_side(self, name: str, argv: Sequence[str], **kwargs: Any) -> Sample:
        return run(
            argv,
            env=self.lab.env(),
            log=self._log(name),
            cwd=self.lab.work,
            timeout=self.profile.side_timeout,
            **kwargs,
        )

    def journal_info(self, journal: Path, job: str | None = None) -> dict[str, Any]:
        """The latest job of *journal* (or *job*): id, status, created, started, finished,
        bytes_done - read by the product's own code in a side process."""
        spec = {"operation": "journal-info", "journal": str(journal), "job": job}
        return self.python_side("journal", spec).result

    def flush_disk(self) -> None:
        """Write back dirty pages before a run, so no side pays for the previous one's."""
        os.sync()
