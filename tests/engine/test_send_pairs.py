"""Sends between every kind of location, through the engine, checked as a user would:
the bytes at the destination, availability as ftrack reports it, the Job's end."""

from __future__ import annotations

import json

import pytest
from ftrack_transfer.transfer.engine import JobRunner, submit
from ftrack_transfer.transfer.ftrack_session import session_factory
from ftrack_transfer.transfer.selection import EntityRef

from tests.fixtures.studio import StudioCase, files_under, partial_files


def send(
    studio: StudioCase, source: str, destinations: list[str], selection: list[EntityRef]
) -> str:
    journal = studio.journal()
    job_id = submit(
        journal, source=studio.names[source], destinations=[studio.names[d] for d in destinations],
        selection=selection, origin="test", username="pipeline", user_id=None, title="test send",
    )  # fmt: skip
    status = JobRunner(journal, studio.config, session_factory(), job_id).run()
    assert status == "done", journal.job(job_id).message
    return job_id


@pytest.mark.parametrize(
    ("source", "destination"), [("hq", "la"), ("la", "cloud"), ("cloud", "hq")]
)
def test_a_version_travels_between_locations_byte_identical(
    studio: StudioCase, source: str, destination: str
) -> None:
    # 6 MiB crosses several 1 MiB chunks (and S3's 5 MiB part minimum); 200 frames
    # exercise many small files in flight.
    published = studio.publish(files={"main": 6 * 1024**2 + 123}, sequences={"plate": (200, 4096)})
    ids = list(published.components.values())
    if source != "hq":
        send(studio, "hq", [source], [EntityRef("AssetVersion", published.version_id)])
    if destination == "hq":
        # Stock ftrack removal through our accessor, so hq really receives it again.
        session = studio.session()
        hq = studio.location(session, "hq")
        for component_id in ids:
            hq.remove_component(session.get("Component", component_id))
        assert studio.availability(ids, "hq") == [0.0, 0.0]
        assert files_under(studio.roots["hq"]) == []

    job_id = send(studio, source, [destination], [EntityRef("AssetVersion", published.version_id)])

    assert studio.availability(ids, destination) == [100.0, 100.0]
    assert studio.read(published.components["main"], destination) == [
        published.files["main"][0].read_bytes()
    ]
    assert studio.read(published.components["plate"], destination) == [
        p.read_bytes() for p in published.files["plate"]
    ]
    job = studio.journal().job(job_id)
    session = studio.session()
    ftrack_job = session.get("Job", job.ftrack_job_id)
    assert ftrack_job["status"] == "done"
    description = json.loads(ftrack_job["data"])["description"]
    assert "sent 2 components (201 files" in description
    assert f"from {studio.names[source]} to {studio.names[destination]}" in description


def test_disk_to_disk_uses_a_local_copy_and_registers_the_template_path(
    studio: StudioCase, tmp_path
) -> None:
    config = studio.config_path.read_text()
    other = tmp_path / "hq2"
    other.mkdir()
    studio.config_path.write_text(
        config + f'\n[locations."hq2-{studio.uid}"]\naccessor = "disk"\nroot = "{other}"\n'
    )
    studio.names["hq2"] = f"hq2-{studio.uid}"
    published = studio.publish(files={"main": 3 * 1024**2}, sequences={"plate": (5, 1000)})
    send(studio, "hq", ["hq2"], [EntityRef("AssetVersion", published.version_id)])
    session = studio.session()
    hq2 = studio.location(session, "hq2")
    component = session.get("Component", published.components["main"])
    identifier = hq2.get_resource_identifier(component)
    assert identifier.endswith("/main.bin")
    assert (other / identifier).read_bytes() == published.files["main"][0].read_bytes()
    assert partial_files(other) == []
    assert len(files_under(other)) == 6


def test_one_send_to_several_destinations(studio: StudioCase) -> None:
    published = studio.publish(files={"main": 1500}, sequences={"plate": (3, 100)})
    ids = list(published.components.values())
    send(studio, "hq", ["la", "cloud", "vendor"], [EntityRef("AssetVersion", published.version_id)])
    for destination in ("la", "cloud", "vendor"):
        assert studio.availability(ids, destination) == [100.0, 100.0], destination
        assert studio.read(published.components["plate"], destination) == [
            p.read_bytes() for p in published.files["plate"]
        ]
