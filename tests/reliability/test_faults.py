"""Faults across the stack, each a repeatable scenario.

Every scenario ends the same way: the job completed (bytes equal, availability as ftrack
reports it) or failed with a reason a user can act on, and the audit finds no partial
file under a final name, no availability for data that did not arrive verified, and no
Job left running.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from ftrack_transfer.sandbox.faultproxy import FaultProxy, Rule
from ftrack_transfer.sandbox.webui import form_defaults
from ftrack_transfer.transfer import cli as cli_module

from tests.fixtures.ftrack import wait_until
from tests.fixtures.storage import read_only_directory, tiny_filesystem
from tests.fixtures.studio import StudioCase, files_under

from .conftest import Auditor, Ledger, Recorder
from .helpers import (
    add_disk_location,
    ftrack_job,
    in_background,
    queue,
    run,
    wait_for_bytes,
)

MiB = 1024**2


def component_locations(studio: StudioCase, role: str, component_ids: list[str]) -> int:
    """How many ComponentLocation rows ftrack holds for *component_ids* at *role*."""
    name = studio.names[role]
    (location,) = studio.server.query(f'select id from Location where name is "{name}"')
    ids = ", ".join(f'"{c}"' for c in component_ids)
    rows = studio.server.query(
        f'select id from ComponentLocation where location_id is "{location["id"]}" '
        f"and component_id in ({ids})"
    )
    return len(rows)


# ---------------------------------------------------------------------------- SFTP


def test_sftp_sessions_killed_mid_chunk_while_writing_and_reading(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    studio.throttle("10MB/s")
    published = ledger.publish(files={"main": 20 * MiB}, sequences={"plate": (30, 20_000)})
    ids = list(published.components.values())
    total = 20 * MiB + 30 * 20_000

    # Writing: the sshd children serving the upload die at a third and two thirds.
    journal, job_id = queue(studio, "hq", ["la"], published.version_id)
    thread, result = in_background(studio, journal, job_id)
    for fraction in (1 / 3, 2 / 3):
        wait_for_bytes(journal, job_id, int(total * fraction))
        assert recorder.fault("sshd session process killed", studio.sftp.kill_sessions()) >= 1
    thread.join(120)
    assert result == ["done"], journal.job(job_id).message
    assert studio.availability(ids, "la") == [100.0, 100.0]

    # Reading: la is now the source (ranged reads over SFTP) of a send to the cloud.
    journal, job_id = queue(studio, "la", ["cloud"], published.version_id)
    thread, result = in_background(studio, journal, job_id)
    wait_for_bytes(journal, job_id, total // 2)
    assert recorder.fault("sshd session process killed", studio.sftp.kill_sessions()) >= 1
    thread.join(120)
    assert result == ["done"], journal.job(job_id).message
    assert studio.availability(ids, "cloud") == [100.0, 100.0]
    assert studio.read(published.components["main"], "cloud") == [
        published.files["main"][0].read_bytes()
    ]
    audit(ledger)


def test_sshd_restarted_during_a_job(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    studio.throttle("8MB/s")
    published = ledger.publish(files={"main": 16 * MiB}, sequences={"plate": (20, 10_000)})
    journal, job_id = queue(studio, "hq", ["la"], published.version_id)
    thread, result = in_background(studio, journal, job_id)
    wait_for_bytes(journal, job_id, 4 * MiB)
    # Every connection drops and, for a moment, nothing listens on the port.
    studio.sftp.restart()
    recorder.fault("sshd restarted", 1)
    thread.join(120)
    assert result == ["done"], journal.job(job_id).message
    assert studio.availability(list(published.components.values()), "la") == [100.0, 100.0]
    assert studio.read(published.components["main"], "la") == [
        published.files["main"][0].read_bytes()
    ]
    assert ftrack_job(studio, journal, job_id)[0] == "done"
    audit(ledger)


# ---------------------------------------------------------------------------- S3


def test_s3_errors_and_resets_on_part_uploads_and_ranged_gets(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder, tmp_path: Path
) -> None:
    proxy = FaultProxy(studio.s3.endpoint_url).start()
    try:
        studio.edit_config(lambda text: text.replace(studio.s3.endpoint_url, proxy.url))
        published = ledger.publish(files={"main": 14 * MiB}, sequences={"plate": (8, 3000)})
        ids = list(published.components.values())
        # Uploads: throttled, failing and reset part uploads.
        for fault in ("slowdown", "internal", "reset", "slowdown"):
            proxy.add(Rule(fault, method="PUT", query="partNumber"))
        journal, job_id = queue(studio, "hq", ["cloud"], published.version_id)
        assert run(studio, journal, job_id) == "done", journal.job(job_id).message
        uploads = len(proxy.faults())
        assert uploads == 4
        # Downloads: the cloud is the source; its ranged GETs fail or break off mid-body.
        add_disk_location(studio, "hq2", tmp_path / "hq2")
        for fault in ("slowdown", "internal", "reset_body", "reset", "slowdown"):
            proxy.add(Rule(fault, method="GET", range_header=True))
        journal, job_id = queue(studio, "cloud", ["hq2"], published.version_id)
        assert run(studio, journal, job_id) == "done", journal.job(job_id).message
        gets = len(proxy.faults()) - uploads
        assert gets == 5
        recorder.fault("s3 part upload", uploads)
        recorder.fault("s3 ranged get", gets)
    finally:
        proxy.stop()
    for role in ("cloud", "hq2"):
        assert studio.availability(ids, role) == [100.0, 100.0], role
    assert studio.read(published.components["main"], "hq2") == [
        published.files["main"][0].read_bytes()
    ]
    audit(ledger)


def test_s3_access_denied_fails_the_job_and_leaves_nothing(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    proxy = FaultProxy(studio.s3.endpoint_url).start()
    try:
        studio.edit_config(lambda text: text.replace(studio.s3.endpoint_url, proxy.url))
        published = ledger.publish(files={"main": 9 * MiB, "small": 2000})
        proxy.add(Rule("denied", method="PUT", count=-1))
        proxy.add(Rule("denied", method="POST", count=-1))
        journal, job_id = queue(studio, "hq", ["cloud"], published.version_id)
        assert run(studio, journal, job_id) == "failed"
        recorder.fault("s3 access denied", len(proxy.faults()))
    finally:
        proxy.stop()
    message = journal.job(job_id).message
    assert message.startswith("2 of 2 files failed; first: ")
    assert "AccessDenied" in message and f"to {studio.names['cloud']}" in message
    assert message.endswith(
        f"0 files arrived; 0 of 2 components are available at {studio.names['cloud']}"
    )
    assert ftrack_job(studio, journal, job_id) == ("failed", f"reliability send: {message}")
    assert studio.availability(list(published.components.values()), "cloud") == [0.0, 0.0]
    audit(ledger)


# ---------------------------------------------------------------------------- accsyn


def test_accsyn_throttling_bad_gateways_non_json_and_drops_are_survived(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    published = ledger.publish(files={"main": 200_000}, sequences={"plate": (6, 1000)})
    faults = studio.accsyn.faults
    rules = [
        faults.add("http429", uri="transfer/create"),
        faults.add("drop", uri="transfer/create"),
        faults.add("http502", uri="transfer/find"),
        faults.add("http429", uri="task/find", count=2),
        faults.add("drop", uri="transfer/find"),
        faults.add("http502", uri="task/find"),
    ]
    journal, job_id = queue(studio, "hq", ["vendor"], published.version_id)
    assert run(studio, journal, job_id) == "done", journal.job(job_id).message
    fired = sum(rule.fired for rule in rules)
    assert fired == 7, [(r.mode, r.uri, r.fired) for r in rules]
    recorder.fault("accsyn 429/502/drop", fired)
    # A create retried after a dropped reply did not make a second transfer.
    assert len(studio.accsyn.transfers()) == 1
    assert studio.availability(list(published.components.values()), "vendor") == [100.0, 100.0]
    assert studio.read(published.components["plate"], "vendor") == [
        p.read_bytes() for p in published.files["plate"]
    ]
    audit(ledger)


def test_accsyn_refusing_the_transfer_fails_the_job_with_its_reason(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    published = ledger.publish(files={"main": 5000})
    rule = studio.accsyn.faults.add("error", uri="transfer/create", message="Quota exceeded")
    journal, job_id = queue(studio, "hq", ["vendor"], published.version_id)
    assert run(studio, journal, job_id) == "failed"
    recorder.fault("accsyn error reply", rule.fired)
    message = journal.job(job_id).message
    assert "1 of 1 files failed" in message
    assert "accsyn refused the transfer: " in message and "Quota exceeded" in message
    assert ftrack_job(studio, journal, job_id) == ("failed", f"reliability send: {message}")
    assert studio.availability([published.components["main"]], "vendor") == [0.0]
    audit(ledger)


# ---------------------------------------------------------------------------- ftrack


def test_ftrack_5xx_and_dropped_requests_during_a_send(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    published = ledger.publish(files={"main": 3 * MiB}, sequences={"plate": (40, 2000)})
    ids = list(published.components.values())
    journal, job_id = queue(studio, "hq", ["la"], published.version_id)
    faults = studio.server.faults
    faults.fail_next_requests(2, 503, when="queries")
    faults.drop_next_requests(1, when="queries")
    faults.fail_next_requests(1, 502, json_body=True, when="queries")
    faults.fail_next_requests(2, 503, when="writes")
    # Applied, but the answer is lost: the replay must not register anything twice.
    faults.drop_next_requests(2, after_commit=True, when="writes")
    faults.fail_next_requests(1, 504, after_commit=True, when="writes")
    armed = faults.pending
    assert run(studio, journal, job_id) == "done", journal.job(job_id).message
    recorder.fault("ftrack 5xx/drop", armed - faults.pending)
    assert faults.pending == 0
    assert studio.availability(ids, "la") == [100.0, 100.0]
    # Exactly once: one row per component and sequence member, replays notwithstanding.
    everything = ids + [m for c in ids for m in ledger.containers.get(c, [])]
    assert component_locations(studio, "la", everything) == len(everything) == 42
    status, description = ftrack_job(studio, journal, job_id)
    assert status == "done" and description.startswith(
        "reliability send: sent 2 components (41 files"
    )
    # One ftrack Job, though its creation may have been replayed.
    ftrack_job_id = journal.job(job_id).ftrack_job_id
    assert len(studio.server.query(f'select id from Job where id is "{ftrack_job_id}"')) == 1
    audit(ledger)


def test_ftrack_down_for_longer_than_the_retries_fails_clearly_then_resumes(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    published = ledger.publish(files={"main": 2 * MiB}, sequences={"plate": (10, 1000)})
    ids = list(published.components.values())
    journal, job_id = queue(studio, "hq", ["la"], published.version_id)
    faults = studio.server.faults

    def registration(batch: list) -> bool:
        return any(
            isinstance(op, dict) and op.get("entity_type") == "ComponentLocation" for op in batch
        )

    faults.fail_next_requests(100, 503, when=registration)
    assert run(studio, journal, job_id) == "failed"
    recorder.fault("ftrack 5xx", 100 - faults.pending)
    faults.clear()
    message = journal.job(job_id).message
    assert message == (
        "ftrack did not answer after 6 attempts (an error page instead of an answer); what arrived "
        f"is kept: `ftrack-transfer retry {job_id}` once ftrack answers"
    )
    assert ftrack_job(studio, journal, job_id) == ("failed", f"reliability send: {message}")
    assert studio.availability(ids, "la") == [0.0, 0.0]
    # `ftrack-transfer retry` once ftrack answers: what arrived verified is not sent
    # again, only registered.
    sent = journal.progress(job_id).bytes_done
    landed = {
        p: p.stat().st_mtime_ns
        for p in studio.roots["la"].rglob("*")
        if p.is_file() and not p.name.startswith(".")  # not a temporary
    }
    # Chunks of files still in flight count in `sent` too.
    assert landed and 0 < sum(p.stat().st_size for p in landed) <= sent
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        assert cli_module.main(["retry", job_id, "--wait"]) == 0, output.getvalue()
    assert journal.job(job_id).status == "done", journal.job(job_id).message
    assert journal.progress(job_id).bytes_done == 2 * MiB + 10 * 1000
    assert {p: p.stat().st_mtime_ns for p in landed} == landed  # none written again
    assert studio.availability(ids, "la") == [100.0, 100.0]
    assert ftrack_job(studio, journal, job_id)[0] == "done"
    audit(ledger)


def test_serve_survives_a_dropped_event_hub_and_keeps_its_action(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder, serve, web_ui
) -> None:
    published = ledger.publish(files={"main": 4000}, sequences={"plate": (5, 1000)})
    alice = web_ui("alice")
    selection = [{"entityId": published.version_id, "entityType": "assetversion"}]
    assert "accsyn Send" in [i["label"] for i in alice.discover(selection)]
    studio.server.faults.fail_next_handshakes(1)
    dropped = studio.server.drop_event_hub_connections()
    assert dropped >= 2  # serve's listener and the web UI
    recorder.fault("event hub dropped", dropped)
    # serve reconnects (through refused handshakes) and subscribes its action again.
    studio.server.wait_for_subscribers("ftrack.action.launch", timeout=30)
    wait_until(lambda: studio.server.faults.pending == 0, timeout=30)
    recorder.fault("event hub handshake refused", 1)
    labels = wait_until(
        lambda: [i["label"] for i in alice.discover(selection, timeout=2)], timeout=30
    )
    assert labels == ["accsyn Send"]
    form = alice.launch("ftrack-transfer.send", selection)
    values = {**form_defaults(form), f"to:{studio.names['la']}": True}
    reply = alice.launch("ftrack-transfer.send", selection, values)
    assert reply["success"] is True, reply
    job_id = reply["message"].split("(job ")[1].split(")")[0]
    wait_until(lambda: serve.journal.job(job_id).status == "done", timeout=60)
    assert studio.availability(list(published.components.values()), "la") == [100.0, 100.0]
    audit(ledger)


# ---------------------------------------------------------------------------- storage


def test_disk_full_at_an_sftp_destination(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    published = ledger.publish(files={"big": 6 * MiB, "small": 1000})
    with tiny_filesystem(studio.roots["la"], "2m"):
        journal, job_id = queue(studio, "hq", ["la"], published.version_id)
        assert run(studio, journal, job_id) == "failed"
        recorder.fault("disk full", 1)
        message = journal.job(job_id).message
        # Both files start at once: the small one lands unless the big one has filled
        # the disk first. Either way, of what failed not even a temporary is left.
        landed = [p.name for p in files_under(studio.roots["la"])]
        assert landed in (["small.bin"], [])
        audit(ledger)
    label = published_label(studio, published.version_id, "big")
    full = (
        f"/{studio.names['la']}: the server reported a failure without a reason (often a full "
        "disk or quota on the server)."
    )
    if landed:
        assert message.startswith(f"1 of 2 files failed; first: {label} to {studio.names['la']}: ")
        assert (
            f"{full} 1 file arrived; 1 of 2 components are available at {studio.names['la']}"
        ) in message
    else:
        assert message.startswith("2 of 2 files failed; first: ")
        assert message.endswith(
            "(often a full disk or quota on the server). 0 files arrived; 0 of 2 components "
            f"are available at {studio.names['la']}"
        )
    small = 100.0 if landed else 0.0
    assert studio.availability([published.components["small"]], "la") == [small]
    assert studio.availability([published.components["big"]], "la") == [0.0]


def test_permission_denied_at_a_disk_destination(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder, tmp_path: Path
) -> None:
    published = ledger.publish(files={"main": 3 * MiB}, sequences={"plate": (4, 100)})
    add_disk_location(studio, "locked", tmp_path / "locked")
    with read_only_directory(tmp_path / "locked"):
        journal, job_id = queue(studio, "hq", ["locked"], published.version_id)
        assert run(studio, journal, job_id) == "failed"
    recorder.fault("permission denied", 1)
    message = journal.job(job_id).message
    assert message.startswith("5 of 5 files failed; first: ")
    # As root the directory is immutable rather than unwritable: EPERM instead of EACCES.
    reason = "Operation not permitted" if os.geteuid() == 0 else "Permission denied"
    assert f"to {studio.names['locked']}: Cannot " in message and f": {reason}." in message
    assert studio.availability(list(published.components.values()), "locked") == [0.0, 0.0]
    assert files_under(tmp_path / "locked") == []
    audit(ledger)


def published_label(studio: StudioCase, version_id: str, component: str) -> str:
    """How a job message names a component of a version published under sq010/sh0010."""
    session = studio.session()
    version = session.query(
        f'select version, asset.name from AssetVersion where id is "{version_id}"'
    ).one()
    return f"demo/sq010/sh0010/{version['asset']['name']} v{version['version']:03d} {component}"
