"""Job leases: who may resume a job whose process is gone (no server needed)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ftrack_transfer.transfer.journal import Journal, owner_id, process_start


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal(tmp_path / "journal.sqlite")
    yield journal
    journal.close()


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def _job_held_by(journal: Journal, owner: str) -> str:
    job_id = journal.create_job(
        source="hq", destinations=["la"], request={}, origin="cli", username="u", user_id=None,
        status="running",
    )  # fmt: skip
    assert journal.claim(job_id, owner)
    return job_id


def test_a_lease_names_its_process_start_so_a_reused_pid_does_not_hold_the_job(
    journal: Journal, other_process: subprocess.Popen[bytes]
) -> None:
    started = process_start(other_process.pid)
    assert started is not None, "this test needs /proc"
    host = socket.gethostname()
    alive = _job_held_by(journal, f"{host}:{other_process.pid}:aaaaaaaa:{started}")
    # The process that held this lease died, and its pid now belongs to a process that
    # started later: the heartbeat is fresh, yet the job is free to resume.
    reused = _job_held_by(journal, f"{host}:{other_process.pid}:bbbbbbbb:{int(started) - 1}")

    assert [job.id for job in journal.resumable_jobs()] == [reused]
    me = owner_id()
    assert not journal.claim(alive, me)
    assert journal.claim(reused, me)
    assert journal.job(reused).owner == me


def test_a_dead_owner_frees_the_job_and_a_live_one_keeps_it(
    journal: Journal, other_process: subprocess.Popen[bytes]
) -> None:
    job_id = _job_held_by(journal, owner_id())
    assert journal.resumable_jobs() == []
    assert not journal.claim(job_id, f"{socket.gethostname()}:{other_process.pid}:cccccccc")

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    journal.update_job(job_id, owner=f"{socket.gethostname()}:{dead.stdout.strip()}:dddddddd",
                       heartbeat=time.time())  # fmt: skip
    assert [job.id for job in journal.resumable_jobs()] == [job_id]


def test_a_job_created_for_its_runner_is_never_picked_up_by_another(journal: Journal) -> None:
    """A sync (a serve's own schedule among them) creates its job and runs it itself;
    while it journals the plan, a serve's housekeeping must not take the queued job."""
    runner = owner_id()
    held = journal.create_job(
        source="hq", destinations=["cloud"], request={}, origin="schedule:nightly",
        username="u", user_id=None, owner=runner,
    )  # fmt: skip
    free = journal.create_job(
        source="hq", destinations=["la"], request={}, origin="cli", username="u", user_id=None
    )
    assert [job.id for job in journal.resumable_jobs()] == [free]
    assert not journal.claim(held, owner_id())  # another runner, in this same process
    assert journal.claim(held, runner)
