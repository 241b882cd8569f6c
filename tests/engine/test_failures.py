"""Faults while sending: transient ones are survived, permanent ones end the Job
failed with a reason a user can act on, and never leave availability for data that
did not arrive, nor a partial file under a final name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from ftrack_transfer.sandbox.faultproxy import FaultProxy, Rule
from ftrack_transfer.transfer.engine import JobRunner, submit
from ftrack_transfer.transfer.ftrack_session import session_factory
from ftrack_transfer.transfer.journal import Journal
from ftrack_transfer.transfer.selection import EntityRef

from tests.fixtures.ftrack import wait_until
from tests.fixtures.storage import read_only_directory, tiny_filesystem
from tests.fixtures.studio import StudioCase, files_under, partial_files


def queue(
    studio: StudioCase, source: str, destinations: list[str], version_id: str
) -> tuple[Journal, str]:
    journal = studio.journal()
    job_id = submit(
        journal, source=studio.names[source], destinations=[studio.names[d] for d in destinations],
        selection=[EntityRef("AssetVersion", version_id)], origin="test", username="pipeline", user_id=None,
        title="test send",
    )  # fmt: skip
    return journal, job_id


def run(studio: StudioCase, journal: Journal, job_id: str) -> str:
    return JobRunner(journal, studio.config, session_factory(), job_id).run()


def job_finished(batch: list) -> bool:
    """Whether an ftrack request batch ends a Job (to fail exactly that request)."""
    return any(
        isinstance(op, dict) and op.get("entity_type") == "Job"
        and (op.get("entity_data") or {}).get("status") == "done"
        for op in batch
    )  # fmt: skip


def ftrack_job(studio: StudioCase, journal: Journal, job_id: str) -> tuple[str, str]:
    session = studio.session()
    job = session.get("Job", journal.job(job_id).ftrack_job_id)
    return job["status"], json.loads(job["data"])["description"]


# ---------------------------------------------------------------------------- transient


def test_s3_throttling_and_5xx_on_part_uploads_are_retried(studio: StudioCase) -> None:
    proxy = FaultProxy(studio.s3.endpoint_url).start()
    try:
        studio.config_path.write_text(
            studio.config_path.read_text().replace(studio.s3.endpoint_url, proxy.url)
        )
        proxy.add(Rule("slowdown", method="PUT", query="partNumber", count=2))
        proxy.add(Rule("internal", method="PUT", query="partNumber", count=1))
        proxy.add(Rule("reset", method="PUT", count=1))
        published = studio.publish(files={"main": 12 * 1024**2}, sequences={"plate": (10, 1000)})
        journal, job_id = queue(studio, "hq", ["cloud"], published.version_id)
        assert run(studio, journal, job_id) == "done", journal.job(job_id).message
        assert len(proxy.faults()) == 4
    finally:
        proxy.stop()
    assert studio.read(published.components["main"], "cloud") == [
        published.files["main"][0].read_bytes()
    ]
    assert studio.availability(list(published.components.values()), "cloud") == [100.0, 100.0]


def test_an_sftp_connection_dropped_mid_file_is_reconnected(studio: StudioCase) -> None:
    studio.throttle("8MB/s")
    published = studio.publish(files={"main": 16 * 1024**2})
    journal, job_id = queue(studio, "hq", ["la"], published.version_id)
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(run(studio, journal, job_id)))
    thread.start()
    wait_until(
        lambda: journal.files(job_id) and journal.files(job_id)[0].bytes_sent >= 4 * 1024**2,
        timeout=60,
    )
    assert studio.sftp.kill_sessions() >= 1
    thread.join(120)
    assert result == ["done"], journal.job(job_id).message
    assert studio.read(published.components["main"], "la") == [
        published.files["main"][0].read_bytes()
    ]


def test_accsyn_429_502_and_dropped_connections_while_polling_are_retried(
    studio: StudioCase,
) -> None:
    published = studio.publish(files={"main": 300_000}, sequences={"plate": (6, 1000)})
    studio.accsyn.faults.add("http429", uri="task/find", count=1)
    studio.accsyn.faults.add("http502", uri="transfer/find", count=1)
    studio.accsyn.faults.add("drop", uri="transfer/find", count=1)
    journal, job_id = queue(studio, "hq", ["vendor"], published.version_id)
    assert run(studio, journal, job_id) == "done", journal.job(job_id).message
    assert studio.availability(list(published.components.values()), "vendor") == [100.0, 100.0]
    assert studio.read(published.components["plate"], "vendor") == [
        p.read_bytes() for p in published.files["plate"]
    ]


# ---------------------------------------------------------------------------- permanent


def test_a_full_destination_fails_the_job_with_the_reason_and_registers_nothing(
    studio: StudioCase, tmp_path: Path
) -> None:
    full = tmp_path / "full"
    with tiny_filesystem(full):
        studio.config_path.write_text(
            studio.config_path.read_text()
            + f'\n[locations."small-{studio.uid}"]\naccessor = "disk"\nroot = "{full}"\n'
        )
        studio.names["small"] = f"small-{studio.uid}"
        published = studio.publish(files={"main": 6 * 1024**2})
        journal, job_id = queue(studio, "hq", ["small"], published.version_id)
        assert run(studio, journal, job_id) == "failed"
        message = journal.job(job_id).message
        assert "1 of 1 files failed" in message
        assert f"main to small-{studio.uid}" in message
        assert "No space left on device" in message
        assert "free space or make the location writable" in message
        assert partial_files(full) == [] and files_under(full) == []
    assert ftrack_job(studio, journal, job_id) == ("failed", f"test send: {message}")
    assert studio.availability([published.components["main"]], "small") == [0.0]


def test_permission_denied_over_sftp_names_the_file_and_location(studio: StudioCase) -> None:
    published = studio.publish(files={"main": 2000}, sequences={"plate": (3, 100)})
    with read_only_directory(studio.roots["la"]):
        journal, job_id = queue(studio, "hq", ["la"], published.version_id)
        assert run(studio, journal, job_id) == "failed"
    message = journal.job(job_id).message
    assert "4 of 4 files failed" in message
    assert f"to la-{studio.uid}" in message
    assert "ermission denied" in message
    assert studio.availability(list(published.components.values()), "la") == [0.0, 0.0]
    assert ftrack_job(studio, journal, job_id)[0] == "failed"


def test_a_failed_task_at_accsyn_fails_only_its_file(studio: StudioCase) -> None:
    published = studio.publish(files={"main": 5000}, sequences={"plate": (4, 100)})
    # One frame disappears from hq after publishing: accsyn fails its task, the rest arrive.
    source = studio.roots["hq"]
    victim = next(p for p in files_under(source) if p.name.endswith("1002.exr"))
    victim.unlink()
    journal, job_id = queue(studio, "hq", ["vendor"], published.version_id)
    assert run(studio, journal, job_id) == "failed"
    message = journal.job(job_id).message
    assert "1 of 5 files failed" in message
    assert "1002" in message and "does not exist" in message
    main, plate = published.components["main"], published.components["plate"]
    assert studio.availability([main], "vendor") == [100.0]
    assert studio.availability([plate], "vendor") == [75.0]


# ---------------------------------------------------------------------------- concurrency


def test_two_sends_of_the_same_component_at_once_leave_one_correct_copy(studio: StudioCase) -> None:
    published = studio.publish(files={"main": 3 * 1024**2}, sequences={"plate": (30, 2000)})
    jobs = [queue(studio, "hq", ["la"], published.version_id) for _ in range(2)]
    results: list[str] = []
    threads = [threading.Thread(target=lambda j=j: results.append(run(studio, *j))) for j in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(results) == ["done", "done"], [j[0].job(j[1]).message for j in jobs]
    session = studio.session()
    la = studio.location(session, "la")
    rows = session.query(
        f'select id from ComponentLocation where location_id is "{la["id"]}" and component_id is "{published.components["main"]}"'
    ).all()
    assert len(rows) == 1
    assert studio.read(published.components["plate"], "la") == [
        p.read_bytes() for p in published.files["plate"]
    ]
    assert partial_files(studio.roots["la"]) == []


# ---------------------------------------------------------------------------- ftrack


def test_a_final_status_ftrack_missed_is_reported_by_serve_once_ftrack_is_back(
    studio: StudioCase,
) -> None:
    from ftrack_transfer.transfer.service import Service

    published = studio.publish(files={"main": 1000})
    journal, job_id = queue(studio, "hq", ["la"], published.version_id)

    faults = studio.server.faults
    faults.fail_next_requests(100, 503, when=job_finished)
    assert run(studio, journal, job_id) == "done"
    faults.clear()
    assert ftrack_job(studio, journal, job_id)[0] == "running"
    assert [j.id for j in journal.unreported_jobs()] == [job_id]

    service = Service(
        studio.config, journal=studio.journal(), housekeeping_interval=0.1, scan_interval=3600
    )
    service.start()
    try:
        wait_until(
            lambda: not journal.unreported_jobs(),
            timeout=30,
            message="serve never reported the job",
        )
    finally:
        service.stop()
    status, description = ftrack_job(studio, journal, job_id)
    assert status == "done" and description.startswith("test send: sent 1 component (")


def test_a_final_status_ftrack_missed_is_reported_by_the_next_send_where_no_serve_runs(
    studio: StudioCase,
) -> None:
    published = studio.publish(files={"main": 1000})
    journal, job_id = queue(studio, "hq", ["la"], published.version_id)
    studio.server.faults.fail_next_requests(100, 503, when=job_finished)
    assert run(studio, journal, job_id) == "done"
    studio.server.faults.clear()
    assert ftrack_job(studio, journal, job_id)[0] == "running"

    later = studio.publish(files={"main": 2000})
    sent = subprocess.run(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", "send", "--from",
         studio.names["hq"], "--to", studio.names["la"], later.version_id, "--wait"],
        env={**os.environ, **studio.env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert journal.unreported_jobs() == []
    status, description = ftrack_job(studio, journal, job_id)
    assert status == "done" and description.startswith("test send: sent 1 component (")
