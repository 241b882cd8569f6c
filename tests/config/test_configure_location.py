"""The configure-location plugin in real ``ftrack_api`` sessions against the sandbox
server, loaded from its folder exactly as ``FTRACK_EVENT_PLUGIN_PATH`` loads it."""

from __future__ import annotations

import logging
import socket
import sys
import time
import uuid
from pathlib import Path

import ftrack_api
import ftrack_api.structure.id
import ftrack_api.structure.standard
import pytest
from ftrack_transfer.accessors.accsyn import AccsynAccessor
from ftrack_transfer.accessors.disk import DiskAccessor
from ftrack_transfer.accessors.errors import TransientAccessorError
from ftrack_transfer.accessors.s3 import S3Accessor
from ftrack_transfer.accessors.sftp import SftpAccessor
from ftrack_transfer.structures.mirror import MirrorStructure
from ftrack_transfer.structures.template import DEFAULT_FILE, TemplateStructure
from ftrack_transfer.transfer.commands.locations import plugin_path
from ftrack_transfer.transfer.config import CONFIG_ENV, PLATFORM_KEYS, SCOPE_ENV, load_config
from ftrack_transfer.transfer.configure_location import configure_locations
from ftrack_transfer.transfer.errors import ConfigError

from .helpers import LA_TEMPLATE, StudioConfig, free_port, studio_config

PLUGIN_PATHS = [str(plugin_path())]
#: This system's key in per-OS root tables.
HERE = PLATFORM_KEYS[sys.platform]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The plugin reads these; each test sets what it needs.
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv(SCOPE_ENV, raising=False)


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def studio(
    tmp_path: Path, uid: str, sshd, s3_server, monkeypatch: pytest.MonkeyPatch
) -> StudioConfig:
    """A studio config named by ``FTRACK_TRANSFER_CONFIG``, as on a workstation."""
    config = studio_config(tmp_path, uid, sshd, s3_server, bucket=f"cfg-{uid}")
    monkeypatch.setenv(CONFIG_ENV, str(config.path))
    monkeypatch.delenv(SCOPE_ENV, raising=False)
    return config


def _location(session: ftrack_api.Session, name: str):
    return session.query(f'Location where name is "{name}"').one()


def _rows(server, name: str) -> list[dict]:
    return server.query(f'select id, name, label, description from Location where name is "{name}"')


def test_every_configured_location_has_its_accessor_structure_and_priority(
    ftrack_session, studio: StudioConfig, sshd, s3_server
) -> None:
    session = ftrack_session(plugin_paths=PLUGIN_PATHS)
    names = studio.names

    hq = _location(session, names["hq"])
    assert isinstance(hq.accessor, DiskAccessor)
    assert hq.accessor.root == str(studio.roots["hq"])  # the linux entry of the table
    assert isinstance(hq.structure, TemplateStructure)
    assert hq.structure.templates["file"] == DEFAULT_FILE
    assert hq.priority == 10

    la = _location(session, names["la"])
    assert isinstance(la.accessor, SftpAccessor)
    assert (la.accessor.endpoint.host, la.accessor.endpoint.port) == (sshd.host, sshd.port)
    assert la.accessor.endpoint.key_file == str(sshd.client_key_path)
    assert la.accessor.root == str(studio.roots["la"])
    assert isinstance(la.structure, TemplateStructure)
    assert la.structure.templates["file"] == LA_TEMPLATE
    assert la.priority == 20

    cloud = _location(session, names["cloud"])
    assert isinstance(cloud.accessor, S3Accessor)
    assert (cloud.accessor.bucket, cloud.accessor.prefix) == (studio.bucket, studio.prefix)
    assert cloud.accessor.endpoint_url == s3_server.endpoint_url
    assert type(cloud.structure) is ftrack_api.structure.id.IdStructure
    assert cloud.priority == 30

    vendor = _location(session, names["vendor"])
    assert isinstance(vendor.accessor, AccsynAccessor)
    assert vendor.accessor.party == names["vendor"]  # from the location's e-mail name
    assert isinstance(vendor.structure, MirrorStructure)
    assert vendor.priority == 40

    std = _location(session, names["std"])
    assert type(std.structure) is ftrack_api.structure.standard.StandardStructure

    # Lowest priority wins in ftrack: the configured hq beats ftrack.unmanaged (90).
    assert session.pick_location()["name"] == names["hq"]


def test_missing_locations_are_created_and_existing_ones_reused(
    ftrack_session, ftrack_server, studio: StudioConfig
) -> None:
    names = studio.names
    plain = ftrack_session()
    existing = plain.create("Location", {"name": names["la"], "label": "LA (made by hand)"})
    plain.commit()

    ftrack_session(plugin_paths=PLUGIN_PATHS)
    (hq,) = _rows(ftrack_server, names["hq"])
    assert (hq["label"], hq["description"]) == (f"HQ {studio.uid}", "Main storage")
    (cloud,) = _rows(ftrack_server, names["cloud"])
    assert cloud["label"] == names["cloud"]  # no label configured: the name
    (la,) = _rows(ftrack_server, names["la"])
    assert la["id"] == existing["id"]
    assert la["label"] == "LA (made by hand)"  # an existing location is not rewritten

    ids = {role: _rows(ftrack_server, name)[0]["id"] for role, name in names.items()}
    session = ftrack_session(plugin_paths=PLUGIN_PATHS)
    for role, name in names.items():
        assert [row["id"] for row in _rows(ftrack_server, name)] == [ids[role]]
        assert _location(session, name).accessor  # configured in the second session too


def test_requests_the_plugin_costs(
    ftrack_session, fresh_ftrack_server, studio: StudioConfig
) -> None:
    server = fresh_ftrack_server

    def start(**kwargs):
        before = server.stats
        ftrack_session(server=server, **kwargs)
        return server.stats - before

    baseline = start()
    assert baseline.operations == {"query_server_information": 1}
    first = start(plugin_paths=PLUGIN_PATHS)
    # One query for the five locations, one commit creating them.
    assert first.requests == baseline.requests + 2
    assert first.write_requests == 1
    assert (first.operations["query"], first.operations["create"]) == (1, 5)
    again = start(plugin_paths=PLUGIN_PATHS)
    assert again.requests == baseline.requests + 1
    assert again.write_requests == 0
    assert again.operations["query"] == 1


def test_a_site_that_is_down_neither_slows_nor_fails_the_session_start(
    ftrack_session, tmp_path: Path, uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = free_port()
    # A listener that never answers: an SSH client connecting to it would wait for the
    # server's banner until connect_timeout (60 s here).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.setblocking(False)
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text("")
        config = tmp_path / "sites.toml"
        config.write_text(
            f"""
[locations."down-{uid}"]
accessor = "sftp"
host = "127.0.0.1"
port = {closed}
root = "/srv/projects"
known_hosts = "{known_hosts}"
retries = 1

[locations."silent-{uid}"]
accessor = "sftp"
host = "127.0.0.1"
port = {silent.getsockname()[1]}
root = "/srv/projects"
known_hosts = "{known_hosts}"
connect_timeout = "60s"
retries = 1
"""
        )
        monkeypatch.setenv(CONFIG_ENV, str(config))
        started = time.monotonic()
        session = ftrack_session(plugin_paths=PLUGIN_PATHS)
        elapsed = time.monotonic() - started
        with pytest.raises(BlockingIOError):
            silent.accept()  # nobody connected while the session started
    assert elapsed < 10, f"session start took {elapsed:.1f} s"
    down = _location(session, f"down-{uid}")
    assert isinstance(down.accessor, SftpAccessor)
    assert isinstance(_location(session, f"silent-{uid}").accessor, SftpAccessor)
    # The connection is made on first use, and its failure names the site.
    with pytest.raises(TransientAccessorError, match=rf"127\.0\.0\.1:{closed}.*Connection refused"):
        down.accessor.exists("anything")


def test_scope_configures_only_the_reachable_locations(
    ftrack_session, ftrack_server, studio: StudioConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = studio.names
    monkeypatch.setenv(SCOPE_ENV, f"{names['hq']},cloud-*")
    session = ftrack_session(plugin_paths=PLUGIN_PATHS)
    assert isinstance(_location(session, names["hq"]).accessor, DiskAccessor)
    assert isinstance(_location(session, names["cloud"]).accessor, S3Accessor)
    for role in ("la", "vendor", "std"):
        # Out of scope: neither created in ftrack nor given an accessor here.
        assert _rows(ftrack_server, names[role]) == []
    monkeypatch.delenv(SCOPE_ENV)
    everything = ftrack_session(plugin_paths=PLUGIN_PATHS)
    monkeypatch.setenv(SCOPE_ENV, names["hq"])
    scoped = ftrack_session(plugin_paths=PLUGIN_PATHS)
    assert _location(everything, names["la"]).accessor
    assert not _location(scoped, names["la"]).accessor  # exists, but not usable here


def test_a_bad_config_makes_session_raise_its_message(
    ftrack_session, fresh_ftrack_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "sites.toml"
    config.write_text('[locations.hq]\naccessor = "ftp"\nroot = "/mnt/hq"\n')
    monkeypatch.setenv(CONFIG_ENV, str(config))
    before = fresh_ftrack_server.stats
    with pytest.raises(ConfigError) as raised:
        ftrack_session(server=fresh_ftrack_server, plugin_paths=PLUGIN_PATHS)
    assert str(raised.value) == (
        f'{config}: location "hq": field "accessor": unknown accessor "ftp"; known accessors: '
        "accsyn, disk, s3, sftp"
    )
    # Nothing but the client's own handshake reached ftrack.
    assert (fresh_ftrack_server.stats - before).operations == {"query_server_information": 1}

    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError) as raised:
        ftrack_session(server=fresh_ftrack_server, plugin_paths=PLUGIN_PATHS)
    assert str(raised.value) == (
        f"{tmp_path / 'missing.toml'}: sites config not found; pass --config, set "
        "FTRACK_TRANSFER_CONFIG, or create it (see docs/configuration.md)"
    )


def test_a_location_without_a_root_for_this_os_is_left_unusable(
    ftrack_session, tmp_path: Path, uid: str, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    config = tmp_path / "sites.toml"
    config.write_text(
        f'[locations."win-{uid}"]\naccessor = "disk"\nroot = {{ windows = "P:\\\\projects" }}\n'
        f'[locations."here-{uid}"]\naccessor = "disk"\nroot = "{tmp_path}"\n'
    )
    monkeypatch.setenv(CONFIG_ENV, str(config))
    with caplog.at_level(logging.WARNING, logger="ftrack_transfer.transfer.configure_location"):
        session = ftrack_session(plugin_paths=PLUGIN_PATHS)
    assert not _location(session, f"win-{uid}").accessor
    assert isinstance(_location(session, f"here-{uid}").accessor, DiskAccessor)
    assert [r.getMessage() for r in caplog.records] == [
        f'location "win-{uid}": field "root": no root for this platform ({HERE}); add '
        f"root.{HERE} to the sites config"
    ]


def test_plugin_arguments_name_the_config_without_the_environment(
    ftrack_session, studio: StudioConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONFIG_ENV)
    session = ftrack_session(
        plugin_paths=PLUGIN_PATHS, plugin_arguments={"config_path": str(studio.path)}
    )
    assert isinstance(_location(session, studio.names["hq"]).accessor, DiskAccessor)


def test_programmatic_use_without_the_plugin(ftrack_session, studio: StudioConfig) -> None:
    session = ftrack_session()
    configured = configure_locations(session, load_config(studio.path))
    assert sorted(configured) == sorted(studio.names.values())
    assert configured[studio.names["la"]] is _location(session, studio.names["la"])
    assert isinstance(configured[studio.names["la"]].accessor, SftpAccessor)


def test_sessions_of_one_process_share_accessors(ftrack_session, studio: StudioConfig) -> None:
    # One connection pool per site and process, however many sessions are open.
    first = ftrack_session(plugin_paths=PLUGIN_PATHS)
    second = ftrack_session(plugin_paths=PLUGIN_PATHS)
    name = studio.names["la"]
    assert _location(first, name).accessor is _location(second, name).accessor


def test_reset_reconfigures_with_the_edited_config(ftrack_session, studio: StudioConfig) -> None:
    session = ftrack_session(plugin_paths=PLUGIN_PATHS)
    name = studio.names["hq"]
    assert _location(session, name).priority == 10
    studio.path.write_text(studio.path.read_text().replace("priority = 10", "priority = 5"))
    session.reset()
    assert _location(session, name).priority == 5
    assert isinstance(_location(session, name).accessor, DiskAccessor)
