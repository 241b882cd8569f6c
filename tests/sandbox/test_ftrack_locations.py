"""ftrack's own location machinery (the Locations tutorial) against the sandbox server."""

from __future__ import annotations

import os
import pathlib
import uuid

import ftrack_api
import ftrack_api.accessor.disk
import ftrack_api.exception
import ftrack_api.structure.id
import ftrack_api.symbol
import pytest


def _unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def _disk_location(
    session: ftrack_api.Session, name: str, root: pathlib.Path, priority: int = 50
) -> ftrack_api.entity.location.Location:
    location = session.ensure("Location", {"name": name})
    location.accessor = ftrack_api.accessor.disk.DiskAccessor(prefix=str(root))
    location.structure = ftrack_api.structure.id.IdStructure()
    location.priority = priority
    return location


def test_locations_tutorial_end_to_end(ftrack_session, ftrack_server, tmp_path):
    session = ftrack_session()
    name = _unique("tutorial")

    location = session.create("Location", {"name": name})
    location.accessor = ftrack_api.accessor.disk.DiskAccessor(prefix=str(tmp_path / "storage"))
    location.structure = ftrack_api.structure.id.IdStructure()
    location.priority = 50
    session.commit()

    content = os.urandom(64 * 1024)
    source = tmp_path / "plate.exr"
    source.write_bytes(content)
    component = session.create_component(str(source), data={"name": "plate"}, location=None)
    session.commit()
    assert component.entity_type == "FileComponent"
    assert component["size"] == len(content)
    assert component["file_type"] == ".exr"

    origin = session.get("Location", ftrack_api.symbol.ORIGIN_LOCATION_ID)
    location.add_component(component, origin)

    availability = session.get_component_availability(component)
    assert availability[location["id"]] == 100.0
    assert availability[ftrack_api.symbol.SERVER_LOCATION_ID] == 0.0

    path = pathlib.Path(location.get_filesystem_path(component))
    assert path.read_bytes() == content
    (registration,) = ftrack_server.query(
        f"select resource_identifier from ComponentLocation where component_id is {component['id']}"
    )
    assert registration["location_id"] == location["id"]
    assert path.as_posix().endswith(registration["resource_identifier"])
    assert path.is_relative_to(tmp_path / "storage")
    assert path.name == component["id"][4:] + ".exr"  # IdStructure

    with pytest.raises(ftrack_api.exception.ComponentInLocationError):
        location.add_component(component, origin)

    # Another session sees the registration on the server, not just in a cache.
    other = ftrack_session("alice")
    fetched = other.get("Component", component["id"])
    assert fetched.entity_type == "FileComponent"
    assert other.get_component_availability(fetched)[location["id"]] == 100.0

    location.remove_component(component)
    assert not path.exists()
    assert session.get_component_availability(component)[location["id"]] == 0.0
    with pytest.raises(ftrack_api.exception.ComponentNotInLocationError):
        location.get_resource_identifier(component)
    rows = (
        ftrack_session().query(f"ComponentLocation where component_id is {component['id']}").all()
    )
    assert rows == []


def test_sequence_with_half_its_frames_at_a_second_location(ftrack_session, tmp_path):
    session = ftrack_session()
    site_a = _disk_location(session, _unique("seq.a"), tmp_path / "a")
    site_b = _disk_location(session, _unique("seq.b"), tmp_path / "b")
    frames = tmp_path / "render"
    frames.mkdir()
    for frame in range(1, 5):
        (frames / f"beauty.{frame:04d}.exr").write_bytes(b"f" * frame)

    sequence = session.create_component(
        str(frames / "beauty.%04d.exr [1-4]"), data={"name": "beauty"}, location=site_a
    )
    assert sequence.entity_type == "SequenceComponent"
    assert sequence["padding"] == 4
    members = sorted(sequence["members"], key=lambda m: m["name"])
    assert [m["name"] for m in members] == ["0001", "0002", "0003", "0004"]

    site_b.add_components(members[:2], site_a)

    availability = session.get_component_availability(sequence)
    assert availability[site_a["id"]] == 100.0
    assert availability[site_b["id"]] == 50.0

    # A fresh session computes the same from what the server holds.
    other = ftrack_session("bob")
    fetched = other.get("Component", sequence["id"])
    assert fetched.entity_type == "SequenceComponent"
    availability = other.get_component_availability(fetched, locations=[site_a, site_b])
    assert availability == {site_a["id"]: 100.0, site_b["id"]: 50.0}
    copied = pathlib.Path(site_b.get_filesystem_path(members[1]))
    assert copied.read_bytes() == b"ff"


def test_ensure_creates_once_then_finds(ftrack_session, ftrack_server):
    session = ftrack_session()
    name = _unique("ensured")

    created = session.ensure("Location", {"name": name, "label": "First"})
    again = session.ensure("Location", {"name": name})
    assert again["id"] == created["id"]

    other = ftrack_session("alice")
    found = other.ensure("Location", {"name": name})
    assert found["id"] == created["id"]
    assert found["label"] == "First"
    updated = other.ensure("Location", {"name": name, "label": "Second"}, identifying_keys=["name"])
    assert updated["id"] == created["id"]

    rows = ftrack_session().query(f'select label from Location where name is "{name}"').all()
    assert [(r["id"], r["label"]) for r in rows] == [(created["id"], "Second")]
