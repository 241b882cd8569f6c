"""Server rules client code relies on, the schema declaration, persistence and counters."""

from __future__ import annotations

import hashlib
import json
import uuid

import ftrack_api
import ftrack_api.exception
import ftrack_api.symbol
import pytest
from ftrack_transfer.sandbox.ftrack import FtrackServer

from tests.fixtures.ftrack import wait_until

ServerError = ftrack_api.exception.ServerError


def _name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def test_location_names_are_unique(ftrack_session):
    session = ftrack_session()
    name = _name("unique")
    session.create("Location", {"name": name})
    session.commit()
    session.create("Location", {"name": name})
    with pytest.raises(
        ServerError, match=rf"IntegrityError\(Duplicate entry '{name}' for key 'name' of Location"
    ):
        session.commit()
    session.rollback()
    assert len(ftrack_session().query(f'Location where name is "{name}"').all()) == 1


def test_a_location_holding_components_cannot_be_deleted(ftrack_server, ftrack_session):
    session = ftrack_session()
    version = session.get("AssetVersion", ftrack_server.seed_info.versions["sq020/sh0030/plate/v1"])
    location = session.create("Location", {"name": _name("holding")})
    component = session.create("FileComponent", {"name": "main", "version": version})
    registration = session.create(
        "ComponentLocation",
        {"component": component, "location": location, "resource_identifier": "x"},
    )
    session.commit()

    session.delete(location)
    with pytest.raises(
        ServerError,
        match=r"Cannot delete Location 'holding\.\w+': 1 ComponentLocation row\(s\) still refer to it through 'location_components'",
    ):
        session.commit()
    session.rollback()

    # Deleting the component takes its registrations with it; then the location can go.
    session.delete(component)
    session.commit()
    assert session.query(f"ComponentLocation where id is {registration['id']}").all() == []
    session.delete(location)
    session.commit()
    assert ftrack_session().get("Location", location["id"]) is None


def test_versions_are_numbered_per_asset(ftrack_server, ftrack_session):
    session = ftrack_session()
    asset = session.get("Asset", ftrack_server.seed_info.assets["sq010/sh0020/comp"])
    first = session.create("AssetVersion", {"asset": asset})
    session.commit()
    second, third = (session.create("AssetVersion", {"asset": asset}) for _ in range(2))
    session.commit()
    assert [v["version"] for v in (first, second, third)] == [1, 2, 3]
    explicit = session.create("AssetVersion", {"asset": asset, "version": 10})
    session.commit()
    assert explicit["version"] == 10
    session.create("AssetVersion", {"asset": asset})
    session.commit()
    latest = session.query(
        f"AssetVersion where asset_id is {asset['id']} order by version descending"
    ).first()
    assert latest["version"] == 11


def test_link_and_ancestors(ftrack_server, ftrack_session):
    info = ftrack_server.seed_info
    session = ftrack_session()
    version = session.get("AssetVersion", info.versions["sq010/sh0010/comp/v1"])
    assert version["link"] == [
        {"type": "Project", "id": info.project_id, "name": "demo"},
        {"type": "TypedContext", "id": info.sequences["sq010"], "name": "sq010"},
        {"type": "TypedContext", "id": info.shots["sq010/sh0010"], "name": "sh0010"},
        {"type": "AssetVersion", "id": version["id"], "name": "comp v1"},
    ]
    task = session.get("Task", info.tasks["sq010/sh0010/lighting"])
    assert [entry["name"] for entry in task["link"]] == ["demo", "sq010", "sh0010", "lighting"]
    assert [a["name"] for a in task["ancestors"]] == ["sq010", "sh0010"]
    assert [a.entity_type for a in task["ancestors"]] == ["Sequence", "Shot"]
    assert task["project_id"] == info.project_id
    assert task["project"]["full_name"] == "Demo Project"

    # A new shot under a sequence gets its project and link from the server.
    sequence = session.get("Sequence", info.sequences["sq020"])
    shot = session.create("Shot", {"name": _name("sh"), "parent": sequence})
    session.commit()
    assert shot["project_id"] == info.project_id
    assert shot["context_type"] == "task"
    assert shot["object_type_id"] == "bad911de-3bd6-47b9-8b46-3476e237cb36"
    assert [entry["id"] for entry in shot["link"]] == [info.project_id, sequence["id"], shot["id"]]
    project = session.get("Project", info.project_id)
    assert shot["id"] in {d["id"] for d in project["descendants"]}


def test_components_jobs_and_defaults(ftrack_server, ftrack_session):
    session = ftrack_session()
    user = session.query('User where username is "pipeline"').one()
    job = session.create(
        "Job", {"user": user, "status": "running", "data": json.dumps({"description": "Sending"})}
    )
    session.commit()
    fetched = ftrack_session().get("Job", job["id"])
    assert (fetched["type"], fetched["status"]) == ("api_job", "running")
    assert fetched["created_at"] is not None
    job["status"] = "done"
    session.commit()
    (row,) = ftrack_server.query(f"select status, finished_at from Job where id is {job['id']}")
    assert row["status"] == "done"
    assert row["finished_at"]["__type__"] == "datetime"

    version = session.get("AssetVersion", ftrack_server.seed_info.versions["sq010/sh0020/plate/v1"])
    container = session.create("ContainerComponent", {"name": "bundle", "version": version})
    session.commit()
    component = ftrack_session().get("Component", container["id"])
    assert (component.entity_type, component["system_type"]) == ("ContainerComponent", "container")
    assert component["size"] == 0
    listed = {
        c.entity_type
        for c in ftrack_session().query(f"Component where version_id is {version['id']}")
    }
    assert listed == {"ContainerComponent"}


def test_metadata_and_notes(ftrack_server, ftrack_session):
    session = ftrack_session()
    version = session.get("AssetVersion", ftrack_server.seed_info.versions["sq020/sh0030/plate/v1"])
    component = session.create("FileComponent", {"name": "main", "version": version})
    session.commit()
    component["metadata"]["checksum"] = "sha256:abc"
    session.commit()
    author = session.query('User where username is "alice"').one()
    version.create_note("Please send to LA", author)
    session.commit()

    other = ftrack_session("bob")
    assert dict(other.get("Component", component["id"])["metadata"]) == {"checksum": "sha256:abc"}
    (note,) = other.get("AssetVersion", version["id"])["notes"]
    assert note["content"] == "Please send to LA"
    assert note["author"]["username"] == "alice"


def test_schema_declaration_and_cache(fresh_ftrack_server, ftrack_session, tmp_path):
    server = fresh_ftrack_server
    schemas = server.schema.client_schemas
    assert (
        server.schema.hash
        == hashlib.md5(
            json.dumps(schemas, sort_keys=True).encode("utf-8"), usedforsecurity=False
        ).hexdigest()
    )
    by_id = {s["id"]: s for s in schemas}
    assert by_id["Component"]["default_projections"] == ["id", "system_type"]
    assert by_id["Project"]["default_projections"] == ["context_type", "id", "name"]
    assert by_id["Project"]["alias_for"] == "Show"
    assert by_id["Shot"]["alias_for"] == {
        "id": "Task",
        "classifiers": {"object_typeid": "bad911de-3bd6-47b9-8b46-3476e237cb36"},
    }
    assert by_id["JobComponent"]["primary_key"] == ["component_id", "job_id"]
    assert by_id["Job"]["properties"]["status"]["enum"] == ["queued", "running", "done", "failed"]

    cache = tmp_path / "cache"
    cache.mkdir()
    server.reset_stats()
    first = ftrack_session(server=server, schema_cache_path=cache)
    second = ftrack_session("bob", server=server, schema_cache_path=cache)
    assert server.stats.operations == {"query_server_information": 2, "query_schemas": 1}
    server.reset_stats()
    ftrack_session(server=server)  # the test run's shared cache is filled up front
    assert server.stats.operations == {"query_server_information": 1}
    assert set(first.types) == set(second.types) == set(by_id)
    assert issubclass(first.types["Location"], ftrack_api.entity.location.Location)
    assert issubclass(first.types["SequenceComponent"], ftrack_api.entity.component.Component)


def test_state_survives_a_restart(ftrack_server_factory, ftrack_session, tmp_path):
    state = tmp_path / "state"
    name = _name("persisted")
    with FtrackServer(state_dir=state) as server:
        key, bob_key, seed = server.api_key, server.user_key("bob"), server.seed_info
        session = ftrack_session(server=server)
        session.create("Location", {"name": name, "label": "Kept"})
        session.commit()
        # Saved after the commit, in the background, without waiting for the stop.
        state_file = state / "ftrack-sandbox.json"
        wait_until(lambda: name in state_file.read_text())
        session.close()
    assert not server.running

    restarted = ftrack_server_factory(state_dir=state)
    assert (restarted.api_key, restarted.user_key("bob"), restarted.seed_info) == (
        key,
        bob_key,
        seed,
    )
    other = ftrack_session("bob", server=restarted, api_key=bob_key)
    assert other.query(f'Location where name is "{name}"').one()["label"] == "Kept"
    assert other.get("AssetVersion", seed.versions["sq010/sh0010/plate/v2"])["version"] == 2
    assert other.get("Location", ftrack_api.symbol.SERVER_LOCATION_ID)["name"] == "ftrack.server"
    # The id counter carries on: new rows still sort after the old ones.
    other.create("Location", {"name": name + ".later"})
    other.commit()
    names = [loc["name"] for loc in other.query("select name from Location")]
    assert names.index(name + ".later") == len(names) - 1


def test_seed_data(ftrack_server, ftrack_session):
    info = ftrack_server.seed_info
    assert set(info.locations) >= {
        "ftrack.origin",
        "ftrack.unmanaged",
        "ftrack.review",
        "ftrack.server",
        "ftrack.connect",
        "hq",
        "la",
        "cloud",
        "vera@vfxvendor.example",
    }
    assert info.locations["ftrack.connect"] == ftrack_api.symbol.CONNECT_LOCATION_ID
    session = ftrack_session("alice")
    alice = session.query('User where username is "alice"').one()
    assert alice["email"] == "alice@studio.example"
    groups = {m["group"]["name"] for m in alice["memberships"]}
    assert groups == {"coordinators"}
    vendors = session.query('Group where name is "vendors"').one()
    assert [m["user"]["username"] for m in vendors["memberships"]] == ["vera@vfxvendor.example"]
    appointment = session.get("Appointment", info.appointment_id)
    assert (appointment["type"], appointment["context"]["id"]) == (
        "assignment",
        info.tasks["sq010/sh0020/compositing"],
    )
    task = session.get("Task", info.tasks["sq010/sh0020/compositing"])
    assert [a["resource"]["username"] for a in task["assignments"]] == ["vera@vfxvendor.example"]
    assert task["type"]["name"] == "Compositing"
    plate = session.get("Asset", info.assets["sq010/sh0010/plate"])
    assert plate["type"]["name"] == "Plate"
    assert sorted(v["version"] for v in plate["versions"]) == [1, 2]
    assert all(not v["components"] for v in plate["versions"])


def test_an_unseeded_server_has_only_the_builtins(ftrack_server_factory, ftrack_session):
    server = ftrack_server_factory(seed=False)
    assert server.seed_info is None
    session = ftrack_session(server=server)
    assert {loc["id"] for loc in session.query("Location")} == {
        ftrack_api.symbol.ORIGIN_LOCATION_ID,
        ftrack_api.symbol.UNMANAGED_LOCATION_ID,
        ftrack_api.symbol.REVIEW_LOCATION_ID,
        ftrack_api.symbol.SERVER_LOCATION_ID,
        ftrack_api.symbol.CONNECT_LOCATION_ID,
    }
    assert [u["username"] for u in session.query("select username from User")] == ["pipeline"]
    assert session.query("Context").all() == []


def test_stats_count_requests_and_operations(fresh_ftrack_server, ftrack_session):
    server = fresh_ftrack_server
    session = ftrack_session(server=server)
    server.reset_stats()
    location = session.create("Location", {"name": "counted"})
    session.commit()
    session.query("Location").all()
    location["label"] = "Counted"
    session.delete(session.create("Location", {"name": "never.sent"}))
    session.commit()
    stats = server.stats
    assert stats.requests == 3
    assert stats.write_requests == 2
    assert stats.operations == {"create": 1, "query": 1, "update": 1}
    assert [[op["action"] for op in batch] for batch in server.request_log] == [
        ["create"],
        ["query"],
        ["update"],
    ]
    server.reset_stats()
    assert server.stats.requests == 0
    assert server.request_log == []


def test_environment_points_plain_sessions_at_the_sandbox(ftrack_env, ftrack_server):
    ftrack_env("alice")
    session = ftrack_api.Session()
    try:
        assert session.server_url == ftrack_server.url
        me = session.query('User where username is "alice"').one()
        assert me["id"] == ftrack_server.seed_info.users["alice"]
    finally:
        session.close()
