"""The loopback lab every case runs in: servers, configs and the sides' environment.

One OpenSSH ``sshd`` (every SFTP side, ours and the references, talks to the same
server), one S3 server (radosgw, else moto; see ``s3endpoint``) and, for the ftrack
cases, the sandbox ftrack server with a sites config mapping ``hq`` (disk), ``la``
(SFTP) and ``cloud`` (S3) onto them. Keys and credentials are made at start and live
in the work folder or the sides' environment only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ftrack_transfer.sandbox.sftp import SftpServer

from . import data, s3endpoint

log = logging.getLogger(__name__)

#: Environment variables that would point a side at another server or configuration.
_ISOLATE = (
    "FTRACK_SERVER", "FTRACK_API_USER", "FTRACK_API_KEY", "FTRACK_EVENT_PLUGIN_PATH",
    "FTRACK_API_SCHEMA_CACHE_PATH", "FTRACK_TRANSFER_CONFIG", "FTRACK_TRANSFER_LOCATIONS",
    "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
    "https_proxy", "ALL_PROXY", "all_proxy", "SSH_AUTH_SOCK", "RCLONE_CONFIG", "AWS_CA_BUNDLE",
)  # fmt: skip

#: The cipher every SFTP side uses where it can choose (ours prefers it too).
SSH_CIPHER = "aes128-gcm@openssh.com"


class Lab:
    def __init__(self, work: Path, s3_kind: str = "auto") -> None:
        self.work = work.resolve()
        self.s3_kind = s3_kind
        self.data_root = self.work / "hq"
        self.out = self.work / "out"
        self.sftp_root = self.work / "sftp"
        self.logs = self.work / "logs"
        self.sftp: SftpServer | None = None
        self.s3: s3endpoint.S3Endpoint | None = None
        self.ftrack: Any = None
        self.catalog: Any = None
        #: Overrides for the sides' environment (a case pointing at its own sites config).
        self.extra_env: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Lab:
        for folder in (self.data_root, self.out, self.sftp_root, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.sftp = SftpServer(self.sftp_root, self.work / "sshd", prefer="openssh").start()
        self.s3 = s3endpoint.start(self.s3_kind, self.work)
        self._write_rclone_config()
        return self

    def start_ftrack(self) -> None:
        """The sandbox ftrack server and the sites config (only for the ftrack cases)."""
        if self.ftrack is not None:
            return
        from ftrack_transfer.sandbox.ftrack import FtrackServer, write_client_cache

        from .catalog import Catalog

        self.ftrack = FtrackServer(seed=True).start()
        write_client_cache(self.work / "ftrack-schema")
        self.catalog = Catalog(self.ftrack)
        self.catalog.ensure_locations(["stock-sftp", "stock-s3"])
        self._write_sites_config()

    def stop(self) -> None:
        for service in (self.ftrack, self.s3, self.sftp):
            if service is not None:
                with contextlib.suppress(Exception):
                    service.stop()
        self.ftrack = self.s3 = self.sftp = None

    # ------------------------------------------------------------------ environment

    def env(self) -> dict[str, str]:
        """Environment of every side: isolated from the user's, pointed at the lab."""
        assert self.s3 is not None
        env = {k: v for k, v in os.environ.items() if k not in _ISOLATE}
        env.update(self.s3.env())
        env.update(
            {
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "RCLONE_CONFIG": str(self.rclone_config),
                "RCLONE_CONFIG_S3_ACCESS_KEY_ID": self.s3.access_key,
                "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": self.s3.secret_key,
                "PYTHONUNBUFFERED": "1",
                # The harness's plotting pulls in numpy, which websocket-client (under
                # ftrack_api) imports when present; its OpenBLAS threads then spin for
                # about 0.1 CPU seconds at start-up of every side that imports ftrack_api,
                # on cores the transfer needs. The product itself does not depend on numpy.
                "OPENBLAS_NUM_THREADS": "1",
            }
        )
        if self.ftrack is not None:
            env.update(
                {
                    "FTRACK_SERVER": self.ftrack.url,
                    "FTRACK_API_USER": "pipeline",
                    "FTRACK_API_KEY": self.ftrack.user_key("pipeline"),
                    "FTRACK_API_SCHEMA_CACHE_PATH": str(self.work / "ftrack-schema"),
                    "FTRACK_TRANSFER_CONFIG": str(self.sites_config),
                }
            )
        env.update(self.extra_env)
        # The bench package is imported by the sides from the repository root.
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        return env

    @property
    def python(self) -> str:
        return sys.executable

    # ------------------------------------------------------------------ accessor specs

    def disk_spec(self, root: Path) -> dict[str, Any]:
        return {"kind": "disk", "root": str(root)}

    def sftp_spec(self, root: str) -> dict[str, Any]:
        assert self.sftp is not None
        return {
            "kind": "sftp",
            "host": self.sftp.host,
            "port": self.sftp.port,
            "username": self.sftp.username,
            "key_file": str(self.sftp.client_key_path),
            "known_hosts": str(self.sftp.known_hosts_path),
            "root": root,
        }

    def s3_spec(self, prefix: str) -> dict[str, Any]:
        assert self.s3 is not None
        return {
            "kind": "s3",
            "bucket": self.s3.bucket,
            "prefix": prefix,
            "endpoint_url": self.s3.url,
            "region": self.s3.region,
            "addressing_style": "path",
        }

    def sftp_dir(self, name: str) -> Path:
        """A folder on the SFTP server (its path is the same locally and remotely)."""
        return self.sftp_root / name

    # ------------------------------------------------------------------ reference tools

    def sftp_command(self, batch: Path) -> list[str]:
        """OpenSSH sftp in batch mode, same server, same cipher as ours prefers."""
        assert self.sftp is not None
        return [
            "sftp", "-q", "-b", str(batch), "-c", SSH_CIPHER, "-F", os.devnull,
            "-i", str(self.sftp.client_key_path),
            "-o", f"UserKnownHostsFile={self.sftp.known_hosts_path}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "UpdateHostKeys=no",
            "-P", str(self.sftp.port), f"{self.sftp.username}@{self.sftp.host}",
        ]  # fmt: skip

    @property
    def rclone_config(self) -> Path:
        return self.work / "rclone.conf"

    def _write_rclone_config(self) -> None:
        assert self.sftp is not None and self.s3 is not None
        # Keys of the S3 remote come from the environment (RCLONE_CONFIG_S3_*).
        provider = "Ceph" if self.s3.kind == "radosgw" else "Other"
        self.rclone_config.write_text(
            f"""# Written by the benchmark harness; the S3 keys come from the environment.
[sftp]
type = sftp
host = {self.sftp.host}
port = {self.sftp.port}
user = {self.sftp.username}
key_file = {self.sftp.client_key_path}
known_hosts_file = {self.sftp.known_hosts_path}
# The server allows the SFTP subsystem only, as a vendor's often does: no remote shell.
shell_type = none

[s3]
type = s3
provider = {provider}
endpoint = {self.s3.url}
region = {self.s3.region}
force_path_style = true
"""
        )

    # ------------------------------------------------------------------ ftrack

    @property
    def sites_config(self) -> Path:
        return self.work / "sites.toml"

    @property
    def journal(self) -> Path:
        return self.work / "journal.sqlite"

    def _write_sites_config(self) -> None:
        assert self.sftp is not None and self.s3 is not None
        self.la_root.mkdir(parents=True, exist_ok=True)
        self.sites_config.write_text(
            f"""# Sites config of the benchmark lab (written by the harness).
journal = "{self.journal}"

[locations.hq]
accessor = "disk"
root = {{ linux = "{self.data_root}" }}
structure = "template"
priority = 10

[locations.la]
accessor = "sftp"
host = "{self.sftp.host}"
port = {self.sftp.port}
username = "{self.sftp.username}"
key_file = "{self.sftp.client_key_path}"
known_hosts = "{self.sftp.known_hosts_path}"
root = "{self.la_root}"
structure = "template"
priority = 20

[locations.cloud]
accessor = "s3"
bucket = "{self.s3.bucket}"
prefix = "cloud"
endpoint_url = "{self.s3.url}"
region = "{self.s3.region}"
addressing_style = "path"
structure = "template"
priority = 30
"""
        )

    @property
    def la_root(self) -> Path:
        return self.sftp_root / "la"

    def clean_la(self) -> None:
        data.remove(self.la_root)
        self.la_root.mkdir(parents=True, exist_ok=True)


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"
