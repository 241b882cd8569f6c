"""The query language: every query string the client and the send actions issue,
row shapes, polymorphism, paging and speed on a studio-sized table."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

import ftrack_api
import pytest
import requests
from ftrack_transfer.sandbox.ftrack import FtrackServer


def raw_call(server: FtrackServer, batch: list[dict[str, Any]], user: str = "pipeline") -> Any:
    """POST a batch to /api and return the undecoded JSON answer (for wire shapes)."""
    response = requests.post(
        f"{server.url}/api",
        data=json.dumps(batch),
        headers={"ftrack-user": user, "ftrack-api-key": server.api_key},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


@dataclasses.dataclass
class World:
    server: FtrackServer
    session: ftrack_api.Session
    project: str
    shot: str
    sequence: str
    task: str
    asset: str
    version: str
    other_version: str
    file: str
    sequence_component: str
    members: list[str]
    here: str
    there: str
    here_name: str
    registration: str
    dailies: str
    user: str


@pytest.fixture
def world(fresh_ftrack_server, ftrack_session) -> World:
    """A file in two locations and a three-frame sequence in one, on sh0010's plate v1."""
    server = fresh_ftrack_server
    info = server.seed_info
    session = ftrack_session(server=server)
    version = session.get("AssetVersion", info.versions["sq010/sh0010/plate/v1"])
    here = session.create("Location", {"name": "studio.here", "label": "Here"})
    there = session.create("Location", {"name": "studio.there", "label": "There"})
    file = session.create(
        "FileComponent", {"name": "main", "file_type": ".exr", "version": version}
    )
    sequence = session.create(
        "SequenceComponent", {"name": "seq", "file_type": ".exr", "padding": 4, "version": version}
    )
    members = [
        session.create(
            "FileComponent", {"name": f"{i:04d}", "file_type": ".exr", "container": sequence}
        )
        for i in (1, 2, 3)
    ]
    sequence["members"].extend(members)
    registration = session.create(
        "ComponentLocation",
        {"component": file, "location": here, "resource_identifier": "main.exr"},
    )
    session.create(
        "ComponentLocation", {"component": file, "location": there, "resource_identifier": "m.exr"}
    )
    for item in (sequence, *members):
        session.create(
            "ComponentLocation", {"component": item, "location": here, "resource_identifier": "s"}
        )
    project = session.get("Project", info.project_id)
    dailies = session.create("AssetVersionList", {"name": "dailies", "project": project})
    session.commit()
    dailies["items"].append(version)
    session.commit()
    return World(
        server=server,
        session=session,
        project=info.project_id,
        shot=info.shots["sq010/sh0010"],
        sequence=info.sequences["sq010"],
        task=info.tasks["sq010/sh0010/compositing"],
        asset=info.assets["sq010/sh0010/plate"],
        version=version["id"],
        other_version=info.versions["sq010/sh0010/comp/v1"],
        file=file["id"],
        sequence_component=sequence["id"],
        members=[m["id"] for m in members],
        here=here["id"],
        there=there["id"],
        here_name="studio.here",
        registration=registration["id"],
        dailies=dailies["id"],
        user=info.users["alice"],
    )


def test_every_query_string_of_the_client_and_the_send_actions(world: World, ftrack_session):
    w = world
    session = ftrack_session(server=w.server)  # empty cache: every answer comes from the server
    m1, m2, m3 = w.members
    published = {w.file, w.sequence_component}  # frames hang off their sequence, not a version

    def ids(expression: str) -> list[str]:
        return [e["id"] for e in session.query(expression).all()]

    # Issued by ftrack_api itself (session, locations, structures, populate).
    assert ids(f'select id from Location where name is "{w.here_name}" limit 2') == [w.here]
    assert (
        session.query(f"select name from Location where id is {w.here}").one()["name"]
        == w.here_name
    )
    assert {w.here, w.there} <= set(ids("select id from Location"))
    assert ids(f'select id from AssetVersion where (id is "{w.version}")') == [w.version]
    (component,) = session.query(
        f'select id, system_type from Component where (id is "{w.file}")'
    ).all()
    assert component.entity_type == "FileComponent"
    assert component["system_type"] == "file"
    (project,) = session.query(
        f'select context_type, id, name from Project where (id is "{w.project}")'
    )
    assert (project["name"], project["context_type"]) == ("demo", "show")
    (version,) = session.query(f"select link from AssetVersion where id is {w.version}")
    assert [entry["name"] for entry in version["link"]] == ["demo", "sq010", "sh0010", "plate v1"]
    (version,) = session.query(f"select asset.id from AssetVersion where id is {w.version}")
    assert version["asset"]["id"] == w.asset
    (version,) = session.query(f"select version from AssetVersion where id is {w.version}")
    assert version["version"] == 1
    (asset,) = session.query(f"select name from Asset where id is {w.asset}")
    assert asset["name"] == "plate"
    for entity_type, entity_id in (
        ("FileComponent", w.file),
        ("SequenceComponent", w.sequence_component),
    ):
        (row,) = session.query(f"select version.id from {entity_type} where id is {entity_id}")
        assert row["version"]["id"] == w.version
    (member,) = session.query(
        f"select container.id, container.system_type from FileComponent where id is {m1}"
    )
    assert member["container"]["id"] == w.sequence_component
    assert member["container"]["system_type"] == "sequence"
    (sequence,) = session.query(
        f"select members from SequenceComponent where id is {w.sequence_component}"
    )
    assert [m["id"] for m in sequence["members"]] == w.members
    rows = session.query(
        "select component_id, resource_identifier from ComponentLocation "
        f"where location_id is {w.here} and component_id in ({w.file}, {m2})"
    ).all()
    assert {(r["component_id"], r["resource_identifier"]) for r in rows} == {
        (w.file, "main.exr"),
        (m2, "s"),
    }
    (row,) = session.query(
        f"select component_locations.location_id from FileComponent where id is {w.file}"
    )
    assert {cl["location_id"] for cl in row["component_locations"]} == {w.here, w.there}
    rows = session.query(
        f"select component_locations.location_id from FileComponent where id in ({m1},{m2},{m3})"
    ).all()
    assert [[cl["location_id"] for cl in r["component_locations"]] for r in rows] == [[w.here]] * 3
    (row,) = session.query(
        "select members, component_locations.location_id from SequenceComponent "
        f"where id is {w.sequence_component}"
    )
    assert len(row["members"]) == 3
    assert [cl["location_id"] for cl in row["component_locations"]] == [w.here]
    assert ids(
        f"select id from ComponentLocation where component_id is {w.file} and location_id is {w.here}"
    ) == [w.registration]

    # Issued by send and transfer actions, as passed to session.query.
    assert {w.here, w.there} <= set(ids("Location"))
    labels = {r["name"]: r["label"] for r in session.query("select name, label from Location")}
    assert labels[w.here_name] == "Here"
    assert session.query(f'Location where name is "{w.here_name}"').one()["id"] == w.here
    listed = session.query(f'List where id is "{w.dailies}"').one()
    assert listed.entity_type == "AssetVersionList"
    assert [v["id"] for v in listed["items"]] == [w.version]
    assert session.query(f"Project where id={w.project}").one()["name"] == "demo"
    assert (
        set(ids(f'Component where version.asset.parent.project_id is "{w.project}"')) == published
    )
    x = w.shot
    assert set(
        ids(
            f'Component where version.asset.parent.id is "{x}" or version.asset.parent.parent.id is "{x}" '
            f'or version.asset.parent.parent.parent.id is "{x}" or version.task.id is "{x}" '
            f'or version.id is "{x}"'
        )
    ) == {w.file, w.sequence_component}
    assert set(ids(f'Component where version_id in ("{w.version}", "{w.other_version}")')) == {
        w.file,
        w.sequence_component,
    }
    assert ids(f'Component where id in ("{w.file}")') == [w.file]
    assert set(
        ids(
            f'Component where version.asset.parent.project_id is "{w.project}" '
            f'and component_locations.location_id is "{w.there}"'
        )
    ) == {w.file}
    assert set(
        ids(
            f'Component where (version.asset.parent.ancestors.id in ("{w.sequence}") '
            f'or version.asset.parent.id in ("{w.sequence}")) '
            f'and component_locations.location_id is "{w.here}"'
        )
    ) == {w.file, w.sequence_component}
    for expression in (
        f'ComponentLocation where component.id="{w.file}" and location.id="{w.here}"',
        f"ComponentLocation where component.id={w.file} and location.id={w.here}",
    ):
        assert session.query(expression).first()["id"] == w.registration
    assert ids(f'User where (id is "{w.user}")') == [w.user]

    # Also accepted, and useful to project code.
    v2 = w.server.seed_info.versions["sq010/sh0010/plate/v2"]
    numbers = session.query(
        f'AssetVersion where asset.parent.id is "{w.shot}" order by version descending'
    )
    assert [(v["id"], v["version"]) for v in numbers][:2] in (
        [(v2, 2), (w.version, 1)],
        [(v2, 2), (w.other_version, 1)],
    )
    here = set(ids(f'Component where component_locations any (location.name is "{w.here_name}")'))
    assert here == {*published, *w.members}

    # The lazy loads that follow from the action code.
    (row,) = session.query(f"select component_locations from FileComponent where id is {w.file}")
    assert len(row["component_locations"]) == 2
    (row,) = session.query(f"select location from ComponentLocation where id is {w.registration}")
    assert row["location"]["id"] == w.here


def test_rows_hold_key_type_projections_and_system_fields_only(world: World):
    w = world
    (task,) = raw_call(
        w.server, [{"action": "query", "expression": "select name from Task limit 1"}]
    )[0]["data"]
    assert set(task) == {
        "__entity_type__",
        "id",
        "name",
        "context_type",
        "object_type_id",
        "project_id",
    }
    assert task["context_type"] == "task"
    assert task["project_id"] == w.project

    answer = raw_call(
        w.server,
        [
            {
                "action": "query",
                "expression": f"select status.state.short from Task where id is {w.task}",
            }
        ],
    )[0]
    status = answer["data"][0]["status"]
    assert status["__entity_type__"] == "Status"
    assert status["state"] == {
        "__entity_type__": "State",
        "id": status["state"]["id"],
        "short": "NOT_STARTED",
    }
    assert answer["metadata"] == {"next": {"offset": None}}

    rows = raw_call(
        w.server,
        [
            {
                "action": "query",
                "expression": f"select version.asset.name from Component where id in ({w.file}, {w.members[0]})",
            }
        ],
    )[0]["data"]
    assert [r["__entity_type__"] for r in rows] == ["FileComponent", "FileComponent"]
    assert rows[0]["version"]["asset"]["name"] == "plate"
    assert rows[1]["version"] is None  # a frame hangs off its sequence, not a version
    assert set(rows[0]) == {"__entity_type__", "id", "system_type", "version_id", "version"}


def test_polymorphic_queries_return_concrete_types(world: World):
    session = world.session
    contexts = session.query(
        'Context where name in ("demo", "sq010", "sh0010", "compositing")'
    ).all()
    kinds = {c["name"]: c.entity_type for c in contexts}
    assert kinds["demo"] == "Project"
    assert kinds["sq010"] == "Sequence"
    assert kinds["sh0010"] == "Shot"
    assert kinds["compositing"] == "Task"
    typed = session.query(f'TypedContext where project_id is "{world.project}"').all()
    assert "Project" not in {t.entity_type for t in typed}
    assert len(typed) == 2 + 3 + 6
    appointment = session.get("Appointment", world.server.seed_info.appointment_id)
    assert appointment["resource"].entity_type == "User"
    assert appointment["resource"]["username"] == "vera@vfxvendor.example"
    assert appointment["context"].entity_type == "Task"


def test_all_pages_of_a_large_result_in_order(fresh_ftrack_server, ftrack_session):
    server = fresh_ftrack_server
    session = ftrack_session(server=server)
    names = [f"page-{i:04d}" for i in range(1234)]
    for name in names:
        session.create("Location", {"name": name})
    session.commit()

    server.reset_stats()
    found = session.query('Location where name like "page-%"').all()

    assert [f["name"] for f in found] == names
    # Three pages of at most 500; the names came back with the creates, so no lazy loads.
    assert server.stats.queries == 3
    pages = [
        batch[0]["expression"] for batch in server.request_log if "like" in batch[0]["expression"]
    ]
    assert [p.rsplit(" ", 4)[1:] for p in pages] == [
        ["offset", "0", "limit", "500"],
        ["offset", "500", "limit", "500"],
        ["offset", "1000", "limit", "500"],
    ]
    descending = session.query(
        'select name from Location where name like "page-1%" order by name descending'
    )
    assert [d["name"] for d in descending][:3] == ["page-1233", "page-1232", "page-1231"]
    assert (
        session.query('Location where name like "page-%" offset 1230').all()[0]["name"]
        == "page-1230"
    )
    with pytest.raises(ftrack_api.exception.MultipleResultsFoundError):
        session.query('Location where name like "page-%"').one()
    assert session.query('Location where name is "nowhere"').first() is None


def test_studio_sized_queries_stay_fast(fresh_ftrack_server):
    server = fresh_ftrack_server
    info = server.seed_info
    versions = list(info.versions.values())
    store_location = str(uuid.uuid4())
    ops: list[dict[str, Any]] = [
        {
            "action": "create",
            "entity_type": "Location",
            "entity_data": {"id": store_location, "name": "bulk"},
        }
    ]
    component_ids = []
    for i in range(20000):
        component_id = str(uuid.uuid4())
        component_ids.append(component_id)
        ops.append(
            {
                "action": "create",
                "entity_type": "FileComponent",
                "entity_data": {
                    "id": component_id,
                    "name": f"c{i}",
                    "version_id": versions[i % 5],
                    "size": i,
                },
            }
        )
        if i % 2 == 0:
            ops.append(
                {
                    "action": "create",
                    "entity_type": "ComponentLocation",
                    "entity_data": {
                        "component_id": component_id,
                        "location_id": store_location,
                        "resource_identifier": f"r/{i}",
                    },
                }
            )
    raw_call(server, ops)

    def timed(expression: str) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        answer = raw_call(server, [{"action": "query", "expression": expression}])[0]
        return time.perf_counter() - started, answer

    wanted = ", ".join(component_ids[:1000:2])
    elapsed, answer = timed(
        "select component_id, resource_identifier from ComponentLocation "
        f"where location_id is {store_location} and component_id in ({wanted}) offset 0 limit 500"
    )
    assert len(answer["data"]) == 500
    assert elapsed < 0.5
    elapsed, answer = timed(
        f'select id, system_type from Component where version.asset.parent.project_id is "{info.project_id}" '
        f'and component_locations.location_id is "{store_location}" offset 9500 limit 500'
    )
    assert len(answer["data"]) == 500
    assert answer["metadata"]["next"]["offset"] is None
    assert elapsed < 0.5
    elapsed, answer = timed("select id from Component where size >= 19999 offset 0 limit 500")
    assert [r["id"] for r in answer["data"]] == [component_ids[-1]]
    assert elapsed < 0.5
