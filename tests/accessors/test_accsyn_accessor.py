"""accsyn accessor: parties, task paths, and local mounts."""

from __future__ import annotations

from pathlib import Path

import pytest
from ftrack_transfer.accessors.accsyn import AccsynAccessor, share_environment_variable
from ftrack_transfer.accessors.disk import DiskAccessor
from ftrack_transfer.accessors.errors import (
    AccessorConfigurationError,
    UnsafeResourceIdentifierError,
    UnsupportedOperationError,
)

from tests.fixtures.storage import StorageCase

from .common import payload, read_file, write_file


def test_accsyn_paths() -> None:
    site = AccsynAccessor(party="site=hq")
    assert site.accsyn_path("proj/sq010/plate.exr") == "site=hq:proj/sq010/plate.exr"
    vendor = AccsynAccessor(party="lisa@vendor.example", share="projects")
    assert (
        vendor.accsyn_path("proj/sq010/plate.exr")
        == "lisa@vendor.example:volume=projects/proj/sq010/plate.exr"
    )
    with pytest.raises(UnsafeResourceIdentifierError):
        site.accsyn_path("../outside.exr")


@pytest.mark.parametrize("party", ["hq", "site=", "a b@x", "site=hq:/x", ""])
def test_bad_parties(party: str) -> None:
    with pytest.raises(AccessorConfigurationError, match="party"):
        AccsynAccessor(party=party)


def test_without_a_mount_io_says_how_to_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCSYN_PROJECTS_PATH", raising=False)
    accessor = AccsynAccessor(party="site=lon", share="projects")
    assert accessor.local_disk is None
    assert accessor.describe() == "accsyn site=lon share projects (not mounted on this host)"
    assert accessor.get_container("a/b.exr") == "a"
    accessor.check()  # nothing local to check
    for call in (
        lambda: accessor.open("a/b.exr", "rb"),
        lambda: accessor.list(""),
        lambda: accessor.begin_write("a/b.exr", 1, 1),
        lambda: accessor.get_filesystem_path("a/b.exr"),
    ):
        with pytest.raises(UnsupportedOperationError) as caught:
            call()
        assert "local_root" in str(caught.value)
        assert "ACCSYN_PROJECTS_PATH" in str(caught.value)


def test_mount_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert share_environment_variable("vfx-projects") == "ACCSYN_VFX_PROJECTS_PATH"
    monkeypatch.setenv("ACCSYN_VFX_PROJECTS_PATH", str(tmp_path))
    accessor = AccsynAccessor(party="site=hq", share="vfx-projects")
    write_file(accessor, "a/b.txt", b"mounted")
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"mounted"
    assert accessor.get_filesystem_path("a/b.txt") == str(tmp_path / "a" / "b.txt")


def test_copies_with_a_local_disk(accsyn_case: StorageCase, tmp_path: Path) -> None:
    accessor = accsyn_case.accessor
    (tmp_path / "studio").mkdir()
    disk = DiskAccessor(str(tmp_path / "studio"))
    data = payload(3_000_000, 1)
    write_file(disk, "plate.exr", data)
    assert accessor.can_copy_from(disk) and disk.can_copy_from(accessor)
    accessor.copy_from(disk, "plate.exr", "in/plate.exr", len(data))
    disk.copy_from(accessor, "in/plate.exr", "back/plate.exr", len(data))
    assert read_file(disk, "back/plate.exr") == data
    assert not AccsynAccessor(party="site=x").can_copy_from(disk)


def test_errors_name_the_accsyn_location(accsyn_case: StorageCase) -> None:
    with pytest.raises(Exception, match="accsyn site=hq share projects"):
        accsyn_case.accessor.stat("missing.exr")
