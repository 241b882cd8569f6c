"""``ftrack-transfer serve`` SIGKILLed at random points of sends, restarted each time.

The points are drawn from a seeded generator (``FTRACK_TRANSFER_KILL_SEED`` replays a
run): at start-up, once it holds the job's lease, in the middle of the bytes, just after
ftrack registered a component, and as the job ends. After every kill the storage and ftrack are checked
at that instant: nothing partial under a final name, no registration without its verified
bytes. At the end every send is done, the journal agrees with ftrack, and no Job is left
running.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from ftrack_transfer.transfer.journal import Journal

from tests.fixtures.ftrack import wait_until
from tests.fixtures.studio import StudioCase

from .conftest import FULL, Auditor, Ledger, Recorder, studio_secrets
from .helpers import cli, ftrack_job

MiB = 1024**2
#: Kill points in one run: the full profile does at least 20, the fast one exercises the
#: mechanism with a few.
POINTS = 24 if FULL else 5
KINDS = ("start-up", "lease", "bytes", "registration", "finishing")
WEIGHTS = (1, 1, 4, 1, 1)


class Serve:
    """``ftrack-transfer serve`` as a service manager runs it, output to a log file."""

    def __init__(self, studio: StudioCase, log: Path) -> None:
        self.studio = studio
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as output:
            output.write(b"--- start\n")
            output.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ftrack_transfer.transfer.cli", "serve", "--workers", "1"],
                env={**os.environ, **self.studio.env}, stdout=output, stderr=output,
            )  # fmt: skip
        return self.process

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(30) == -signal.SIGKILL
        self.process = None

    def ready(self) -> bool:
        return (
            self.log.read_text(errors="replace")
            .rsplit("--- start", 1)[-1]
            .count("ftrack-transfer serve: ready")
            == 1
        )


def registered_at(studio: StudioCase, role: str) -> int:
    location = studio.server.query(f'select id from Location where name is "{studio.names[role]}"')
    if not location:
        return 0
    return len(
        studio.server.query(
            f'select id from ComponentLocation where location_id is "{location[0]["id"]}"'
        )
    )


def point(
    kind: str,
    role: str,
    studio: StudioCase,
    journal: Journal,
    job_id: str,
    process: subprocess.Popen[bytes],
    rng: random.Random,
) -> Callable[[], bool]:
    """When to kill: once serve holds the job's lease, once a random share of what is left
    has been sent, just after ftrack registered a component, or as the job ends (its ftrack
    Job says done); or when the send is done anyway."""
    if kind == "lease":
        lease = f":{process.pid}:"  # owner ids are host:pid:random
        return lambda: lease in (journal.job(job_id).owner or "") or process.poll() is not None
    if kind == "bytes":
        progress = journal.progress(job_id)
        left = max(0, progress.bytes_total - progress.bytes_done)
        target = progress.bytes_done + rng.uniform(0.05, 0.4) * left
        return lambda: (
            journal.progress(job_id).bytes_done >= target or journal.job(job_id).status == "done"
        )
    if kind == "finishing":
        # The ftrack Job says done: the journal is written right after.
        def finishing() -> bool:
            job = journal.job(job_id)
            rows = studio.server.query(f'select status from Job where id is "{job.ftrack_job_id}"')
            return (
                process.poll() is not None
                or job.status == "done"
                or (bool(rows) and rows[0]["status"] == "done")
            )

        return finishing
    registered = registered_at(studio, role)
    return lambda: registered_at(studio, role) > registered or journal.job(job_id).status == "done"


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "role",
    [
        pytest.param("la", id="to-sftp"),
        # S3: multipart uploads resumed across kills (full profile).
        pytest.param("cloud", id="to-s3", marks=pytest.mark.full),
    ],
)
def test_serve_killed_at_random_points_resumes_every_send(
    role: str,
    studio: StudioCase,
    ledger: Ledger,
    audit: Auditor,
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("FTRACK_TRANSFER_KILL_SEED", "20260101"))
    rng = random.Random(seed)
    studio.throttle("8MB/s")
    journal = Journal(studio.config.journal_path())
    serve = Serve(studio, tmp_path / "serve.log")
    kills: collections.Counter[str] = collections.Counter()
    sends: list[tuple[str, list[str], list[Path], str]] = []

    def queue_send() -> str:
        published = ledger.publish(
            files={"main": 8 * MiB + rng.randrange(MiB), "proxy": rng.randrange(2 * MiB)},
            sequences={"plate": (24, 60_000)},
        )
        before = {job.id for job in journal.jobs()}
        result = cli(studio, "send", "--from", studio.names["hq"], "--to", studio.names[role],
                     published.version_id)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "queued job" in result.stdout
        (job_id,) = {job.id for job in journal.jobs()} - before
        sends.append((job_id, list(published.components.values()), published.files["main"],
                      published.components["main"]))  # fmt: skip
        return job_id

    # Every kind of point at least once (in a random order), then weighted draws.
    plan = rng.sample(KINDS, len(KINDS)) + rng.choices(KINDS, WEIGHTS, k=POINTS - len(KINDS))
    job_id = queue_send()
    for kind in plan:
        if journal.job(job_id).status == "done":
            job_id = queue_send()
        process = serve.start()
        if kind != "start-up":  # a start-up point is killed as soon as it exists
            wait_until(
                point(kind, role, studio, journal, job_id, process, rng),
                timeout=120, message=f"serve never reached a {kind} point",
            )  # fmt: skip
        assert process.poll() is None, serve.log.read_text()[-3000:]
        serve.kill()
        kills[kind] += 1
        recorder.fault("serve SIGKILL", 1)
        # At this instant: nothing partial under a final name, nothing registered unverified.
        audit.interim(ledger)

    # The last restart: every send ends, and SIGTERM then stops serve cleanly.
    process = serve.start()
    wait_until(serve.ready, timeout=60, message="serve did not start")
    wait_until(
        lambda: all(journal.job(job).status == "done" for job, *_ in sends),
        timeout=300, message="a send did not finish after the last restart",
    )  # fmt: skip
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    log = serve.log.read_text()
    assert log.rstrip().endswith(
        "ftrack-transfer serve: stopped; unfinished jobs resume at the next start"
    )
    # Every serve's log, kills and restarts included, is free of secrets.
    assert [what for what, value in studio_secrets(studio).items() if value in log] == []

    for job_id, ids, main_files, main_id in sends:
        assert studio.availability(ids, role) == [100.0, 100.0, 100.0]
        assert studio.read(main_id, role) == [main_files[0].read_bytes()]
        status, description = ftrack_job(studio, journal, job_id)
        assert status == "done" and description.startswith(
            "ftrack-transfer send: sent 3 components"
        )
        # The journal agrees: every file done, every component registered.
        progress = journal.progress(job_id)
        assert progress.files_done == progress.files_total == 26
        assert progress.components_registered == progress.components_total == 3
    total = sum(journal.progress(job).bytes_total for job, *_ in sends)
    sent = sum(row.bytes_sent for job, *_ in sends for row in journal.files(job))
    recorder.figure(
        f"serve SIGKILL points, sends to {role}",
        f"{sum(kills.values())} in one run (seed {seed}: "
        + ", ".join(f"{kills[k]} {k}" for k in KINDS)
        + f") over {len(sends)} sends; bytes sent {sent / total:.2f}x the data",
    )
    assert sum(kills.values()) >= POINTS
    # A write begun but not yet journalled when the process died (a small file written
    # whole to a temporary of its own, a multipart upload just created) has no token to
    # find it by; the resumed job cleans such leftovers up before writing the file again.
    findings = audit(ledger)
    recorder.figure(
        f"orphaned temporaries after the kills, sends to {role}", str(len(findings.temporaries))
    )
