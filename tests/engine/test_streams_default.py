"""How many chunks of one file move at once when the sites config does not say.

S3 waits a round trip for every part, so a send with S3 at either end keeps more parts in
flight than one between disks or SFTP servers; an SFTP source over a short link from few
cores reads with fewer; ``streams`` in the config always wins.
"""

from __future__ import annotations

import threading

import ftrack_api.accessor.disk
import pytest
from ftrack_transfer.accessors import sftp as sftp_module
from ftrack_transfer.accessors.disk import DiskAccessor
from ftrack_transfer.accessors.s3 import S3Accessor
from ftrack_transfer.accessors.sftp import SftpAccessor
from ftrack_transfer.transfer.bandwidth import BandwidthLimiter
from ftrack_transfer.transfer.config import TransferSettings
from ftrack_transfer.transfer.direct import Endpoints

from tests.fixtures.storage import sftp_accessor


def _endpoints(source: object, destination: object, streams: int | None = None) -> Endpoints:
    return Endpoints(
        source,
        destination,
        TransferSettings(streams=streams),
        BandwidthLimiter(None),
        threading.Event(),
    )


@pytest.fixture
def disk(tmp_path) -> DiskAccessor:
    return DiskAccessor(str(tmp_path))


@pytest.fixture
def s3() -> S3Accessor:
    # Built only: an accessor touches no network until it is used.
    return S3Accessor(bucket="studio", prefix="cloud", endpoint_url="http://127.0.0.1:9")


@pytest.fixture
def sftp(tmp_path) -> SftpAccessor:
    return SftpAccessor(host="127.0.0.1", root="/srv", known_hosts=str(tmp_path / "known_hosts"))


def test_disk_and_sftp_keep_four_chunks_in_flight(disk, sftp) -> None:
    assert _endpoints(disk, disk).streams == 4
    assert _endpoints(disk, sftp).streams == 4
    assert _endpoints(sftp, disk).streams == 4


def test_s3_at_either_end_keeps_eight_parts_in_flight(disk, sftp, s3) -> None:
    assert _endpoints(disk, s3).streams == 8
    assert _endpoints(s3, disk).streams == 8
    assert _endpoints(sftp, s3).streams == 8


def test_streams_in_the_config_win(disk, s3) -> None:
    assert _endpoints(disk, s3, streams=2).streams == 2
    assert _endpoints(disk, disk, streams=16).streams == 16


def test_a_stock_ftrack_accessor_gets_the_default(tmp_path, s3) -> None:
    stock = ftrack_api.accessor.disk.DiskAccessor(str(tmp_path))
    assert _endpoints(stock, stock).streams == 4
    assert _endpoints(stock, s3).streams == 8


def test_an_sftp_source_on_a_short_link_from_two_cores_reads_with_two(
    sshd, disk, monkeypatch
) -> None:
    """A local disk leaves the count to the SFTP end, which reads with fewer than it
    writes; the config's ``streams`` still wins."""
    monkeypatch.setattr(sftp_module, "usable_cores", lambda: 2)
    accessor = sftp_accessor(sshd, sshd.remote_root)
    try:
        accessor.exists("anything")  # connects, so the link is measured
        assert _endpoints(accessor, disk).streams == 2
        assert _endpoints(disk, accessor).streams == 4
        assert _endpoints(accessor, accessor).streams == 4
        assert _endpoints(accessor, disk, streams=8).streams == 8
    finally:
        accessor.close()
