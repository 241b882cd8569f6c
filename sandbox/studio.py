"""A whole studio on loopback: ftrack, accsyn, an SFTP office and an S3 bucket.

:class:`Studio` starts the sandbox ftrack server (seeded with the demo project), the
accsyn-compatible service, an SFTP server for the ``la`` office (OpenSSH's sshd when
installed, else an embedded server so no root is needed) and an S3 endpoint for
``cloud`` (moto); writes the sites config that maps the studio's locations onto them,
and ``env.sh`` with every variable a shell needs for ``ftrack_api.Session()``,
``accsyn_api.Session()`` and ``ftrack-transfer`` to work with no arguments. On first
start it publishes media (image sequences and single files) into the seeded versions at
``hq`` through the real ftrack client.

Layout of the studio folder::

    env.sh  sites.toml  journal.sqlite  studio.json
    storage/hq  storage/la  storage/vendor   - what each location holds
    ftrack/  accsyn/  sftp/  s3/             - each service's state
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shlex
import shutil
from pathlib import Path
from typing import Any

from .accsyn import AccsynService
from .ftrack import FtrackServer, write_client_cache
from .ftrack.seed import SERVICE_USER, VENDOR_USER
from .s3 import S3Server
from .sftp import SftpServer

logger = logging.getLogger(__name__)

BUCKET = "studio-cloud"
PLUGIN_DIR = Path(__file__).resolve().parent.parent / "transfer" / "plugins"


@dataclasses.dataclass(frozen=True)
class MediaPlan:
    """What the first start publishes at hq: frames per plate sequence and their sizes."""

    frames: int = 24
    frame_size: int = 256 * 1024
    movie_size: int = 2 * 1024 * 1024


class Studio:
    """Start, describe and stop the loopback studio rooted at *directory*."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        sftp: str = "auto",
        accsyn_bandwidth: float | None = None,
        media: MediaPlan | None = None,
        transfer: dict[str, Any] | None = None,
        schedules: bool = True,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.sftp_kind = sftp
        self.accsyn_bandwidth = accsyn_bandwidth
        self.media = media or MediaPlan()
        self.transfer = transfer or {}
        self.schedules = schedules
        self.ftrack: FtrackServer | None = None
        self.accsyn: AccsynService | None = None
        self.sftp: SftpServer | None = None
        self.s3: S3Server | None = None

    # ------------------------------------------------------------------ paths

    @property
    def storage(self) -> Path:
        return self.directory / "storage"

    def root(self, location: str) -> Path:
        if location == "hq":
            return self.storage / "hq"
        if location == "la":
            return self.storage / "la"
        if location == VENDOR_USER:
            return self.storage / "vendor"
        raise KeyError(location)

    @property
    def env_path(self) -> Path:
        return self.directory / "env.sh"

    @property
    def config_path(self) -> Path:
        return self.directory / "sites.toml"

    @property
    def journal_path(self) -> Path:
        return self.directory / "journal.sqlite"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Studio:
        self.directory.mkdir(parents=True, exist_ok=True)
        for location in ("hq", "la", VENDOR_USER):
            self.root(location).mkdir(parents=True, exist_ok=True)
        try:
            self.ftrack = FtrackServer(state_dir=self.directory / "ftrack", seed=True).start()
            # Filled up front, so every client's first session skips query_schemas.
            write_client_cache(self.directory / "ftrack" / "schema-cache")
            self.sftp = SftpServer(
                self.root("la"), self.directory / "sftp", prefer=self.sftp_kind
            ).start()
            self.s3 = S3Server(log_dir=self.directory / "s3").start()
            self.s3.create_bucket(BUCKET)
            self.accsyn = AccsynService(
                self.directory / "accsyn",
                parties={
                    "site=hq": self.root("hq"),
                    "site=la": self.root("la"),
                    VENDOR_USER: self.root(VENDOR_USER),
                },
                bandwidth=self.accsyn_bandwidth,
            ).start()
            self._write_config()
            self._write_env()
            self._seed_media()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for service in (self.accsyn, self.s3, self.sftp, self.ftrack):
            if service is not None:
                try:
                    service.stop()
                except Exception:
                    logger.warning("stopping %s failed", type(service).__name__, exc_info=True)

    def __enter__(self) -> Studio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ environment

    def env(self, user: str = SERVICE_USER) -> dict[str, str]:
        """Every variable the clients and the CLI need, acting as *user*."""
        assert self.ftrack and self.accsyn and self.s3
        values = {
            "FTRACK_SERVER": self.ftrack.url,
            "FTRACK_API_USER": user,
            "FTRACK_API_KEY": self.ftrack.user_key(user),
            "FTRACK_EVENT_PLUGIN_PATH": str(PLUGIN_DIR),
            "FTRACK_API_SCHEMA_CACHE_PATH": str(self.directory / "ftrack" / "schema-cache"),
            "FTRACK_TRANSFER_CONFIG": str(self.config_path),
            **self.accsyn.env(),
            **self.s3.env(),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        return values

    def _write_env(self) -> None:
        lines = [
            "# Point a shell at the sandbox studio: . env.sh",
            "# (API keys here are sandbox-only, random per studio.)",
        ]
        lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(self.env().items())]
        lines += ["unset AS_DEV HTTP_PROXY HTTPS_PROXY http_proxy https_proxy AWS_PROFILE"]
        self.env_path.write_text("\n".join(lines) + "\n")
        self.env_path.chmod(0o600)

    def _write_config(self) -> None:
        assert self.sftp and self.s3
        transfer = "".join(f"{key} = {json.dumps(value)}\n" for key, value in self.transfer.items())
        schedules = (
            '\n[[schedules]]\nname = "demo-to-cloud"\nfrom = "hq"\nto = "cloud"\nproject = "demo"\nevery = "15m"\n'
            if self.schedules
            else ""
        )
        text = f"""# Sites config of the sandbox studio (written by `ftrack-transfer sandbox`).
# Every location the studio uses, by its ftrack name. See docs/configuration.md.

journal = "{self.journal_path}"

[transfer]
{transfer}
[permissions]
send = ["group:coordinators", "{SERVICE_USER}"]

[locations.hq]
label = "HQ"
description = "Main studio storage"
accessor = "disk"
root = {{ linux = "{self.root("hq")}", macos = "{self.root("hq")}", windows = "S:\\\\sandbox\\\\hq" }}
structure = "template"
priority = 10
accsyn = "site=hq"

[locations.la]
label = "LA office"
description = "Los Angeles office storage, over SFTP"
accessor = "sftp"
host = "{self.sftp.host}"
port = {self.sftp.port}
username = "{self.sftp.username}"
key_file = "{self.sftp.client_key_path}"
known_hosts = "{self.sftp.known_hosts_path}"
root = "{self.sftp.remote_root}"
structure = "template"
priority = 20
accsyn = "site=la"

[locations.cloud]
label = "Cloud"
description = "Object storage shared by all sites"
accessor = "s3"
bucket = "{BUCKET}"
prefix = "projects"
endpoint_url = "{self.s3.endpoint_url}"
region = "{self.s3.region}"
structure = "template"
priority = 30

[locations."{VENDOR_USER}"]
label = "VFX Vendor"
description = "The vendor's delivery area, reached through accsyn"
accessor = "accsyn"
local_root = "{self.root(VENDOR_USER)}"
structure = "mirror"
priority = 40
backend = "accsyn"
return_to = "hq"

[[auto_return]]
from = "{VENDOR_USER}"
to = "hq"

[[auto_send]]
from = "hq"
users = ["group:vendors"]
filter = {{ asset_types = ["Plate"] }}
{schedules}"""
        self.config_path.write_text(text)

    # ------------------------------------------------------------------ media

    def _seed_media(self) -> None:
        """Publish files into the seeded versions at hq, once per studio folder."""
        marker = self.directory / "studio.json"
        if marker.exists():
            return
        import ftrack_api

        assert self.ftrack is not None
        info = self.ftrack.seed_info
        incoming = self.directory / "incoming"
        env = self.env()
        session = ftrack_api.Session(
            server_url=env["FTRACK_SERVER"],
            api_user=env["FTRACK_API_USER"],
            api_key=env["FTRACK_API_KEY"],
            plugin_paths=[],
            schema_cache_path=env["FTRACK_API_SCHEMA_CACHE_PATH"],
        )
        try:
            from ..transfer.config import load_config
            from ..transfer.configure_location import configure_locations

            hq = configure_locations(session, load_config(self.config_path, cached=False))["hq"]
            published = []
            for key, version_id in sorted(info.versions.items()):
                version = session.get("AssetVersion", version_id)
                folder = incoming / key.replace("/", "_")
                folder.mkdir(parents=True, exist_ok=True)
                if "/plate/" in key:
                    for frame in range(1001, 1001 + self.media.frames):
                        (folder / f"plate.{frame}.exr").write_bytes(
                            secrets.token_bytes(self.media.frame_size)
                        )
                    last = 1000 + self.media.frames
                    path = f"{folder}/plate.%04d.exr [1001-{last}]"
                    version.create_component(path, data={"name": "main"}, location=hq)
                else:
                    movie = folder / "comp.mov"
                    movie.write_bytes(secrets.token_bytes(self.media.movie_size))
                    version.create_component(str(movie), data={"name": "main"}, location=hq)
                    preview = folder / "preview.jpg"
                    preview.write_bytes(secrets.token_bytes(64 * 1024))
                    version.create_component(str(preview), data={"name": "preview"}, location=hq)
                published.append(key)
            session.commit()
        finally:
            session.close()
        shutil.rmtree(incoming, ignore_errors=True)
        marker.write_text(json.dumps({"published": published}, indent=2) + "\n")
