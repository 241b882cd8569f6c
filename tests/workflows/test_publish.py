"""Vendors publishing back: ``ftrack-transfer publish`` and the auto-return rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ftrack_transfer.transfer.service import Service

from tests.fixtures.ftrack import wait_until
from tests.fixtures.studio import StudioCase, data_for

VENDOR = "vera@vfxvendor.example"
TASK = "demo/sq010/sh0020/compositing"


def vendor_cli(studio: StudioCase, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **studio.env,
        "FTRACK_API_USER": VENDOR,
        "FTRACK_API_KEY": studio.server.user_key(VENDOR),
    }
    return subprocess.run(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def frames(folder: Path, name: str, count: int, size: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for frame in range(1001, 1001 + count):
        path = folder / f"{name}.{frame}.exr"
        path.write_bytes(data_for(f"{folder}/{frame}", size))
        paths.append(str(path))
    return paths


def components_of(studio: StudioCase, asset: str) -> dict[str, str]:
    session = studio.session()
    rows = session.query(
        f'select id, name from Component where version.asset.name is "{asset}" and container_id is none'
    ).all()
    return {row["name"]: row["id"] for row in rows}


def test_publish_a_sequence_and_a_movie_and_send_them_home(
    studio: StudioCase, tmp_path: Path
) -> None:
    paths = frames(tmp_path / "work", "comp", 8, 3000)
    movie = tmp_path / "work" / "comp.mov"
    movie.write_bytes(data_for("movie", 50_000))
    asset = f"comp-{studio.uid}"
    result = vendor_cli(
        studio, "publish", "--location", studio.names["vendor"], "--task", TASK, "--asset", asset,
        "--comment", "first comp", *paths, str(movie),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        f"published demo / sq010 / sh0020 / {asset} v001 with 2 components at {studio.names['vendor']}"
        in result.stdout
    )
    assert f"from {studio.names['vendor']} to {studio.names['hq']}" in result.stderr
    components = components_of(studio, asset)
    assert set(components) == {"comp", "comp_mov"}
    ids = list(components.values())
    assert studio.availability(ids, "vendor") == [100.0, 100.0]
    assert studio.availability(ids, "hq") == [100.0, 100.0]
    assert studio.read(components["comp"], "hq") == [Path(p).read_bytes() for p in paths]
    session = studio.session()
    version = session.query(
        f'select comment, task.name, version from AssetVersion where asset.name is "{asset}"'
    ).one()
    assert (version["comment"], version["task"]["name"], version["version"]) == (
        "first comp",
        "compositing",
        1,
    )


def test_wildcards_a_windows_shell_leaves_as_they_are_are_expanded(
    studio: StudioCase, tmp_path: Path
) -> None:
    paths = frames(tmp_path / "work", "plate", 3, 100)
    asset = f"plate-{studio.uid}"
    base = ["publish", "--location", studio.names["vendor"], "--task", TASK, "--asset", asset]
    nothing = str(tmp_path / "work" / "nope.*.exr")
    missing = vendor_cli(studio, *base, nothing)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"ftrack-transfer publish: {nothing} matches no file; check the name and the folder"
    )
    assert components_of(studio, asset) == {}
    result = vendor_cli(studio, *base, "--no-wait", str(tmp_path / "work" / "plate.*.exr"))
    assert result.returncode == 0, result.stderr
    assert "with 1 component at" in result.stdout
    components = components_of(studio, asset)
    assert list(components) == ["main"]
    assert studio.read(components["main"], "vendor") == [Path(p).read_bytes() for p in paths]


def test_a_vendor_cannot_publish_into_a_task_not_assigned_to_them(
    studio: StudioCase, tmp_path: Path
) -> None:
    paths = frames(tmp_path / "work", "comp", 2, 100)
    asset = f"comp-{studio.uid}"
    result = vendor_cli(
        studio, "publish", "--location", studio.names["vendor"], "--task", "demo/sq010/sh0010/compositing",
        "--asset", asset, *paths,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(
        "ftrack-transfer publish: task compositing ("
    ) and result.stderr.rstrip().endswith(
        f"is not assigned to {VENDOR}; vendors can only publish into their own tasks - ask the coordinator to assign it"
    )
    assert components_of(studio, asset) == {}
    session = studio.session()
    assert session.query(f'select id from Asset where name is "{asset}"').all() == []


def test_auto_return_brings_vendor_publishes_home_even_after_a_serve_restart(
    studio: StudioCase, tmp_path: Path
) -> None:
    studio.config_path.write_text(
        studio.config_path.read_text()
        + f'\n[[auto_return]]\nfrom = "vendor-*"\nto = "{studio.names["hq"]}"\n'
    )
    published_live = studio.publish(files={"main": 5000}, role="vendor")
    # serve is down when this one is published: the start-up scan must catch it.
    service = Service(
        studio.config, journal=studio.journal(), housekeeping_interval=0.2, scan_interval=3600
    )
    service.start()
    try:
        wait_until(
            lambda: studio.availability(list(published_live.components.values()), "hq") == [100.0],
            timeout=60, message="a publish made while serve was down never came home",
        )  # fmt: skip
        # And one published while serve listens comes home through component-added.
        studio.server.wait_for_subscribers("ftrack.location.component-added", timeout=10)
        later = studio.publish(
            files={"main": 7000},
            sequences={"plate": (4, 500)},
            role="vendor",
            user=VENDOR,
            connect=True,
        )
        wait_until(
            lambda: studio.availability(list(later.components.values()), "hq") == [100.0, 100.0],
            timeout=60, message="a live vendor publish never came home",
        )  # fmt: skip
    finally:
        service.stop()
    jobs = [j for j in studio.journal().jobs() if j.origin == "auto-return"]
    assert jobs and all(j.status == "done" for j in jobs)
    assert studio.read(later.components["plate"], "hq") == studio.read(
        later.components["plate"], "vendor"
    )
