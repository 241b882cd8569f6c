"""Stock ftrack_api location calls through each accessor, against the sandbox server:
what any studio script (or ftrack's own tools) does with our locations."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.studio import StudioCase

ROLES = ["hq", "la", "cloud", "vendor"]


@pytest.mark.parametrize("role", ROLES)
def test_publish_read_copy_and_remove_with_stock_ftrack_calls(
    studio: StudioCase, role: str
) -> None:
    # create_component(..., location=L) is ftrack's own add_component from origin.
    published = studio.publish(files={"main": 300_000}, sequences={"plate": (3, 1000)}, role=role)
    main, plate = published.components["main"], published.components["plate"]
    expected = published.files["main"][0].read_bytes()
    session = studio.session()
    location = studio.location(session, role)
    component = session.get("Component", main)
    sequence = session.get("Component", plate)

    assert session.get_component_availability(component)[location["id"]] == 100.0
    assert session.get_component_availability(sequence)[location["id"]] == 100.0
    identifier = location.get_resource_identifier(component)
    assert identifier.endswith("/main.bin") and not identifier.startswith("/")
    data = location.accessor.open(identifier, "rb")
    try:
        assert data.read() == expected
    finally:
        data.close()
    if role in ("hq", "vendor"):
        with open(location.get_filesystem_path(component), "rb") as handle:
            assert handle.read() == expected
    if role == "cloud":
        assert requests.get(location.get_url(component), timeout=30).content == expected
    if role == "la":
        assert location.get_url(component).startswith(f"sftp://{studio.sftp.username}@127.0.0.1:")

    # ftrack's own copy between two locations (Location._add_data through our open()).
    target_role = "hq" if role != "hq" else "la"
    target = studio.location(session, target_role)
    if session.get_component_availability(component)[target["id"]] == 100.0:
        target.remove_component(component)
    target.add_component(component, location)
    assert studio.read(main, target_role) == [expected]

    location.remove_component(component)
    location.remove_component(sequence)
    assert session.get_component_availability(component)[location["id"]] == 0.0
    assert session.get_component_availability(sequence)[location["id"]] == 0.0
    assert not location.accessor.exists(identifier)
