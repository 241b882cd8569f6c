"""docs/configuration.md and examples/sites.toml stay true to the code: every field the
code accepts is documented with its type and default, and the example loads."""

from __future__ import annotations

import dataclasses
import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from ftrack_transfer.accessors import ACCESSORS, accessor_class
from ftrack_transfer.accessors.base import DEFAULT_STREAMS
from ftrack_transfer.structures import structure_class, structure_options
from ftrack_transfer.structures.template import FIELDS
from ftrack_transfer.transfer import units
from ftrack_transfer.transfer.config import (
    _LOCATION_FIELDS,
    CONFIG_ENV,
    SCOPE_ENV,
    AccsynSettings,
    TransferSettings,
    _Parser,
    load_config,
)
from ftrack_transfer.transfer.errors import ConfigError

REPOSITORY = Path(__file__).resolve().parents[2]
DOCS = REPOSITORY / "docs" / "configuration.md"
EXAMPLE = REPOSITORY / "examples" / "sites.toml"

#: Option kinds as the reference names them.
KIND_NAMES = {
    "str": "text",
    "int": "integer",
    "bool": "true/false",
    "size": "size",
    "duration": "duration",
    "path": "file path",
    "roots": "root",
    "list": "list of text",
}


def _table_after(heading: str) -> dict[str, list[str]]:
    """The first table after the heading matching *heading*, rows by their first cell."""
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if re.fullmatch(heading, line)), None)
    assert start is not None, f"no heading matching {heading!r} in {DOCS.name}"
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if in_table:
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not in_table:
            in_table = True  # the header row
            continue
        if set(cells[0]) <= {"-", ":"}:
            continue
        rows[cells[0].strip("`").strip("{}")] = cells
    assert rows, f"no table after {heading!r}"
    return rows


def _default(cell: str) -> Any:
    """A documented default: ``required``, ``—`` (none) or a TOML value in backticks."""
    if cell == "required" or cell == "—":
        return cell
    match = re.fullmatch(r"`(.+)`", cell)
    assert match, f"default {cell!r} is not a TOML value in backticks"
    return tomllib.loads(f"value = {match.group(1)}")["value"]


@pytest.mark.parametrize("accessor", sorted(ACCESSORS))
def test_every_accessor_field_is_documented_as_declared(accessor: str) -> None:
    rows = _table_after(rf"### `{accessor}` accessor")
    options = {o.name: o for o in accessor_class(accessor).options}
    assert set(rows) == set(options), "documented fields differ from the accessor's options"
    for name, option in options.items():
        _, kind, default, description = rows[name]
        assert kind == KIND_NAMES[option.kind], name
        assert description, name
        documented = _default(default)
        if option.required:
            assert documented == "required", name
        elif option.default is None:
            assert documented == "—", name
        elif option.kind == "duration":
            assert units.parse_duration(documented) == option.default, name
        else:
            assert documented == option.default, name


def test_location_fields_are_documented() -> None:
    rows = _table_after(r"## Locations")
    assert set(rows) == _LOCATION_FIELDS | {"accessor"}


def test_transfer_settings_are_documented_with_their_defaults() -> None:
    rows = _table_after(r"## Transfer settings")
    kinds = _Parser._TRANSFER_KINDS
    assert set(rows) == set(kinds)
    defaults = TransferSettings()
    parse = {
        "size": units.parse_size,
        "rate": units.parse_rate,
        "duration": units.parse_duration,
        "count": int,
        "int": int,
        "verify": str,
    }
    for name, kind in kinds.items():
        documented = parse[kind](_default(rows[name][2]))
        # Unset streams are the storages' choice: the documented default is the one of
        # storages that prefer nothing else (the description names S3's).
        expected = DEFAULT_STREAMS if name == "streams" else getattr(defaults, name)
        assert documented == expected, name


def test_accsyn_settings_are_documented_with_their_defaults() -> None:
    rows = _table_after(r"## accsyn settings")
    defaults = AccsynSettings()
    assert set(rows) == {f.name for f in dataclasses.fields(AccsynSettings)}
    for name, row in rows.items():
        value = _default(row[2])
        documented = value if name == "tasks_per_transfer" else units.parse_duration(value)
        assert documented == getattr(defaults, name), name


@pytest.mark.parametrize("structure", ["template", "mirror"])
def test_structure_options_are_documented_with_their_defaults(structure: str) -> None:
    rows = _table_after(rf"### `{structure}`")
    assert set(rows) == structure_options(structure)
    parameters = inspect.signature(structure_class(structure).__init__).parameters
    for name, row in rows.items():
        assert _default(row[2]) == parameters[name].default, name


def test_template_fields_are_documented() -> None:
    rows = _table_after(r"Fields a template can use:")
    assert list(rows) == list(FIELDS)


def test_docs_name_the_environment_and_the_plugin_path() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for needle in (CONFIG_ENV, SCOPE_ENV, "FTRACK_EVENT_PLUGIN_PATH", "ftrack-transfer plugin-path",
                   "ftrack_transfer_locations.py", "AWS_ACCESS_KEY_ID", "ACCSYN_API_KEY",
                   "passphrase_env"):  # fmt: skip
        assert needle in text, needle


def test_toml_in_the_docs_is_valid_toml() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 10
    for block in blocks:
        # Blocks showing alternatives repeat a key on purpose; check each line alone.
        if block.count("structure =") > 1 or block.count("root =") > 1:
            for line in block.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    tomllib.loads(line.split("  #")[0])
        else:
            tomllib.loads(block)


def test_the_example_loads_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its key files live under ~/.ssh/ftrack-transfer; give it a home that has them.
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError) as raised:
        load_config(EXAMPLE, cached=False)
    key = tmp_path / ".ssh" / "ftrack-transfer" / "la_ed25519"
    assert str(raised.value) == (
        f'{EXAMPLE}: location "la": field "key_file": cannot read "{key}": No such file or '
        "directory"
    )
    key.parent.mkdir(parents=True)
    key.write_text("a private key")
    config = load_config(EXAMPLE, cached=False)

    assert {name: loc.accessor for name, loc in config.locations.items()} == {
        "hq": "disk",
        "la": "sftp",
        "cloud": "s3",
        "vera@vfxvendor.example": "accsyn",
    }
    hq = config.location("hq")
    assert hq.resolved_options("win32") == {"root": "\\\\fs01.studio.example\\projects"}
    assert hq.resolved_options("darwin") == {"root": "/Volumes/projects"}
    assert hq.resolved_options("linux") == {"root": "/mnt/projects"}
    la = config.location("la")
    assert la.options["key_file"] == str(key)
    assert la.options["known_hosts"] == str(key.parent / "known_hosts")
    assert config.settings_for("hq", "la").bandwidth == 40_000_000
    vendor = config.location("vera@vfxvendor.example")
    assert (vendor.accsyn_party, vendor.backend, vendor.return_to) == (
        "vera@vfxvendor.example",
        "accsyn",
        "hq",
    )
    assert vendor.options["party"] == "vera@vfxvendor.example"
    assert [s.name for s in config.schedules] == ["plates-to-la", "demo-to-cloud"]
    assert config.auto_return[0].source == "*@vfxvendor.example"
    assert config.auto_send[0].users == ("group:vendors",)
    assert config.journal_path() == EXAMPLE.parent / "state" / "journal.sqlite"
