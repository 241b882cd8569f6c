"""A send killed with SIGKILL resumes from the journal: finished chunks are not sent
again, and no partial file ever appears under its final name."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

from ftrack_transfer.transfer.journal import Journal

from tests.fixtures.ftrack import wait_until
from tests.fixtures.studio import Published, StudioCase, partial_files

SIZE = 40 * 1024**2


def cli(studio: StudioCase, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, **studio.env}
    return subprocess.Popen(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs,
    )  # fmt: skip


def _killed_half_way(studio: StudioCase) -> tuple[Journal, str, Published, int]:
    """A send of one 40 MiB file hq -> la, SIGKILLed once half of it is sent: the
    journal, the job id, the publish, and the bytes sent at the kill."""
    # A bandwidth cap makes the 40 MiB file take seconds, so the kill lands mid-file;
    # two streams bound what can be in flight (and so re-sent) at the kill.
    studio.throttle("12MB/s")
    published = studio.publish(files={"main": SIZE})
    process = cli(
        studio,
        "send",
        "--from",
        studio.names["hq"],
        "--to",
        studio.names["la"],
        published.version_id,
        "--wait",
    )
    journal = Journal(studio.config.journal_path())

    def half_sent() -> bool:
        jobs = journal.jobs()
        if not jobs:
            return False
        files = journal.files(jobs[0].id)
        return bool(files) and files[0].bytes_sent >= SIZE // 2

    wait_until(half_sent, timeout=60, message="the send never reached half of the file")
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    job = journal.jobs()[0]
    assert journal.job(job.id).status == "running"
    return journal, job.id, published, journal.files(job.id)[0].bytes_sent


def _retry_and_check_the_copy(studio: StudioCase, job_id: str, published: Published) -> int:
    """Retry the killed job; check what landed; return the bytes sent again."""
    resumed = cli(studio, "retry", job_id, "--wait")
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    journal = Journal(studio.config.journal_path())
    assert journal.job(job_id).status == "done"
    assert studio.availability([published.components["main"]], "la") == [100.0]
    copy = studio.read(published.components["main"], "la")[0]
    source = published.files["main"][0]
    assert hashlib.sha256(copy).hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()
    assert partial_files(studio.roots["la"]) == []
    return journal.files(job_id)[0].bytes_sent - SIZE


def test_sigkill_mid_file_then_retry_resends_little_and_the_copy_is_exact(
    studio: StudioCase,
) -> None:
    journal, job_id, published, killed_at = _killed_half_way(studio)
    final = studio.roots["la"] / "demo"
    finals = [p for p in final.rglob("main.bin")] if final.exists() else []
    assert finals == [], "a partial file appeared under its final name"
    assert len(partial_files(studio.roots["la"])) == 1

    resent = _retry_and_check_the_copy(studio, job_id, published)
    assert resent <= 0.1 * SIZE, f"re-sent {resent} bytes of {SIZE} (killed at {killed_at})"
    # The file's fingerprint is the destination's digest over every chunk.
    assert (journal.files(job_id)[0].digest or "").startswith("xxh128:")


def test_chunks_journalled_with_another_digest_are_sent_again(studio: StudioCase) -> None:
    """A job killed under an earlier version, which journalled SHA-256 chunk digests, is
    resumed by this one: its chunks are written again rather than mixed into one
    fingerprint with digests of another kind."""
    journal, job_id, published, _ = _killed_half_way(studio)
    file_id = journal.files(job_id)[0].id
    with journal.transaction() as db:
        db.execute("UPDATE chunks SET digest_kind = 'sha256' WHERE file_id = ?", (file_id,))
    journalled = sum(length for _, length, *_ in journal.chunks(file_id))
    assert journalled > 0

    resent = _retry_and_check_the_copy(studio, job_id, published)
    assert resent >= journalled, f"re-sent {resent} bytes; {journalled} were of another kind"
    assert {kind for *_, kind, _ in journal.chunks(file_id)} <= {"xxh128"}


def test_a_job_whose_process_died_is_resumed_by_the_next_runner(studio: StudioCase) -> None:
    """No Job is left running: the next serve (here: a runner) picks it up and ends it."""
    published = studio.publish(files={"main": 3 * 1024**2}, sequences={"plate": (20, 2048)})
    # Landed files reach the journal within a second (batched); at 1 MB/s the main file
    # is still on its way for two more, so the kill lands mid-job.
    studio.throttle("1MB/s", streams=1)
    process = cli(
        studio,
        "send",
        "--from",
        studio.names["hq"],
        "--to",
        studio.names["cloud"],
        published.version_id,
        "--wait",
    )
    journal = Journal(studio.config.journal_path())
    wait_until(
        lambda: journal.jobs() and journal.progress(journal.jobs()[0].id).files_done >= 3,
        timeout=60,
    )
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    job = journal.jobs()[0]
    session = studio.session()
    assert session.get("Job", job.ftrack_job_id)["status"] == "running"
    studio.unthrottle()

    from ftrack_transfer.transfer.engine import JobRunner
    from ftrack_transfer.transfer.ftrack_session import session_factory

    resumable = [j.id for j in journal.resumable_jobs()]
    assert resumable == [job.id]
    started = time.monotonic()
    status = JobRunner(journal, studio.config, session_factory(), job.id).run()
    assert status == "done", journal.job(job.id).message
    assert time.monotonic() - started < 60
    fresh = studio.session()
    assert fresh.get("Job", job.ftrack_job_id)["status"] == "done"
    assert studio.availability(list(published.components.values()), "cloud") == [100.0, 100.0]
