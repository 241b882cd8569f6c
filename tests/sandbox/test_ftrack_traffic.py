"""Traffic conformance: the client, driven through a recorded location flow against the
sandbox, sends the same requests it sent to a real ftrack server.

The client decides what to ask from what earlier answers contained (a create answer
without a relation makes it load that relation lazily later), so matching request for
request shows the sandbox answers the way the real server does.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import ftrack_api

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

PLUGIN = textwrap.dedent(
    '''
    """Two disk locations with ftrack's StandardStructure, as a studio plugin sets them up."""
    import functools

    import ftrack_api
    import ftrack_api.accessor.disk
    import ftrack_api.structure.standard


    def configure(event, roots):
        session = event["data"]["session"]
        for name, root in sorted(roots.items()):
            location = session.ensure("Location", {"name": name})
            location.accessor = ftrack_api.accessor.disk.DiskAccessor(prefix=root)
            location.structure = ftrack_api.structure.standard.StandardStructure()
            location.priority = 10


    def register(session, roots=None):
        if not isinstance(session, ftrack_api.Session):
            return
        session.event_hub.subscribe(
            "topic=ftrack.api.session.configure-location",
            functools.partial(configure, roots=roots),
        )
    '''
)

CL = "select component_id, resource_identifier from ComponentLocation where location_id is {} and component_id in ({})"
PAGE = " offset 0 limit 500"


def _expected_requests() -> list[Any]:
    """The recorded flow: queries as strings, write batches as (action, type, keys) lists."""

    def cl(location: str, *components: str) -> str:
        return CL.format(location, ", ".join(components)) + PAGE

    def create_cl() -> tuple[str, str, tuple[str, ...]]:
        return (
            "create",
            "ComponentLocation",
            ("component", "id", "location", "resource_identifier"),
        )

    member = ("create", "FileComponent", ("container", "file_type", "id", "name", "size"))
    return [
        # Session start with the plugin; empty schema cache.
        "query_server_information",
        "query_schemas",
        'select id from Location where name is "site.a" limit 2',
        [("create", "Location", ("id", "name"))],
        'select id from Location where name is "site.b" limit 2',
        [("create", "Location", ("id", "name"))],
        'select id from Location where name is "site.a" limit 2',
        'select id from Location where name is "site.b" limit 2',
        "select id from Location" + PAGE,
        # version.create_component(file, location=site.a)
        'select id from AssetVersion where (id is "<V>")' + PAGE,
        cl("<A>", "<F>"),
        "select link from AssetVersion where id is <V>" + PAGE,
        'select context_type, id, name from Project where (id is "<P>")' + PAGE,
        "select asset.id from AssetVersion where id is <V>" + PAGE,
        "select version from AssetVersion where id is <V>" + PAGE,
        "select name from Asset where id is <ASSET>" + PAGE,
        [("create", "FileComponent", ("file_type", "id", "name", "size", "version")), create_cl()],
        # session.create_component(sequence, location=site.a)
        cl("<A>", "<S>"),
        cl("<A>", "<M1>", "<M2>", "<M3>"),
        [
            (
                "create",
                "SequenceComponent",
                ("file_type", "id", "name", "padding", "size", "version_id"),
            ),
            member,
            member,
            member,
            ("update", "SequenceComponent", ("members",)),
            create_cl(),
            create_cl(),
            create_cl(),
        ],
        "select version.id from SequenceComponent where id is <S>" + PAGE,
        [create_cl()],
        # availability and path
        "select component_locations.location_id from FileComponent where id is <F>" + PAGE,
        "select id from Location" + PAGE,
        cl("<A>", "<F>"),
        # site.b.add_component(file, site.a)
        cl("<B>", "<F>"),
        cl("<A>", "<F>"),
        "select container.id, container.system_type from FileComponent where id is <F>" + PAGE,
        "select version.id from FileComponent where id is <F>" + PAGE,
        cl("<A>", "<F>"),
        [create_cl()],
        # site.b.add_component(sequence, site.a), then three paths at site.b
        cl("<B>", "<S>"),
        "select members from SequenceComponent where id is <S>" + PAGE,
        cl("<B>", "<M1>", "<M2>", "<M3>"),
        *[
            query
            for m in ("<M1>", "<M2>", "<M3>")
            for query in (
                cl("<A>", m),
                f"select container.id, container.system_type from FileComponent where id is {m}"
                + PAGE,
                cl("<A>", m),
            )
        ],
        [create_cl(), create_cl(), create_cl()],
        cl("<A>", "<S>"),
        [create_cl()],
        cl("<B>", "<F>"),
        cl("<B>", "<F>"),
        cl("<B>", "<S>"),
        # site.a.remove_component(file)
        cl("<A>", "<F>"),
        cl("<A>", "<F>"),
        "select id from ComponentLocation where component_id is <F> and location_id is <A>" + PAGE,
        [("delete", "ComponentLocation", ())],
        # A second session with the same schema cache.
        "query_server_information",
        'select id from Location where name is "site.a" limit 2',
        "select name from Location where id is <A>" + PAGE,
        'select id from Location where name is "site.b" limit 2',
        "select name from Location where id is <B>" + PAGE,
        'select id, system_type from Component where (id is "<F>")' + PAGE,
        "select component_locations.location_id from FileComponent where id is <F>" + PAGE,
        "select id from Location" + PAGE,
        'select id, system_type from Component where (id is "<S>")' + PAGE,
        "select members, component_locations.location_id from SequenceComponent where id is <S>"
        + PAGE,
        "select id from Location" + PAGE,
        "select component_locations.location_id from FileComponent where id in (<M1>,<M2>,<M3>)"
        + PAGE,
    ]


def _normalise(batch: list[dict[str, Any]], names: dict[str, str]) -> Any:
    def name(match: re.Match[str]) -> str:
        return names.get(match.group(0), "<id>")

    if all(op["action"] in ("create", "update", "delete") for op in batch):
        return [
            (
                op["action"],
                op["entity_type"],
                tuple(sorted(k for k in op.get("entity_data", {}) if k != "__entity_type__")),
            )
            for op in batch
        ]
    assert len(batch) == 1, batch
    op = batch[0]
    if op["action"] != "query":
        return op["action"]
    return _UUID.sub(name, op["expression"])


def test_recorded_location_flow(fresh_ftrack_server, ftrack_session, tmp_path):
    server = fresh_ftrack_server
    info = server.seed_info
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "studio_locations.py").write_text(PLUGIN)
    roots = {"site.a": str(tmp_path / "a"), "site.b": str(tmp_path / "b")}
    cache = tmp_path / "schema-cache"
    cache.mkdir()

    def start() -> ftrack_api.Session:
        return ftrack_session(
            server=server,
            schema_cache_path=cache,
            plugin_paths=[str(plugins)],
            plugin_arguments={"roots": roots},
        )

    server.reset_stats()
    session = start()
    site_a = session.query('Location where name is "site.a"').one()
    site_b = session.query('Location where name is "site.b"').one()
    assert session.pick_location() in (site_a, site_b)

    version = session.get("AssetVersion", info.versions["sq010/sh0010/plate/v1"])
    source = tmp_path / "main.exr"
    source.write_bytes(b"exr" * 1000)
    component = version.create_component(str(source), data={"name": "main"}, location=site_a)
    session.commit()  # nothing left to send

    frames = tmp_path / "frames"
    frames.mkdir()
    for frame in (1, 2, 3):
        (frames / f"f.{frame:04d}.exr").write_bytes(b"x" * 10)
    sequence = session.create_component(
        str(frames / "f.%04d.exr [1-3]"),
        data={"name": "seq", "version_id": version["id"]},
        location=site_a,
    )

    assert session.get_component_availability(component)[site_a["id"]] == 100.0
    assert site_a.get_filesystem_path(component).endswith("demo/sq010/sh0010/plate/v001/main.exr")

    site_b.add_component(component, site_a)
    site_b.add_component(sequence, site_a)
    paths = [site_b.get_filesystem_path(c) for c in (component, component, sequence)]
    assert paths[2].endswith("demo/sq010/sh0010/plate/v001/seq.%04d.exr")
    assert (tmp_path / "b/demo/sq010/sh0010/plate/v001/seq.0003.exr").read_bytes() == b"x" * 10

    site_a.remove_component(component)

    second = start()
    availability = second.get_component_availability(second.get("Component", component["id"]))
    assert (availability[site_a["id"]], availability[site_b["id"]]) == (0.0, 100.0)
    availability = second.get_component_availability(second.get("Component", sequence["id"]))
    assert (availability[site_a["id"]], availability[site_b["id"]]) == (100.0, 100.0)

    # Reading sequence["members"] here would add a lazy load the recorded flow lacks.
    members = [
        op["entity_data"]
        for batch in server.request_log
        for op in batch
        if op["action"] == "create" and op["entity_data"].get("container")
    ]
    names = {
        site_a["id"]: "<A>",
        site_b["id"]: "<B>",
        version["id"]: "<V>",
        info.project_id: "<P>",
        info.assets["sq010/sh0010/plate"]: "<ASSET>",
        component["id"]: "<F>",
        sequence["id"]: "<S>",
        **{m["id"]: f"<M{i}>" for i, m in enumerate(members, 1)},
    }
    assert [m["name"] for m in members] == ["0001", "0002", "0003"]
    actual = [_normalise(batch, names) for batch in server.request_log]
    expected = _expected_requests()
    for index, (got, want) in enumerate(zip(actual, expected, strict=False)):
        assert got == want, f"request {index}: {got!r} != {want!r}"
    assert len(actual) == len(expected)

    # The second session trusted its schema cache.
    assert [b[0]["action"] for b in server.request_log].count("query_schemas") == 1
    resource_identifiers = [
        op["entity_data"]["resource_identifier"]
        for batch in server.request_log
        for op in batch
        if op["action"] == "create" and op["entity_type"] == "ComponentLocation"
    ]
    assert resource_identifiers[:5] == [
        "demo/sq010/sh0010/plate/v001/main.exr",
        "demo/sq010/sh0010/plate/v001/seq.0001.exr",
        "demo/sq010/sh0010/plate/v001/seq.0002.exr",
        "demo/sq010/sh0010/plate/v001/seq.0003.exr",
        "demo/sq010/sh0010/plate/v001/seq.%04d.exr",
    ]
