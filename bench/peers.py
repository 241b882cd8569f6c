"""REPRODUCTIONS of how peer ftrack accessors move bytes - for comparison only.

These are deliberately naive, and exist only so the benchmarks can measure the path a
studio gets from the stock ftrack tooling: ``Location.add_component`` copies a
component through ``Location._add_data`` (1 MiB reads from the source, written to the
target accessor's file object), through one of these:

* :class:`PlainSftpAccessor` - as ftrack's SFTP accessor does: one paramiko
  ``SSHClient`` (no ``TCP_NODELAY``, paramiko's default ciphers), and the plain
  paramiko file object, whose writes are not pipelined (one round trip per 32 KiB).
* :class:`WholeObjectS3Accessor` - as the community ftrack S3 accessor does: the
  object is held whole in a ``BytesIO`` and uploaded with boto3's managed
  ``upload_fileobj`` on close (downloaded whole on open).

Differences from the originals, none of which changes how bytes move: host keys are
checked against known_hosts (the original accepts any key), the key file is passed
explicitly, no remote ``touch`` command is run (the benchmark server allows SFTP only),
and paths are resolved under a root folder / key prefix.

Never use these for anything else: they have no verification, no retries and no
atomicity - which is the point of measuring them.
"""

from __future__ import annotations

import io
import posixpath
from typing import Any

import boto3
import botocore.config
import ftrack_api.accessor.base
import ftrack_api.data
import ftrack_api.exception
import paramiko


class PlainSftpAccessor(ftrack_api.accessor.base.Accessor):
    """ftrack SFTP accessor behaviour: one SSHClient, plain paramiko file objects."""

    def __init__(
        self, host: str, port: int, username: str, key_file: str, known_hosts: str, root: str
    ) -> None:
        super().__init__()
        self.host, self.port, self.username = host, port, username
        self.key_file, self.known_hosts, self.root = key_file, known_hosts, root
        self._ssh: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            ssh = paramiko.SSHClient()
            ssh.load_host_keys(self.known_hosts)
            ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
            ssh.connect(
                self.host,
                port=self.port,
                username=self.username,
                key_filename=self.key_file,
                look_for_keys=False,
                allow_agent=False,
            )
            self._ssh, self._sftp = ssh, ssh.open_sftp()
        return self._sftp

    def _path(self, resource_identifier: str) -> str:
        return posixpath.join(self.root, resource_identifier.strip("/"))

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = self._sftp = None

    def list(self, resource_identifier: str) -> list[str]:
        try:
            return [
                posixpath.join(resource_identifier, name)
                for name in self.sftp.listdir(self._path(resource_identifier))
            ]
        except OSError:
            return []

    def exists(self, resource_identifier: str) -> bool:
        try:
            self.sftp.stat(self._path(resource_identifier))
        except OSError:
            return False
        return True

    def is_file(self, resource_identifier: str) -> bool:
        return bool(resource_identifier) and self.exists(resource_identifier)

    def is_container(self, resource_identifier: str) -> bool:
        return not resource_identifier or bool(self.list(resource_identifier))

    def is_sequence(self, resource_identifier: str) -> bool:
        raise ftrack_api.exception.AccessorUnsupportedOperationError("is_sequence")

    def open(self, resource_identifier: str, mode: str = "rb") -> ftrack_api.data.Data:
        return ftrack_api.data.FileWrapper(self.sftp.open(self._path(resource_identifier), mode))

    def remove(self, resource_identifier: str) -> None:
        self.sftp.remove(self._path(resource_identifier))

    def make_container(self, resource_identifier: str, recursive: bool = True) -> None:
        if not resource_identifier or self.exists(resource_identifier):
            return
        parent = posixpath.dirname(resource_identifier.rstrip("/"))
        if parent and recursive:
            self.make_container(parent, recursive)
        self.sftp.mkdir(self._path(resource_identifier))

    def get_container(self, resource_identifier: str) -> str:
        if resource_identifier.strip("/") in ("", "."):
            raise ftrack_api.exception.AccessorParentResourceNotFoundError(resource_identifier)
        return posixpath.dirname(resource_identifier.rstrip("/"))


class _WholeObject(ftrack_api.data.FileWrapper):
    """The object in memory: downloaded whole on open, uploaded whole on flush."""

    def __init__(self, s3_object: Any) -> None:
        super().__init__(io.BytesIO())
        self.s3_object = s3_object
        self.s3_object.download_fileobj(self.wrapped_file)
        self.seek(0)

    def flush(self) -> None:
        super().flush()
        position = self.tell()
        self.seek(0)
        self.s3_object.upload_fileobj(self.wrapped_file)
        # s3transfer closes the buffer after a single-request upload (the original checks too).
        if not self.wrapped_file.closed:
            self.seek(position)


class WholeObjectS3Accessor(ftrack_api.accessor.base.Accessor):
    """Community ftrack S3 accessor behaviour: whole objects through a BytesIO."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str) -> None:
        super().__init__()
        self.prefix = prefix.strip("/")
        resource = boto3.resource(
            "s3",
            endpoint_url=endpoint_url,
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )
        self.bucket = resource.Bucket(bucket)

    def _key(self, resource_identifier: str) -> str:
        return f"{self.prefix}/{resource_identifier.strip('/')}"

    def list(self, resource_identifier: str) -> list[str]:
        prefix = self._key(resource_identifier) + "/"
        return [
            entry.key[len(self.prefix) + 1 :].rstrip("/")
            for entry in self.bucket.objects.filter(Prefix=prefix, Delimiter="/")
            if entry.key != prefix
        ]

    def exists(self, resource_identifier: str) -> bool:
        return not resource_identifier or self.is_container(resource_identifier)

    def is_file(self, resource_identifier: str) -> bool:
        # As in the original: the resource's metadata is never loaded, so never a file.
        return self.bucket.Object(self._key(resource_identifier)).meta.data is not None

    def is_container(self, resource_identifier: str) -> bool:
        if not resource_identifier:
            return True
        prefix = self._key(resource_identifier) + "/"
        return any(True for _ in self.bucket.objects.filter(Prefix=prefix, Delimiter="/"))

    def is_sequence(self, resource_identifier: str) -> bool:
        raise ftrack_api.exception.AccessorUnsupportedOperationError("is_sequence")

    def open(self, resource_identifier: str, mode: str = "rb") -> ftrack_api.data.Data:
        s3_object = self.bucket.Object(self._key(resource_identifier))
        if "w" in mode:
            s3_object.put(Body=b"")  # truncate, as the original does
        return _WholeObject(s3_object)

    def remove(self, resource_identifier: str) -> None:
        self.bucket.Object(self._key(resource_identifier)).delete()

    def make_container(self, resource_identifier: str, recursive: bool = True) -> None:
        if not resource_identifier or self.is_container(resource_identifier):
            return
        parent = posixpath.dirname(resource_identifier.rstrip("/"))
        if parent and recursive:
            self.make_container(parent, recursive)
        self.bucket.Object(self._key(resource_identifier) + "/").put(Body=b"")

    def get_container(self, resource_identifier: str) -> str:
        if resource_identifier.strip("/") in ("", "."):
            raise ftrack_api.exception.AccessorParentResourceNotFoundError(resource_identifier)
        return posixpath.dirname(resource_identifier.rstrip("/"))
