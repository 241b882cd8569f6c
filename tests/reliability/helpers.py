"""Small helpers shared by the reliability tests (sending, reading the Job, configs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ftrack_transfer.transfer.engine import JobRunner, submit
from ftrack_transfer.transfer.ftrack_session import session_factory
from ftrack_transfer.transfer.journal import Journal
from ftrack_transfer.transfer.selection import EntityRef

from tests.fixtures.ftrack import wait_until
from tests.fixtures.studio import StudioCase


def queue(
    studio: StudioCase,
    source: str,
    destinations: list[str],
    version_ids: list[str] | str,
    *,
    journal: Journal | None = None,
    title: str = "reliability send",
) -> tuple[Journal, str]:
    """A send through the Python API: journalled, not started."""
    journal = journal or studio.journal()
    ids = [version_ids] if isinstance(version_ids, str) else version_ids
    job_id = submit(
        journal, source=studio.names[source], destinations=[studio.names[d] for d in destinations],
        selection=[EntityRef("AssetVersion", v) for v in ids], origin="test", username="pipeline",
        user_id=None, title=title,
    )  # fmt: skip
    return journal, job_id


def run(studio: StudioCase, journal: Journal, job_id: str, **options: Any) -> str:
    return JobRunner(journal, studio.config, session_factory(), job_id, **options).run()


def in_background(
    studio: StudioCase, journal: Journal, job_id: str
) -> tuple[threading.Thread, list[str]]:
    """Run the job on a thread; the list receives its final status."""
    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(run(studio, journal, job_id)), name=f"job-{job_id}"
    )
    thread.start()
    return thread, result


def ftrack_job(studio: StudioCase, journal: Journal, job_id: str) -> tuple[str, str]:
    """(status, description) of the job's ftrack Job, as a fresh session reads it."""
    session = studio.session()
    job = session.get("Job", journal.job(job_id).ftrack_job_id)
    return job["status"], json.loads(job["data"])["description"]


def bytes_done(journal: Journal, job_id: str) -> int:
    return journal.progress(job_id).bytes_done


def wait_for_bytes(journal: Journal, job_id: str, at_least: int, timeout: float = 60) -> None:
    wait_until(
        lambda: bytes_done(journal, job_id) >= at_least,
        timeout=timeout,
        message=f"job {job_id} never reached {at_least} bytes",
    )


def add_disk_location(studio: StudioCase, role: str, root: Path, extra: str = "") -> str:
    name = f"{role}-{studio.uid}"
    root.mkdir(parents=True, exist_ok=True)
    studio.edit_config(
        lambda text: text + f'\n[locations."{name}"]\naccessor = "disk"\nroot = "{root}"\n{extra}',
    )
    studio.names[role] = name
    studio.roots[role] = root
    return name


def cli(
    studio: StudioCase, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``ftrack-transfer ARGS`` in a process of its own, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", *args],
        env={**os.environ, **studio.env, **(env or {}), "COLUMNS": "200"},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
