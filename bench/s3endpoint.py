"""The S3 server the benchmarks run against: radosgw when possible, moto as a fallback.

Whichever runs, :class:`S3Endpoint` gives the same facts to every side: URL, region,
keys (random per run, passed through the environment, never written to a file that
stays) and a description for the results page, which labels moto results as such.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ftrack_transfer.sandbox.s3 import aws_env, s3_client

from . import radosgw

log = logging.getLogger(__name__)

BUCKET = "bench"
REGION = "us-east-1"
#: Written and deleted once before any case (see :meth:`S3Endpoint.warm_up`).
WARM_UP_BYTES = 3 * 1024**3


@dataclasses.dataclass
class S3Endpoint:
    kind: str  # "radosgw" or "moto"
    url: str
    access_key: str
    secret_key: str
    version: str
    #: Why radosgw is not the server (empty when it is).
    fallback_reason: str = ""
    region: str = REGION
    bucket: str = BUCKET
    _stop: Callable[[], None] | None = None
    #: Waits until the server has freed what was deleted (radosgw collects it later).
    _collect: Callable[[], None] | None = None
    _client: Any = None

    @property
    def label(self) -> str:
        if self.kind == "radosgw":
            return f"Ceph radosgw {self.version} (memstore, single node)"
        return f"moto {self.version} (FALLBACK: downloads against moto are not meaningful)"

    def env(self) -> dict[str, str]:
        return aws_env(self.access_key, self.secret_key, self.region)

    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client(
                self.url, self.access_key, self.secret_key, self.region, max_pool_connections=16
            )
        return self._client

    def keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                yield entry["Key"]

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under *prefix* (and abandoned multipart uploads there), and
        wait until the server has freed them: radosgw's collector would otherwise take
        CPU from the next run, whichever side it is."""
        client = self.client()
        keys = list(self.keys(prefix))
        for start in range(0, len(keys), 1000):
            client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
            )
        uploads = client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        for upload in uploads.get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        if keys and self._collect is not None:
            self._collect()
        return len(keys)

    def warm_up(self, total: int = WARM_UP_BYTES) -> None:
        """Upload *total* bytes as multipart objects, as the cases do, and delete them: a
        fresh radosgw takes its first GiBs about twice as slowly (7.4 s, 4.1 s, then 3.3 s
        per GiB measured), which would count against whichever side happens to run first."""
        block = os.urandom(8 * 1024**2)
        client = self.client()
        log.info("warming the S3 server up with %d MiB", total // 1024**2)
        for number in range(max(1, total // 1024**3)):
            client.upload_fileobj(_Repeat(block, 1024**3), self.bucket, f"warm-up/{number}")
        self.delete_prefix("warm-up/")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._stop is not None:
            self._stop()
            self._stop = None


class _Repeat(io.RawIOBase):
    """*size* bytes of *block* over and over, read as a file."""

    def __init__(self, block: bytes, size: int) -> None:
        self.block, self.left = block, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), len(self.block), self.left)
        buffer[:count] = self.block[:count]
        self.left -= count
        return count


def start(kind: str, work: Path) -> S3Endpoint:
    """Start the S3 server: ``radosgw``, ``moto`` or ``auto`` (radosgw, else moto)."""
    reason = ""
    if kind in ("auto", "radosgw"):
        try:
            radosgw.ensure_installed(work / "apt.log")
            server = radosgw.Radosgw(work / "ceph").start()
            endpoint = S3Endpoint(
                "radosgw",
                server.endpoint_url,
                server.access_key,
                server.secret_key,
                radosgw.version(),
                _stop=server.stop,
                _collect=server.wait_until_collected,
            )
            endpoint.client().create_bucket(Bucket=BUCKET)
            endpoint.warm_up()
            return endpoint
        except radosgw.RadosgwUnavailable as error:
            if kind == "radosgw":
                raise
            reason = str(error)
            log.warning("radosgw unavailable, falling back to moto: %s", reason)
    return _moto(work, reason or "moto was chosen (--s3 moto, the default of --quick).")


def _moto(work: Path, reason: str) -> S3Endpoint:
    from importlib.metadata import version

    from ftrack_transfer.sandbox.s3 import S3Server

    server = S3Server(region=REGION, log_dir=work / "moto").start()
    endpoint = S3Endpoint(
        "moto",
        server.endpoint_url,
        server.access_key,
        server.secret_key,
        version("moto"),
        fallback_reason=reason,
        _stop=server.stop,
    )
    endpoint.client().create_bucket(Bucket=BUCKET)
    return endpoint
