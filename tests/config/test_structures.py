"""Structures on real entities of the sandbox ftrack server: where components land in a
location configured from a sites config, and the errors that name what is missing."""

from __future__ import annotations

import dataclasses
import re
import uuid
from pathlib import Path
from typing import Any

import ftrack_api
import ftrack_api.exception
import ftrack_api.structure.id
import ftrack_api.structure.standard
import ftrack_api.symbol
import pytest
from ftrack_transfer.structures import build_structure
from ftrack_transfer.structures.mirror import MirrorStructure
from ftrack_transfer.structures.template import TemplateStructure, sanitise
from ftrack_transfer.transfer.config import parse_config
from ftrack_transfer.transfer.configure_location import configure_locations

CUSTOM_FILE = "{project}/{asset_type}/{task}/{asset}_v{version:03d}_{component}{ext}"
CUSTOM_SEQUENCE = "{project}/{parent}/{asset}/{component}/{asset}_{component}.{frame}{ext}"
CUSTOM_CONTAINER = "{project}/{parent}/{asset}/{component}"


@dataclasses.dataclass
class Studio:
    session: ftrack_api.Session
    server: Any
    uid: str
    incoming: Path
    roots: dict[str, Path]
    locations: dict[str, Any]  # role -> configured Location entity

    def version(
        self,
        *,
        asset: str | None = None,
        task: bool = True,
        under_project: bool = False,
        commit: bool = True,
    ):
        """A new version of a new asset under sq010/sh0010 (or the project itself)."""
        info = self.server.seed_info
        context = info.project_id if under_project else info.shots["sq010/sh0010"]
        asset_type = self.session.get("AssetType", info.asset_types["Plate"])
        entity = self.session.create(
            "Asset",
            {"name": asset or f"plate-{self.uid}", "context_id": context, "type": asset_type},
        )
        data: dict[str, Any] = {"asset": entity}
        if task:
            data["task"] = self.session.get("Task", info.tasks["sq010/sh0010/compositing"])
        version = self.session.create("AssetVersion", data)
        if commit:
            self.session.commit()
        return version

    def file(self, name: str, content: bytes = b"pixels") -> str:
        path = self.incoming / uuid.uuid4().hex / name
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        return str(path)

    def frames(self, pattern: str, frames: range) -> str:
        """Files of a sequence; returns ftrack's ``name.%04d.ext [first-last]`` form."""
        folder = self.incoming / uuid.uuid4().hex
        folder.mkdir(parents=True)
        for frame in frames:
            (folder / (pattern % frame)).write_bytes(f"frame {frame}".encode())
        return f"{folder}/{pattern} [{frames[0]}-{frames[-1]}]"

    def origin(self):
        return self.session.get("Location", ftrack_api.symbol.ORIGIN_LOCATION_ID)


@pytest.fixture
def studio(ftrack_session, ftrack_server, tmp_path: Path) -> Studio:
    uid = uuid.uuid4().hex[:8]
    roles = ("template", "custom", "mirror", "strict", "standard", "id")
    roots = {role: tmp_path / role for role in roles}
    for root in roots.values():
        root.mkdir()
    config = parse_config(
        f"""
[locations."template-{uid}"]
accessor = "disk"
root = "{roots["template"]}"

[locations."custom-{uid}"]
accessor = "disk"
root = "{roots["custom"]}"
structure = {{ name = "template", file = "{CUSTOM_FILE}", sequence = "{CUSTOM_SEQUENCE}", container = "{CUSTOM_CONTAINER}", prefix = "published", lowercase = true }}

[locations."mirror-{uid}"]
accessor = "disk"
root = "{roots["mirror"]}"
structure = {{ name = "mirror", prefix = "mirrored" }}

[locations."strict-{uid}"]
accessor = "disk"
root = "{roots["strict"]}"
structure = {{ name = "mirror", fallback = "none" }}

[locations."standard-{uid}"]
accessor = "disk"
root = "{roots["standard"]}"
structure = "standard"

[locations."id-{uid}"]
accessor = "disk"
root = "{roots["id"]}"
structure = "id"
""",
        tmp_path / "sites.toml",
    )
    session = ftrack_session()
    configured = configure_locations(session, config)
    locations = {role: configured[f"{role}-{uid}"] for role in roles}
    return Studio(session, ftrack_server, uid, tmp_path / "incoming", roots, locations)


def _placed(studio: Studio, role: str, component) -> tuple[str, Path]:
    """Resource identifier of *component* at *role*, and the file there (which must exist)."""
    location = studio.locations[role]
    identifier = location.get_resource_identifier(component)
    path = Path(location.get_filesystem_path(component))
    assert path == studio.roots[role].joinpath(*identifier.split("/"))
    return identifier, path


def test_a_file_lands_where_the_default_template_says(studio: Studio) -> None:
    version = studio.version()
    assert version["version"] == 1
    component = version.create_component(
        studio.file("comp.exr", b"final pixels"),
        data={"name": "main"},
        location=studio.locations["template"],
    )
    identifier, path = _placed(studio, "template", component)
    assert identifier == f"demo/sq010/sh0010/plate-{studio.uid}/v001/main.exr"
    assert path.read_bytes() == b"final pixels"


def test_a_sequence_and_its_members(studio: Studio) -> None:
    version = studio.version()
    sequence = version.create_component(
        studio.frames("plate.%04d.exr", range(1001, 1004)),
        data={"name": "plate"},
        location=studio.locations["template"],
    )
    folder = f"demo/sq010/sh0010/plate-{studio.uid}/v001/plate"
    assert studio.locations["template"].get_resource_identifier(sequence) == (
        f"{folder}/plate.%04d.exr"
    )
    members = sorted(sequence["members"], key=lambda m: m["name"])
    assert [_placed(studio, "template", m)[0] for m in members] == [
        f"{folder}/plate.1001.exr",
        f"{folder}/plate.1002.exr",
        f"{folder}/plate.1003.exr",
    ]
    assert (studio.roots["template"] / folder / "plate.1002.exr").read_bytes() == b"frame 1002"


@pytest.mark.parametrize(
    ("pattern", "expression", "first_member"),
    [("f.%d.exr", "%d", "1.exr"), ("f.%06d.exr", "%06d", "000001.exr")],
)
def test_sequence_padding_follows_the_component(
    studio: Studio, pattern: str, expression: str, first_member: str
) -> None:
    version = studio.version()
    sequence = studio.session.create_component(
        studio.frames(pattern, range(1, 4)),
        data={"name": "beauty", "version": version},
        location=None,
    )
    studio.session.commit()
    structure = TemplateStructure()
    folder = f"demo/sq010/sh0010/plate-{studio.uid}/v001/beauty"
    assert structure.get_resource_identifier(sequence) == f"{folder}/beauty.{expression}.exr"
    member = min(sequence["members"], key=lambda m: int(m["name"]))
    assert structure.get_resource_identifier(member) == f"{folder}/beauty.{first_member}"


def test_a_plain_container_and_its_members(studio: Studio) -> None:
    version = studio.version()
    container = studio.session.create(
        "ContainerComponent", {"name": "textures", "version": version}
    )
    for name in ("diffuse", "normal"):
        studio.session.create_component(
            studio.file(f"{name}.png", name.encode()),
            data={"name": name, "container": container},
            location=None,
        )
    studio.session.commit()
    studio.locations["template"].add_component(container, studio.origin())
    folder = f"demo/sq010/sh0010/plate-{studio.uid}/v001/textures"
    identifier, path = _placed(studio, "template", container)
    assert identifier == folder and path.is_dir()
    by_name = {m["name"]: m for m in container["members"]}
    identifier, path = _placed(studio, "template", by_name["normal"])
    assert identifier == f"{folder}/normal.png"
    assert path.read_bytes() == b"normal"


def test_a_custom_template_with_task_asset_type_and_parent(studio: Studio) -> None:
    version = studio.version(asset=f"BG-Plate-{studio.uid}")
    single = version.create_component(
        studio.file("bg.EXR"), data={"name": "Main"}, location=studio.locations["custom"]
    )
    sequence = version.create_component(
        studio.frames("bg.%04d.exr", range(1, 3)),
        data={"name": "Beauty"},
        location=studio.locations["custom"],
    )
    asset = f"bg-plate-{studio.uid}"  # lowercase = true
    assert _placed(studio, "custom", single)[0] == (
        f"published/demo/plate/compositing/{asset}_v001_main.exr"
    )
    assert studio.locations["custom"].get_resource_identifier(sequence) == (
        f"published/demo/sh0010/{asset}/beauty/{asset}_beauty.%04d.exr"
    )
    member = min(sequence["members"], key=lambda m: m["name"])
    assert _placed(studio, "custom", member)[0] == (
        f"published/demo/sh0010/{asset}/beauty/{asset}_beauty.0001.exr"
    )


def test_names_are_sanitised_into_single_safe_folder_names(studio: Studio) -> None:
    version = studio.version(asset=f"Écran bleu/vert {studio.uid}")
    component = version.create_component(
        studio.file("x.exr"), data={"name": "beauty pass:v2"}, location=studio.locations["template"]
    )
    dots = version.create_component(
        studio.file("y.exr"), data={"name": ".."}, location=studio.locations["template"]
    )
    folder = f"demo/sq010/sh0010/Ecran_bleu_vert_{studio.uid}/v001"
    assert _placed(studio, "template", component)[0] == f"{folder}/beauty_pass_v2.exr"
    identifier, path = _placed(studio, "template", dots)
    assert identifier == f"{folder}/__.exr"
    assert path.is_relative_to(studio.roots["template"])
    assert [sanitise(s) for s in ("Ça va", "a/b\\c", ".", "ok-1.2_x")] == [
        "Ca_va",
        "a_b_c",
        "_",
        "ok-1.2_x",
    ]


def test_errors_name_the_component_and_what_is_missing(studio: Studio) -> None:
    session = studio.session
    structure = TemplateStructure()

    loose = session.create_component(
        studio.file("loose.exr"), data={"name": "loose"}, location=None
    )
    session.commit()
    with pytest.raises(ftrack_api.exception.StructureError) as raised:
        structure.get_resource_identifier(loose)
    assert str(raised.value) == (
        f'Template structure cannot place component "loose" ({loose["id"]}): it has no version.'
    )

    # Names are shown as they are, braces included.
    braces = session.create_component(studio.file("b.exr"), data={"name": "comp{1}"}, location=None)
    session.commit()
    with pytest.raises(ftrack_api.exception.StructureError) as raised:
        structure.get_resource_identifier(braces)
    assert str(raised.value) == (
        f'Template structure cannot place component "comp{{1}}" ({braces["id"]}): it has no '
        "version."
    )

    pending = studio.version(commit=False)
    draft = session.create(
        "FileComponent", {"name": "draft", "version": pending, "file_type": ".exr"}
    )
    with pytest.raises(ftrack_api.exception.StructureError) as raised:
        structure.get_resource_identifier(draft)
    assert str(raised.value) == (
        f'Template structure cannot place component "draft" ({draft["id"]}): its version is '
        "not committed yet; commit the session first."
    )
    session.commit()

    untasked = studio.version(task=False)
    main = session.create_component(
        studio.file("main.exr"), data={"name": "main", "version": untasked}, location=None
    )
    session.commit()
    with pytest.raises(ftrack_api.exception.StructureError) as raised:
        TemplateStructure(file=CUSTOM_FILE).get_resource_identifier(main)
    assert str(raised.value) == (
        f'Template structure cannot place component "main" ({main["id"]}): its version has '
        "no task, but the template uses {task}."
    )

    top = studio.version(under_project=True)
    top_main = session.create_component(
        studio.file("main.exr"), data={"name": "main", "version": top}, location=None
    )
    session.commit()
    with pytest.raises(ftrack_api.exception.StructureError) as raised:
        TemplateStructure(file="{project}/{parent}/{component}{ext}").get_resource_identifier(
            top_main
        )
    assert str(raised.value) == (
        f'Template structure cannot place component "main" ({top_main["id"]}): the asset sits '
        "directly under the project, but the template uses {parent}."
    )
    # Without {parent}, an asset under the project has no context folders.
    assert structure.get_resource_identifier(top_main) == f"demo/plate-{studio.uid}/v001/main.exr"

    # Publishing into a location reports the structure's message through ftrack's error.
    with pytest.raises(ftrack_api.exception.LocationError) as raised:
        session.create_component(
            studio.file("orphan.exr"),
            data={"name": "orphan"},
            location=studio.locations["template"],
        )
    assert re.search(
        r'cannot place component "orphan" \([-0-9a-f]+\): it has no version', str(raised.value)
    )


def test_mirror_keeps_the_source_path(studio: Studio) -> None:
    version = studio.version()
    single = version.create_component(
        studio.file("main.exr", b"mirror me"),
        data={"name": "main"},
        location=studio.locations["template"],
    )
    sequence = version.create_component(
        studio.frames("plate.%04d.exr", range(1, 3)),
        data={"name": "plate"},
        location=studio.locations["template"],
    )
    mirror = studio.locations["mirror"]
    mirror.add_components([single, sequence], studio.locations["template"])
    source = studio.locations["template"].get_resource_identifier(single)
    identifier, path = _placed(studio, "mirror", single)
    assert identifier == f"mirrored/{source}"
    assert path.read_bytes() == b"mirror me"
    assert mirror.get_resource_identifier(sequence) == (
        "mirrored/" + studio.locations["template"].get_resource_identifier(sequence)
    )
    member = min(sequence["members"], key=lambda m: m["name"])
    assert _placed(studio, "mirror", member)[0] == (
        "mirrored/" + studio.locations["template"].get_resource_identifier(member)
    )

    # The strict mirror has no prefix: the very same identifier as the source.
    studio.locations["strict"].add_component(single, studio.locations["template"])
    assert _placed(studio, "strict", single)[0] == source


def test_mirror_falls_back_to_the_template_for_local_files(studio: Studio) -> None:
    version = studio.version()
    component = version.create_component(
        studio.file("local.exr"), data={"name": "main"}, location=studio.locations["mirror"]
    )
    assert _placed(studio, "mirror", component)[0] == (
        f"mirrored/demo/sq010/sh0010/plate-{studio.uid}/v001/main.exr"
    )
    structure = MirrorStructure(prefix="mirrored")
    for context in (None, {}, {"source_resource_identifier": "C:\\incoming\\local.exr"}):
        assert structure.get_resource_identifier(component, context) == (
            f"mirrored/demo/sq010/sh0010/plate-{studio.uid}/v001/main.exr"
        )


def test_mirror_without_fallback_refuses_what_it_cannot_mirror(studio: Studio) -> None:
    version = studio.version()
    component = studio.session.create_component(
        studio.file("main.exr"), data={"name": "main", "version": version}, location=None
    )
    studio.session.commit()
    strict = build_structure("mirror", {"fallback": "none"})
    cases = [
        (
            None,
            "it has no path at the source location to mirror; send it from a location where "
            "it is available.",
        ),
        (
            {"source_resource_identifier": "/incoming/main.exr"},
            "its source path '/incoming/main.exr' cannot be mirrored (is absolute).",
        ),
        (
            {"source_resource_identifier": "demo/../../etc/passwd"},
            "its source path 'demo/../../etc/passwd' cannot be mirrored (escapes the location "
            "root with '..').",
        ),
    ]
    for context, reason in cases:
        with pytest.raises(ftrack_api.exception.StructureError) as raised:
            strict.get_resource_identifier(component, context)
        assert str(raised.value) == (
            f'Mirror structure cannot place component "main" ({component["id"]}): {reason}'
        )
    with pytest.raises(ftrack_api.exception.LocationError, match="no path at the source"):
        studio.locations["strict"].add_component(component, studio.locations["template"])


def test_ftrack_standard_and_id_structures_stay_selectable(studio: Studio) -> None:
    version = studio.version(asset=f"Plate-{studio.uid}")
    component = version.create_component(
        studio.file("main.exr", b"standard"),
        data={"name": "Main"},
        location=studio.locations["standard"],
    )
    sequence = version.create_component(
        studio.frames("plate.%04d.exr", range(1, 3)),
        data={"name": "plate"},
        location=studio.locations["standard"],
    )
    studio.locations["id"].add_component(component, studio.locations["standard"])

    identifier, path = _placed(studio, "standard", component)
    # ftrack's own rules: lower-case, the sequence beside the files, not in a folder.
    assert identifier == f"demo/sq010/sh0010/plate-{studio.uid}/v001/main.exr"
    assert identifier == ftrack_api.structure.standard.StandardStructure().get_resource_identifier(
        component
    )
    assert studio.locations["standard"].get_resource_identifier(sequence) == (
        f"demo/sq010/sh0010/plate-{studio.uid}/v001/plate.%04d.exr"
    )
    assert path.read_bytes() == b"standard"

    identifier, path = _placed(studio, "id", component)
    cid = component["id"]
    assert identifier == f"{cid[0]}/{cid[1]}/{cid[2]}/{cid[3]}/{cid[4:]}.exr"
    assert identifier == ftrack_api.structure.id.IdStructure().get_resource_identifier(component)
    assert path.read_bytes() == b"standard"
