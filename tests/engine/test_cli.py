"""``ftrack-transfer send | status | retry | cancel`` as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from ftrack_transfer.transfer.journal import Journal
from ftrack_transfer.transfer.units import counted

from tests.config.helpers import free_port
from tests.fixtures.ftrack import wait_until
from tests.fixtures.storage import read_only_directory
from tests.fixtures.studio import BUCKET, StudioCase, partial_files


def cli(
    studio: StudioCase, *args: str, timeout: float = 120, columns: int = 200, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", *args],
        env={**os.environ, **studio.env, "COLUMNS": str(columns), **env},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def start(studio: StudioCase, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", *args],
        env={**os.environ, **studio.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_bad_input_gets_one_line_naming_the_problem_and_the_fix(studio: StudioCase) -> None:
    hq, la = studio.names["hq"], studio.names["la"]
    studio.session()  # the studio's locations now exist in ftrack, as in any studio
    before = studio.server.stats
    cases = {
        ("send", "--from", "nowhere", "--to", la, "demo/sq010/sh0010"): (
            'ftrack-transfer send: unknown location "nowhere"; configured locations: '
        ),
        ("send", "--from", hq, "--to", hq, "demo/sq010/sh0010"): (
            f"ftrack-transfer send: source and destination are the same location ({hq}); choose another destination"
        ),
        ("send", "--from", hq, "--to", la, "demo/sq010/sh9999"): (
            "ftrack-transfer send: unknown entity 'demo/sq010/sh9999': no project, context or asset has that path; "
            "use an id or a path like demo/sq010/sh0010/compositing, demo/sq010/sh0010/plate or demo/sq010/sh0010/plate/v002"
        ),
        ("send", "--from", hq, "--to", la, "12345678-1234-1234-1234-123456789abc"): (
            "ftrack-transfer send: unknown entity id 12345678-1234-1234-1234-123456789abc: no project, context, "
            "version, component, list or asset has it in ftrack"
        ),
        ("status", "0000nosuchjob"): 'ftrack-transfer status: no job "0000nosuchjob" in journal',
    }
    for args, message in cases.items():
        result = cli(studio, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith(message), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    # A wrong API key: ftrack_api's own log of the refusal would come first.
    wrong_key = cli(
        studio, "send", "--from", hq, "--to", la, "demo/sq010/sh0010", FTRACK_API_KEY="0" * 36
    )
    assert wrong_key.returncode == 2
    assert wrong_key.stderr == (
        f"ftrack-transfer send: ftrack at {studio.env['FTRACK_SERVER']} refused the credentials of "
        f"{studio.env['FTRACK_API_USER']}; check FTRACK_API_USER and FTRACK_API_KEY\n"
    )
    assert (studio.server.stats - before).write_requests == 0


def test_nothing_to_send_and_missing_at_source_are_explained(studio: StudioCase) -> None:
    published = studio.publish(files={"main": 100})
    hq, la = studio.names["hq"], studio.names["la"]
    result = cli(studio, "send", "--from", la, "--to", hq, published.version_id, "--wait")
    assert result.returncode == 0, result.stderr
    assert (
        f"nothing to send: 0 components (0 files, 0 B) from {la} to {hq}; 1 not available at {la}"
        in result.stderr
    )
    first = cli(studio, "-v", "send", "--from", hq, "--to", la, published.version_id, "--wait")
    assert first.returncode == 0, first.stderr
    # With -v in a pipe, the job's start and end are told once, not by the log as well.
    lines = first.stderr.splitlines()
    plan = f"1 component (1 file, 100 B) from {hq} to {la}"
    assert sum(line.endswith(plan) for line in lines) == 1, first.stderr
    assert sum(f"done: sent {plan} in " in line for line in lines) == 1, first.stderr
    again = cli(studio, "send", "--from", hq, "--to", la, published.version_id, "--wait")
    assert (
        f"nothing to send: 0 components (0 files, 0 B) from {hq} to {la}; 1 already at {la}"
        in again.stderr
    )


def test_dry_run_prints_the_plan_and_writes_nothing(studio: StudioCase) -> None:
    published = studio.publish(files={"main": 2048}, sequences={"plate": (12, 512)})
    before = studio.server.stats
    result = cli(
        studio,
        "send",
        "--from",
        studio.names["hq"],
        "--to",
        studio.names["la"],
        published.version_id,
        "--dry-run",
        columns=80,  # a pipe's default: a plan saved for review must still be whole
    )
    assert result.returncode == 0, result.stderr
    assert "Plan: 2 components (13 files, 8.0 KiB)" in result.stdout
    # Every destination in full, on its component's row: nothing cut to fit 80 columns.
    assert "…" not in result.stdout
    rows = [line for line in result.stdout.splitlines() if "send to " in line]
    assert len(rows) == 2, result.stdout
    assert re.search(r"v001 main .* send to demo/sq010/sh0010/asset-\w+/v001/main\.bin ", rows[0])
    assert re.search(
        r"v001 plate .* send to demo/sq010/sh0010/asset-\w+/v001/plate/plate\.%04d\.exr ", rows[1]
    )
    assert (studio.server.stats - before).write_requests == 0
    assert studio.journal().jobs() == []


def test_several_destinations_by_repeating_to_or_with_commas(studio: StudioCase) -> None:
    published = studio.publish(files={"main": 2048})
    hq, la, cloud = studio.names["hq"], studio.names["la"], studio.names["cloud"]
    plans = []
    for to in (
        ["--to", la, "--to", cloud],
        ["--to", f"{la},{cloud}"],
        ["--to", f"{la}, {cloud}", "--to", la],
    ):
        result = cli(studio, "send", "--from", hq, *to, published.version_id, "--dry-run")
        assert result.returncode == 0, result.stderr
        plans.append(next(line for line in result.stdout.splitlines() if "Plan: " in line).strip())
    assert (
        plans
        == [
            f"Plan: 1 component (1 file, 2.0 KiB) from {hq} to {la}; "
            f"1 component (1 file, 2.0 KiB) from {hq} to {cloud}"
        ]
        * 3
    )
    unknown = cli(studio, "send", "--from", hq, "--to", f"{la},nowhere", published.version_id)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith(f'ftrack-transfer send: unknown location "{la},nowhere"; ')


def test_assets_versions_and_components_are_named_by_path_or_by_their_plan_label(
    studio: StudioCase,
) -> None:
    asset = f"plate-{os.urandom(3).hex()}"
    studio.publish(files={"main": 300}, asset=asset)
    studio.publish(files={"main": 500, "preview": 70}, asset=asset)
    hq, la = studio.names["hq"], studio.names["la"]

    def plan(*entities: str) -> str:
        result = cli(studio, "send", "--from", hq, "--to", la, *entities, "--dry-run")
        assert result.returncode == 0, result.stderr
        return next(line for line in result.stdout.splitlines() if "Plan: " in line).strip()

    where = f"from {hq} to {la}"
    shot = "demo/sq010/sh0010"
    assert plan(f"{shot}/{asset}") == f"Plan: 3 components (3 files, 870 B) {where}"
    assert plan(f"{shot}/{asset}/v002") == f"Plan: 2 components (2 files, 570 B) {where}"
    assert plan(f"{shot}/{asset}/v002/preview") == f"Plan: 1 component (1 file, 70 B) {where}"
    # The label a plan shows for a component selects that component.
    assert plan(f"{shot}/{asset} v001 main") == f"Plan: 1 component (1 file, 300 B) {where}"
    missing = cli(studio, "send", "--from", hq, "--to", la, f"{shot}/{asset} v002 audio")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"ftrack-transfer send: unknown entity '{shot}/{asset} v002 audio': {asset} v002 has no "
        "component 'audio'; `ftrack-transfer send --dry-run` on the version lists them"
    )


def test_status_then_retry_sends_only_what_did_not_arrive(studio: StudioCase) -> None:
    published = studio.publish(files={"main": 3000}, sequences={"plate": (4, 100)})
    hq, la = studio.names["hq"], studio.names["la"]
    first = cli(studio, "send", "--from", hq, "--to", la, published.version_id, "--wait")
    assert first.returncode == 0
    more = studio.publish(files={"main": 4000, "extra": 10})
    with read_only_directory(studio.roots["la"] / "demo" / "sq010" / "sh0010"):
        failed = cli(studio, "send", "--from", hq, "--to", la, more.version_id, "--wait")
    assert failed.returncode == 1
    assert "failed: 2 of 2 files failed" in failed.stderr
    journal = Journal(studio.config.journal_path())
    job = journal.jobs()[0]
    status = cli(studio, "status", job.id)
    assert f"job {job.id} failed" in status.stdout and "failed files" in status.stdout
    listing = cli(studio, "status")
    assert job.id in listing.stdout and "done" in listing.stdout
    retried = cli(studio, "retry", job.id, "--wait")
    assert retried.returncode == 0, retried.stderr
    assert "retrying job" in retried.stdout and "2 failed files queued again" in retried.stdout
    assert journal.job(job.id).status == "done"
    assert studio.availability(list(more.components.values()), "la") == [100.0, 100.0]
    session = studio.session()
    assert session.get("Job", job.ftrack_job_id)["status"] == "done"


@pytest.mark.parametrize("breakage", ["sftp server down", "s3 bucket missing"])
def test_a_broken_destination_fails_the_send_once_and_retry_sends_the_rest(
    studio: StudioCase, breakage: str
) -> None:
    frames = 40
    published = studio.publish(sequences={"plate": (frames, 100)})
    hq = studio.names["hq"]
    if breakage == "sftp server down":
        role, reason = "la", "Connection refused"
        good, bad = f"port = {studio.sftp.port}\n", f"port = {free_port()}\nretries = 1\n"
    else:
        role, reason = "cloud", "does not exist; create it or fix the location's bucket"
        good, bad = f'bucket = "{BUCKET}"\n', 'bucket = "no-such-bucket"\n'
    destination = studio.names[role]
    studio.edit_config(lambda text: text.replace(good, bad, 1))
    failed = cli(studio, "send", "--from", hq, "--to", destination, published.version_id, "--wait")
    assert failed.returncode == 1
    journal = Journal(studio.config.journal_path())
    job = journal.jobs()[0]
    tried = [row for row in journal.files(job.id) if row.status == "failed"]
    # Only the files already started (files_in_flight = 8) meet the broken storage; the
    # others are not started, as they would fail the same way.
    assert 1 <= len(tried) <= 8
    untried = frames - len(tried)
    description = json.loads(studio.session().get("Job", job.ftrack_job_id)["data"])["description"]
    assert f"{len(tried)} of {frames} files failed; first: " in description
    assert reason in description
    assert description.endswith(
        f"{untried} other files not tried after that, as the same failure would stop them; "
        f"`ftrack-transfer retry {job.id}` sends them once it is fixed. 0 files arrived; "
        f"0 of 1 components are available at {destination}"
    ), description
    studio.edit_config(lambda text: text.replace(bad, good, 1))
    retried = cli(studio, "retry", job.id, "--wait")
    assert retried.returncode == 0, retried.stderr
    assert (
        f"{counted(len(tried), 'failed file')} and {untried} not tried queued again"
        in retried.stdout
    )
    assert studio.availability([published.components["plate"]], role) == [100.0]
    assert studio.read(published.components["plate"], role) == [
        path.read_bytes() for path in sorted(published.files["plate"])
    ]


def test_cancel_stops_a_running_send_cleanly(studio: StudioCase) -> None:
    studio.throttle("3MB/s")
    published = studio.publish(files={"big": 24 * 1024**2, "small": 1000})
    process = start(
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
    wait_until(
        lambda: journal.jobs() and journal.progress(journal.jobs()[0].id).files_done >= 1,
        timeout=60,
    )
    wait_until(lambda: partial_files(studio.roots["la"]), timeout=30)
    job = journal.jobs()[0]
    result = cli(studio, "cancel", job.id)
    assert result.returncode == 0, result.stderr
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert journal.job(job.id).status == "cancelled"
    assert (
        "cancelled by pipeline; 1 of 2 components arrived and stay available"
        in journal.job(job.id).message
    )
    session = studio.session()
    ftrack_job = session.get("Job", job.ftrack_job_id)
    assert ftrack_job["status"] == "failed"
    assert "cancelled by pipeline" in json.loads(ftrack_job["data"])["description"]
    assert partial_files(studio.roots["la"]) == []
    assert studio.availability([published.components["small"]], "la") == [100.0]
    assert studio.availability([published.components["big"]], "la") == [0.0]


def test_cancel_of_a_queued_send_says_it_never_started(studio: StudioCase) -> None:
    published = studio.publish(files={"main": 1000})
    hq, la = studio.names["hq"], studio.names["la"]
    queued = cli(studio, "send", "--from", hq, "--to", la, published.version_id)
    assert queued.returncode == 0, queued.stderr
    assert "no serve is running on this journal" in queued.stdout
    journal = Journal(studio.config.journal_path())
    job = journal.jobs()[0]
    assert job.status == "queued"
    result = cli(studio, "cancel", job.id)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip() == f"job {job.id} cancelled: cancelled by pipeline before it started"
    )
    assert journal.job(job.id).status == "cancelled"
    assert studio.availability([published.components["main"]], "la") == [0.0]
