"""accsyn Send end to end: a second ftrack session plays the web UI against serve."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ftrack_transfer.sandbox.webui import form_defaults
from ftrack_transfer.transfer.journal import FINISHED
from ftrack_transfer.transfer.service import Service

from tests.fixtures.ftrack import wait_until
from tests.fixtures.studio import StudioCase, files_under

SEND = "ftrack-transfer.send"


def shot(studio: StudioCase, path: str = "sq010/sh0010") -> list[dict[str, str]]:
    return [{"entityId": studio.server.seed_info.shots[path], "entityType": "task"}]


def version(version_id: str) -> list[dict[str, str]]:
    return [{"entityId": version_id, "entityType": "assetversion"}]


def values(studio: StudioCase, source: str, *destinations: str, **extra: Any) -> dict[str, Any]:
    result = {
        "source": studio.names[source],
        "components": "all",
        "additional_files": "",
        "priority": "normal",
        "preview": False,
    }
    result.update({f"to:{studio.names[d]}": True for d in destinations})
    result.update(extra)
    return result


def finished(service: Service, job_id: str) -> Any:
    wait_until(
        lambda: service.journal.job(job_id).status in FINISHED,
        timeout=90,
        message=f"job {job_id} did not end",
    )
    return service.journal.job(job_id)


def job_id_of(reply: dict[str, Any]) -> str:
    assert reply.get("success") is True, reply
    return reply["message"].split("(job ")[1].split(")")[0]


def ftrack_job(studio: StudioCase, job_id: str) -> tuple[str, str, str]:
    session = studio.session()
    ftrack_job_id = studio.journal().job(job_id).ftrack_job_id
    job = session.query(
        f'select status, data, user.username from Job where id is "{ftrack_job_id}"'
    ).one()
    return job["status"], json.loads(job["data"])["description"], job["user"]["username"]


# ---------------------------------------------------------------------------- discover


def test_offered_for_contexts_versions_lists_and_projects_to_senders_only(
    studio, serve, web_ui
) -> None:
    published = studio.publish(files={"main": 10})
    alice, carol = web_ui("alice"), web_ui("carol")
    info = studio.server.seed_info
    selections = {
        "shot": shot(studio),
        "task": [{"entityId": info.tasks["sq010/sh0010/compositing"], "entityType": "task"}],
        "version": version(published.version_id),
        "project": [{"entityId": info.project_id, "entityType": "show"}],
    }
    for name, selection in selections.items():
        labels = [
            item["label"] for item in alice.discover(selection) if item["actionIdentifier"] == SEND
        ]
        assert labels == ["accsyn Send"], name
        assert not [
            i for i in carol.discover(selection, timeout=1) if i["actionIdentifier"] == SEND
        ], name
    assert alice.discover([], timeout=1) == []


def test_the_form_offers_sources_with_counts_and_every_destination(studio, serve, web_ui) -> None:
    published = studio.publish(files={"main": 10, "proxy": 5})
    form = web_ui("alice").launch(SEND, version(published.version_id))
    items = {item.get("name"): item for item in form["items"] if item.get("name")}
    assert form["type"] == "form"
    assert items["source"]["data"] == [
        {"label": f"{studio.names['hq']} (2 components)", "value": studio.names["hq"]}
    ]
    assert {f"to:{n}" for n in studio.names.values()} <= set(items)
    assert [o["value"] for o in items["components"]["data"]] == ["all", "main", "proxy"]
    assert items["additional_files"]["type"] == "textarea"
    assert items["preview"]["type"] == "boolean"
    assert [o["value"] for o in items["priority"]["data"]] == ["low", "normal", "high"]


# ---------------------------------------------------------------------------- sends


def test_disk_to_sftp_round_trip_from_the_web_ui(studio, serve, web_ui) -> None:
    published = studio.publish(files={"main": 2 * 1024**2}, sequences={"plate": (24, 20_000)})
    alice = web_ui("alice")
    reply = alice.launch(SEND, version(published.version_id), values(studio, "hq", "la"))
    job_id = job_id_of(reply)
    assert (
        f"Queued accsyn Send of 2 components from {studio.names['hq']} to {studio.names['la']}"
        in reply["message"]
    )
    job = finished(serve, job_id)
    assert job.status == "done", job.message
    status, description, user = ftrack_job(studio, job_id)
    assert (status, user) == ("done", "alice")
    assert (
        description.startswith("accsyn Send: sent 2 components (25 files")
        and studio.names["la"] in description
    )
    assert studio.availability(list(published.components.values()), "la") == [100.0, 100.0]
    assert studio.read(published.components["plate"], "la") == [
        p.read_bytes() for p in published.files["plate"]
    ]
    message = alice.wait_for_message(timeout=10)
    assert message and message["success"] is True and "accsyn Send done" in message["message"]


def test_send_to_an_accsyn_site_goes_through_accsyn(studio, web_ui) -> None:
    studio.config_path.write_text(
        studio.config_path.read_text().replace(
            f'accsyn = "site={studio.names["la"]}"',
            f'accsyn = "site={studio.names["la"]}"\nbackend = "accsyn"',
        )
    )
    service = Service(studio.config, journal=studio.journal(), workers=1, housekeeping_interval=0.2)
    service.start()
    try:
        studio.server.wait_for_subscribers("ftrack.action.launch", timeout=10)
        published = studio.publish(files={"main": 300_000}, sequences={"plate": (5, 1000)})
        job_id = job_id_of(
            web_ui("alice").launch(SEND, version(published.version_id), values(studio, "hq", "la"))
        )
        assert finished(service, job_id).status == "done"
    finally:
        service.stop()
    transfers = studio.accsyn.transfers()
    assert len(transfers) == 1 and len(studio.accsyn.tasks(transfers[0]["id"])) == 6
    assert studio.availability(list(published.components.values()), "la") == [100.0, 100.0]


def test_send_to_a_vendor_user_and_to_several_destinations_at_once(studio, serve, web_ui) -> None:
    published = studio.publish(files={"main": 4000}, sequences={"plate": (6, 1000)})
    reply = web_ui("alice").launch(
        SEND, version(published.version_id), values(studio, "hq", "vendor", "cloud")
    )
    job = finished(serve, job_id_of(reply))
    assert job.status == "done", job.message
    ids = list(published.components.values())
    assert studio.availability(ids, "vendor") == [100.0, 100.0]
    assert studio.availability(ids, "cloud") == [100.0, 100.0]
    assert studio.read(published.components["main"], "vendor") == [
        published.files["main"][0].read_bytes()
    ]


def test_preview_replies_with_the_plan_and_sends_nothing(studio, serve, web_ui) -> None:
    published = studio.publish(files={"main": 4000})
    reply = web_ui("alice").launch(
        SEND, version(published.version_id), values(studio, "hq", "la", preview=True)
    )
    labels = [item["value"] for item in reply["items"] if item["type"] == "label"]
    assert any(
        label.startswith("**Preview:** 1 component (1 file, 3.9 KiB)") for label in labels
    ), labels
    assert any("-> " + studio.names["la"] in label for label in labels)
    assert form_defaults(reply)["preview"] is False
    assert serve.journal.jobs() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": None}, "choose a source location"),
        ({"source": "nowhere"}, "unknown source location 'nowhere'"),
        (
            {"source": "{la}"},
            "none of the selected components is available at {la}; choose another source",
        ),
        ({"to:{la}": False}, "choose at least one destination location"),
        ({"to:{hq}": True}, "source and destination are the same location ({hq}); untick {hq}"),
        (
            {"additional_files": "../../etc/passwd"},
            "additional file '../../etc/passwd' is not inside {hq}: it escapes the location root with '..'",
        ),
        (
            {"additional_files": "/etc/passwd"},
            "additional file '/etc/passwd' is not inside {hq}: it is absolute",
        ),
        (
            {"additional_files": "notes/missing.txt"},
            "additional file 'notes/missing.txt' does not exist at {hq}",
        ),
        ({"priority": "urgent"}, "unknown priority 'urgent'; choose low, normal or high"),
        (
            {"surprise": 1},
            "the form sent an unexpected field 'surprise'; reopen the action and try again",
        ),
    ],
)
def test_form_errors_come_back_on_the_form(studio, serve, web_ui, change, message) -> None:
    published = studio.publish(files={"main": 10})
    submitted = values(studio, "hq", "la")
    for key, value in change.items():
        key = key.format(**studio.names)
        if value is None:
            submitted.pop(key)
        else:
            submitted[key] = value.format(**studio.names) if isinstance(value, str) else value
    reply = web_ui("alice").launch(SEND, version(published.version_id), submitted)
    assert reply["items"][0]["type"] == "label"
    assert reply["items"][0]["value"].startswith(
        f"**Cannot send:** {message.format(**studio.names)}"
    )
    assert serve.journal.jobs() == []


def test_a_user_without_the_send_permission_is_refused(studio, serve, web_ui) -> None:
    published = studio.publish(files={"main": 10})
    reply = web_ui("carol").launch(SEND, version(published.version_id), values(studio, "hq", "la"))
    assert reply == {"success": False, "message": "carol may not use accsyn Send"}
    assert serve.journal.jobs() == []


def test_a_failed_accsyn_send_fails_the_job_naming_the_file(studio, serve, web_ui) -> None:
    published = studio.publish(files={"main": 5000, "gone": 100})
    missing = next(p for p in files_under(studio.roots["hq"]) if p.name == "gone.bin")
    missing.unlink()
    job = finished(
        serve,
        job_id_of(
            web_ui("alice").launch(
                SEND, version(published.version_id), values(studio, "hq", "vendor")
            )
        ),
    )
    assert job.status == "failed"
    status, description, _ = ftrack_job(studio, job.id)
    assert status == "failed"
    assert (
        "1 of 2 files failed" in description and "gone to " + studio.names["vendor"] in description
    )
    assert "does not exist" in description
    assert studio.availability([published.components["gone"]], "vendor") == [0.0]
    assert studio.availability([published.components["main"]], "vendor") == [100.0]


def test_serve_restarted_in_the_middle_of_a_send_finishes_it(studio, web_ui) -> None:
    studio.throttle("4MB/s")
    service = Service(studio.config, journal=studio.journal(), workers=1, housekeeping_interval=0.2)
    service.start()
    studio.server.wait_for_subscribers("ftrack.action.launch", timeout=10)
    published = studio.publish(files={"main": 12 * 1024**2}, sequences={"plate": (10, 10_000)})
    job_id = job_id_of(
        web_ui("alice").launch(SEND, version(published.version_id), values(studio, "hq", "la"))
    )
    wait_until(lambda: service.journal.progress(job_id).bytes_done > 3 * 1024**2, timeout=60)
    service.stop()
    journal = studio.journal()
    assert journal.job(job_id).status == "running"
    assert ftrack_job(studio, job_id)[0] == "queued"
    sent_before = journal.progress(job_id).bytes_done
    studio.unthrottle()
    again = Service(studio.config, journal=journal, workers=1, housekeeping_interval=0.2)
    again.start()
    try:
        job = finished(again, job_id)
    finally:
        again.stop()
    assert job.status == "done", job.message
    assert sent_before > 0
    assert studio.availability(list(published.components.values()), "la") == [100.0, 100.0]
    assert studio.read(published.components["main"], "la") == [
        published.files["main"][0].read_bytes()
    ]


def test_only_one_serve_per_journal(studio, serve) -> None:
    second = Service(studio.config, journal=studio.journal())
    with pytest.raises(
        Exception, match=r"another serve is already running on journal .*stop it first"
    ):
        second.start()


def test_a_list_of_versions_is_sent(studio, serve, web_ui) -> None:
    published = studio.publish(files={"main": 3000})
    other = studio.publish(files={"main": 2000})
    session = studio.session()
    review = session.create(
        "AssetVersionList",
        {"name": f"review-{studio.uid}", "project_id": studio.server.seed_info.project_id},
    )
    session.create("ListObject", {"list_id": review["id"], "entity_id": published.version_id})
    session.commit()
    selection = [{"entityId": review["id"], "entityType": "list"}]
    alice = web_ui("alice")
    assert [i["label"] for i in alice.discover(selection) if i["actionIdentifier"] == SEND] == [
        "accsyn Send"
    ]
    job = finished(serve, job_id_of(alice.launch(SEND, selection, values(studio, "hq", "la"))))
    assert job.status == "done", job.message
    assert studio.availability([published.components["main"]], "la") == [100.0]
    assert studio.availability([other.components["main"]], "la") == [0.0]
