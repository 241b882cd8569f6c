"""What any studio script gets: ``ftrack_api.Session()`` in a plain Python process, set up
by environment variables alone, has every configured location with its accessor and
structure, and a published component's paths are the ones its location's template says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import ftrack_api
import pytest
from ftrack_transfer.sandbox.studio import MediaPlan, Studio
from ftrack_transfer.transfer.commands.locations import plugin_path
from ftrack_transfer.transfer.config import CONFIG_ENV, SCOPE_ENV, load_config

from .helpers import studio_config

# Nothing product-specific: only ftrack_api, configured by the environment.
SCRIPT = """
import json
import sys

import ftrack_api

names, component_ids = json.loads(sys.argv[1]), json.loads(sys.argv[2])
session = ftrack_api.Session()
report = {}
for name in names:
    location = session.query(f'Location where name is "{name}"').one()
    entry = report[name] = {
        "accessor": f"{type(location.accessor).__module__}.{type(location.accessor).__name__}",
        "structure": f"{type(location.structure).__module__}.{type(location.structure).__name__}",
        "priority": location.priority,
        "components": {},
    }
    for component_id in component_ids:
        component = session.get("Component", component_id)
        if location.get_component_availability(component) == 0:
            continue
        try:
            path = location.get_filesystem_path(component)
        except ftrack_api.exception.AccessorUnsupportedOperationError:
            path = None
        entry["components"][component_id] = {
            "resource_identifier": location.get_resource_identifier(component),
            "filesystem_path": path,
        }
    first = session.get("Component", component_ids[0])
    if entry["accessor"].endswith("S3Accessor") and location.get_component_availability(first):
        # Object storage has no filesystem path: read the bytes back through the accessor.
        data = location.accessor.open(location.get_resource_identifier(first), "rb")
        entry["bytes"] = data.read().decode()
        data.close()
print(json.dumps(report))
"""


def test_plain_session_has_every_location_and_the_template_paths(
    ftrack_session, ftrack_env, sshd, s3_server, s3_env, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    uid = uuid.uuid4().hex[:8]
    bucket = s3_server.create_bucket(f"plain-{uid}")
    studio = studio_config(tmp_path, uid, sshd, s3_server, bucket)
    names = studio.names
    monkeypatch.setenv(CONFIG_ENV, str(studio.path))
    monkeypatch.delenv(SCOPE_ENV, raising=False)

    # Publish at hq and copy to la (SFTP) and cloud (S3) with ftrack's own add_component.
    session = ftrack_session(plugin_paths=[str(plugin_path())])
    server_info = ftrack_env()  # FTRACK_SERVER, FTRACK_API_USER, FTRACK_API_KEY

    seed = session.query("Project where name is demo").one()
    shot = session.query(
        f'Shot where name is "sh0010" and parent.name is "sq010" and project_id is {seed["id"]}'
    ).one()
    task = session.query(f'Task where name is "compositing" and parent_id is {shot["id"]}').one()
    asset = session.create(
        "Asset",
        {
            "name": f"plate-{uid}",
            "context_id": shot["id"],
            "type": session.query('AssetType where name is "Plate"').one(),
        },
    )
    version = session.create("AssetVersion", {"asset": asset, "task": task})
    session.commit()
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "comp.exr").write_text("final comp")
    for frame in (1001, 1002):
        (incoming / f"plate.{frame}.exr").write_text(f"frame {frame}")
    location = {
        role: session.query(f'Location where name is "{n}"').one() for role, n in names.items()
    }
    main = version.create_component(
        str(incoming / "comp.exr"), data={"name": "main"}, location=location["hq"]
    )
    plate = version.create_component(
        f"{incoming}/plate.%04d.exr [1001-1002]", data={"name": "plate"}, location=location["hq"]
    )
    for role in ("la", "cloud"):
        location[role].add_components([main, plate], location["hq"])

    env = {
        **os.environ,  # already stripped of the developer's FTRACK_*/AWS_* by conftest
        **server_info,
        **s3_server.env(),
        "FTRACK_EVENT_PLUGIN_PATH": str(plugin_path()),
        "FTRACK_TRANSFER_CONFIG": str(studio.path),
    }
    ordered = [names[r] for r in ("hq", "la", "cloud", "vendor", "std")]
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(ordered), json.dumps([main["id"], plate["id"]])],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    kinds = {
        "hq": ("accessors.disk.DiskAccessor", "structures.template.TemplateStructure", 10),
        "la": ("accessors.sftp.SftpAccessor", "structures.template.TemplateStructure", 20),
        "cloud": ("accessors.s3.S3Accessor", "ftrack_api.structure.id.IdStructure", 30),
        "vendor": ("accessors.accsyn.AccsynAccessor", "structures.mirror.MirrorStructure", 40),
        "std": (
            "accessors.disk.DiskAccessor",
            "ftrack_api.structure.standard.StandardStructure",
            50,
        ),
    }
    for role, (accessor, structure, priority) in kinds.items():
        entry = report[names[role]]
        expected_accessor = f"ftrack_transfer.{accessor}"
        expected_structure = (
            structure if structure.startswith("ftrack_api") else f"ftrack_transfer.{structure}"
        )
        assert (entry["accessor"], entry["structure"], entry["priority"]) == (
            expected_accessor,
            expected_structure,
            priority,
        ), role

    # hq: the default template.
    folder = f"demo/sq010/sh0010/plate-{uid}/v001"
    hq_root, la_root = studio.roots["hq"], studio.roots["la"]
    cid, pid = main["id"], plate["id"]
    assert report[names["hq"]]["components"] == {
        cid: {
            "resource_identifier": f"{folder}/main.exr",
            "filesystem_path": str(hq_root / folder / "main.exr"),
        },
        pid: {
            "resource_identifier": f"{folder}/plate/plate.%04d.exr",
            "filesystem_path": str(hq_root / folder / "plate" / "plate.%04d.exr"),
        },
    }
    # la: its own file template; its filesystem path through local_root.
    la_file = f"demo/Plate/plate-{uid}/v001/main.exr"
    assert report[names["la"]]["components"] == {
        cid: {"resource_identifier": la_file, "filesystem_path": str(la_root / la_file)},
        pid: {
            "resource_identifier": f"{folder}/plate/plate.%04d.exr",
            "filesystem_path": str(la_root / folder / "plate" / "plate.%04d.exr"),
        },
    }
    # cloud: ftrack's Id structure; object storage has no filesystem path.
    assert report[names["cloud"]]["components"] == {
        cid: {
            "resource_identifier": f"{cid[0]}/{cid[1]}/{cid[2]}/{cid[3]}/{cid[4:]}.exr",
            "filesystem_path": None,
        },
        pid: {
            "resource_identifier": f"{pid[0]}/{pid[1]}/{pid[2]}/{pid[3]}/{pid[4:]}/file.%04d.exr",
            "filesystem_path": None,
        },
    }
    assert report[names["cloud"]]["bytes"] == "final comp"
    # And the bytes are where those paths say.
    assert (hq_root / folder / "main.exr").read_text() == "final comp"
    assert (la_root / la_file).read_text() == "final comp"
    assert (la_root / folder / "plate" / "plate.1002.exr").read_text() == "frame 1002"


def test_the_sandbox_studio_environment_is_enough(tmp_path: Path) -> None:
    # The loopback studio as `ftrack-transfer sandbox` starts it: its sites config and the
    # variables its env.sh exports, and the media it publishes at hq on first start.
    media = MediaPlan(frames=3, frame_size=1024, movie_size=1024)
    with Studio(tmp_path / "studio", media=media) as studio:
        assert studio.ftrack is not None
        info = studio.ftrack.seed_info
        session_env = {**os.environ, **studio.env()}
        assert session_env["FTRACK_EVENT_PLUGIN_PATH"] == str(plugin_path())
        names = list(load_config(studio.config_path, cached=False).locations)
        assert names == ["hq", "la", "cloud", "vera@vfxvendor.example"]
        probe = ftrack_api.Session(
            server_url=studio.ftrack.url, api_user="pipeline",
            api_key=studio.ftrack.api_key, plugin_paths=[],
            schema_cache_path=session_env["FTRACK_API_SCHEMA_CACHE_PATH"],
        )  # fmt: skip
        try:
            plate = probe.query(
                f'Component where version_id is "{info.versions["sq010/sh0010/plate/v1"]}"'
            ).one()
            comp = probe.query(
                f'Component where version_id is "{info.versions["sq010/sh0010/comp/v1"]}" '
                'and name is "main"'
            ).one()
            ids = [comp["id"], plate["id"]]
        finally:
            probe.close()
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT, json.dumps(names), json.dumps(ids)],
            capture_output=True, text=True, env=session_env, cwd=tmp_path, timeout=120,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        hq_root = studio.root("hq")

    assert {name: (entry["accessor"], entry["structure"]) for name, entry in report.items()} == {
        "hq": ("ftrack_transfer.accessors.disk.DiskAccessor",
               "ftrack_transfer.structures.template.TemplateStructure"),
        "la": ("ftrack_transfer.accessors.sftp.SftpAccessor",
               "ftrack_transfer.structures.template.TemplateStructure"),
        "cloud": ("ftrack_transfer.accessors.s3.S3Accessor",
                  "ftrack_transfer.structures.template.TemplateStructure"),
        "vera@vfxvendor.example": ("ftrack_transfer.accessors.accsyn.AccsynAccessor",
                                   "ftrack_transfer.structures.mirror.MirrorStructure"),
    }  # fmt: skip
    assert [report[n]["priority"] for n in names] == [10, 20, 30, 40]
    movie = "demo/sq010/sh0010/comp/v001/main.mov"
    frames = "demo/sq010/sh0010/plate/v001/main/main.%04d.exr"
    comp_id, plate_id = ids
    assert report["hq"]["components"] == {
        comp_id: {"resource_identifier": movie, "filesystem_path": str(hq_root / movie)},
        plate_id: {"resource_identifier": frames, "filesystem_path": str(hq_root / frames)},
    }
    assert (hq_root / movie).stat().st_size == media.movie_size
    assert (hq_root / frames.replace("%04d", "1001")).stat().st_size == media.frame_size
    # Published at hq only: the other locations report nothing for them.
    assert all(report[n]["components"] == {} for n in names[1:])
