"""``ftrack-transfer locations [--check]`` and ``ftrack-transfer plugin-path``."""

from __future__ import annotations

import getpass
import importlib.util
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from ftrack_transfer.sandbox.studio import PLUGIN_DIR as SANDBOX_PLUGIN_DIR
from ftrack_transfer.transfer.cli import main
from ftrack_transfer.transfer.config import CONFIG_ENV, PLATFORM_KEYS, SCOPE_ENV
from ftrack_transfer.transfer.configure_location import register
from ftrack_transfer.transfer.ftrack_session import PLUGIN_DIR

from tests.fixtures.accsyn import VENDOR

from .helpers import StudioConfig, free_port, studio_config

#: This system's key in per-OS root tables.
HERE = PLATFORM_KEYS[sys.platform]


@pytest.fixture(autouse=True)
def _restore_config_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # main() exports --config for the processes it starts; undo that after each test.
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "not-used.toml"))
    monkeypatch.delenv(SCOPE_ENV, raising=False)


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:8]


def _rows(output: str) -> dict[str, list[str]]:
    """Table rows by location name (first cell), each as its stripped cells."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


def _checked(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, list[str]]]:
    """``locations --check``: its exit code, and each location's check and reason."""
    code = main(["locations", "--check"])
    return code, {name: row[7:] for name, row in _rows(capsys.readouterr().out).items()}


def _header(output: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith("┃"))
    return [cell.strip() for cell in line.strip("┃").split("┃")]


def test_the_table_lists_every_location(
    tmp_path: Path, uid: str, sshd, s3_server, capsys: pytest.CaptureFixture[str]
) -> None:
    studio: StudioConfig = studio_config(tmp_path, uid, sshd, s3_server, bucket=f"cli-{uid}")
    names = studio.names
    assert main(["--config", str(studio.path), "locations"]) == 0
    output = capsys.readouterr().out
    assert f"Locations in {studio.path}" in output
    assert _header(output) == [
        "name",
        "accessor",
        "storage",
        "structure",
        "priority",
        "accsyn party",
        "backend",
    ]
    sftp_where = f"sftp {sshd.username}@{sshd.host}:{sshd.port}"
    assert _rows(output) == {
        names["hq"]: [names["hq"], "disk", f"disk {studio.roots['hq']}", "template", "10",
                      "site=hq", "direct"],
        names["la"]: [names["la"], "sftp", f"{sftp_where}{studio.roots['la']}", "template",
                      "20", "site=la", "direct"],
        names["cloud"]: [names["cloud"], "s3",
                         f"s3://{studio.bucket}/{studio.prefix} at {s3_server.endpoint_url}",
                         "id", "30", "-", "direct"],
        names["vendor"]: [names["vendor"], "accsyn",
                          f"accsyn {names['vendor']} (mounted at {studio.roots['vendor']})",
                          "mirror", "40", names["vendor"], "direct"],
        names["std"]: [names["std"], "disk", f"disk {studio.roots['std']}", "standard", "50",
                       "-", "direct"],
    }  # fmt: skip


def test_check_reports_reachable_and_not_reachable_with_the_reason(
    tmp_path: Path,
    uid: str,
    sshd,
    s3_server,
    s3_env,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    la_root = Path(sshd.remote_root) / f"check-{uid}"
    la_root.mkdir()
    bucket = s3_server.create_bucket(f"check-{uid}")
    closed = free_port()
    (tmp_path / "hq").mkdir()
    config = tmp_path / "sites.toml"
    reachable = f"""
[locations.hq]
accessor = "disk"
root = "{tmp_path / "hq"}"

[locations.la]
accessor = "sftp"
host = "{sshd.host}"
port = {sshd.port}
username = "{sshd.username}"
key_file = "{sshd.client_key_path}"
known_hosts = "{sshd.known_hosts_path}"
root = "{la_root}"

[locations.cloud]
accessor = "s3"
bucket = "{bucket}"
prefix = "projects"
endpoint_url = "{s3_server.endpoint_url}"
region = "{s3_server.region}"
addressing_style = "path"
"""
    config.write_text(reachable)
    monkeypatch.setenv(CONFIG_ENV, str(config))
    assert _checked(capsys) == (0, {
        "hq": ["reachable", ""],
        "la": ["reachable", ""],
        "cloud": ["reachable", ""],
    })  # fmt: skip

    config.write_text(
        reachable
        + f"""
[locations.paris]
accessor = "sftp"
host = "127.0.0.1"
port = {closed}
root = "/srv/projects"
known_hosts = "{sshd.known_hosts_path}"
retries = 1

[locations.nas]
accessor = "disk"
root = "{tmp_path / "unmounted"}"

[locations.windows-only]
accessor = "disk"
root = {{ windows = "P:\\\\projects" }}
"""
    )
    assert main(["locations", "--check"]) == 1
    output = capsys.readouterr().out
    rows = _rows(output)
    assert [rows[name][7] for name in ("hq", "la", "cloud")] == ["reachable"] * 3
    assert rows["paris"][7:] == [
        "not reachable",
        f"Cannot check the root on sftp {getpass.getuser()}@127.0.0.1:{closed}/srv/projects: [Errno 111] "
        "Connection refused (gave up after 1 attempts)",
    ]
    assert rows["nas"][7:] == [
        "not reachable",
        f"Cannot check on disk {tmp_path / 'unmounted'}: the root directory does not exist "
        "(is the share mounted?); mount it or fix the location's root",
    ]
    reason = (
        f'location "windows-only": field "root": no root for this platform ({HERE}); add '
        f"root.{HERE} to the sites config"
    )
    assert rows["windows-only"][2] == f"({reason})"
    assert rows["windows-only"][7:] == ["not configured", reason]
    # Nothing was created where the locations are not reachable.
    assert not (tmp_path / "unmounted").exists()


def test_a_bad_config_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sites.toml"
    config.write_text('[locations.hq]\naccessor = "disk"\nroot = { linux2 = "/mnt/hq" }\n')
    assert main(["--config", str(config), "locations"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f'ftrack-transfer locations: {config}: location "hq": field "root": unknown platform '
        '"linux2"; use linux, windows or macos\n'
    )


def test_plugin_path_prints_the_folder_to_put_on_ftrack_event_plugin_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plugin-path"]) == 0
    printed = capsys.readouterr().out
    folder = Path(printed.strip())
    assert printed == f"{folder}\n"
    assert folder.is_absolute()
    assert folder == PLUGIN_DIR == SANDBOX_PLUGIN_DIR
    # ftrack imports every .py file under each plugin folder: only the plugin is there.
    modules = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.py"))
    assert modules == ["ftrack_transfer_locations.py"]
    spec = importlib.util.spec_from_file_location("plugin", folder / modules[0])
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    assert plugin.register is register


def test_plugin_path_from_the_installed_command() -> None:
    command = Path(sys.executable).parent / "ftrack-transfer"
    result = subprocess.run(
        [str(command), "plugin-path"], capture_output=True, text=True, check=False,
        env={**os.environ}, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{PLUGIN_DIR}\n", "")


def test_check_asks_accsyn_for_parties_this_host_cannot_see_on_disk(
    tmp_path: Path, accsyn_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    (tmp_path / "la-disk").mkdir()
    config = tmp_path / "sites.toml"
    config.write_text(
        f"""
[locations.vendor]
accessor = "accsyn"
party = "{VENDOR}"

[locations.la]
accessor = "disk"
root = "{tmp_path / "la-disk"}"
accsyn = "site=la"
backend = "accsyn"

[locations.lon]
accessor = "accsyn"
party = "site=lon"

[locations.vendor-renders]
accessor = "accsyn"
party = "{VENDOR}"
share = "renders"
"""
    )
    monkeypatch.setenv(CONFIG_ENV, str(config))
    assert _checked(capsys) == (1, {
        "vendor": ["reachable", ""],
        "la": ["reachable", ""],
        "lon": [
            "not reachable",
            'accsyn has no site "lon" in this workspace; fix the location\'s accsyn party in '
            "the sites config, or add the site in accsyn",
        ],
        "vendor-renders": [
            "not reachable",
            'accsyn has no volume "renders" in this workspace; fix the location\'s share in '
            "the sites config, or add the volume in accsyn",
        ],
    })  # fmt: skip

    # Without accsyn credentials, these locations cannot be used: the reason says how to log in.
    for name in accsyn_env:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    code, rows = _checked(capsys)
    assert code == 1 and rows["vendor"][0] == rows["la"][0] == "not reachable"
    assert rows["vendor"][1].startswith("cannot log in to accsyn: ")
    assert rows["vendor"][1].endswith("check ACCSYN_WORKSPACE, ACCSYN_API_USER and ACCSYN_API_KEY")
