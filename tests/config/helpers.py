"""Writing sites configs for the tests of this folder."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from ftrack_transfer.transfer.config import SitesConfig, load_config
from ftrack_transfer.transfer.errors import ConfigError


@dataclasses.dataclass
class Sites:
    """A sites config file in a test's own folder."""

    directory: Path
    name: str = "sites.toml"

    @property
    def path(self) -> Path:
        return self.directory / self.name

    def write(self, text: str) -> Path:
        self.path.write_text(textwrap.dedent(text), encoding="utf-8")
        return self.path

    def load(self, text: str) -> SitesConfig:
        self.write(text)
        return load_config(self.path, cached=False)

    def error(self, text: str) -> str:
        """The ConfigError message loading *text* raises (the test fails if it loads)."""
        with pytest.raises(ConfigError) as raised:
            self.load(text)
        message = str(raised.value)
        assert "\n" not in message, "config errors are one line"
        return message

    def expect(self, template: str) -> str:
        """*template* with ``<config>`` standing for this file's path."""
        return template.replace("<config>", str(self.path))


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: The template of the SFTP location in :func:`studio_config` (a custom one, so tests show
#: that the location's own template decides the path).
LA_TEMPLATE = "{project}/{asset_type}/{asset}/v{version:03d}/{component}{ext}"


@dataclasses.dataclass
class StudioConfig:
    """Names and folders of a studio config written for one test."""

    uid: str
    names: dict[str, str]  # role -> ftrack location name
    roots: dict[str, Path]  # role -> folder of the location on this host
    bucket: str
    prefix: str
    path: Path


def studio_config(directory: Path, uid: str, sshd, s3_server, bucket: str) -> StudioConfig:
    """A sites config with a disk, an SFTP (sshd fixture), an S3 (moto fixture), an accsyn
    vendor and a standard-structure location, named uniquely so tests sharing one ftrack
    server never see each other's locations."""
    names = {
        "hq": f"hq-{uid}",
        "la": f"la-{uid}",
        "cloud": f"cloud-{uid}",
        "vendor": f"vendor-{uid}@vfx.example",
        "std": f"std-{uid}",
    }
    roots = {
        "hq": directory / "hq",
        "la": Path(sshd.remote_root) / f"la-{uid}",
        "vendor": directory / "vendor",
        "std": directory / "std",
    }
    for root in roots.values():
        root.mkdir(parents=True, exist_ok=True)
    prefix = f"projects-{uid}"
    path = directory / "sites.toml"
    path.write_text(
        f"""
[locations."{names["hq"]}"]
label = "HQ {uid}"
description = "Main storage"
accessor = "disk"
root = {{ linux = "{roots["hq"]}", macos = "{roots["hq"]}", windows = "P:\\\\hq" }}
priority = 10
accsyn = "site=hq"

[locations."{names["la"]}"]
accessor = "sftp"
host = "{sshd.host}"
port = {sshd.port}
username = "{sshd.username}"
key_file = "{sshd.client_key_path}"
known_hosts = "{sshd.known_hosts_path}"
root = "{roots["la"]}"
local_root = "{roots["la"]}"
structure = {{ name = "template", file = "{LA_TEMPLATE}" }}
priority = 20
accsyn = "site=la"

[locations."{names["cloud"]}"]
accessor = "s3"
bucket = "{bucket}"
prefix = "{prefix}"
endpoint_url = "{s3_server.endpoint_url}"
region = "{s3_server.region}"
addressing_style = "path"
structure = "id"
priority = 30

[locations."{names["vendor"]}"]
accessor = "accsyn"
local_root = "{roots["vendor"]}"
structure = "mirror"
priority = 40

[locations."{names["std"]}"]
accessor = "disk"
root = "{roots["std"]}"
structure = "standard"
priority = 50
""",
        encoding="utf-8",
    )
    return StudioConfig(uid, names, roots, bucket, prefix, path)
