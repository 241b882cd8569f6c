"""S3 and S3-compatible object storage, through boto3.

Credentials come from the standard boto3 chain only (environment, shared config
profile, instance role); the location's options never hold one. The client is created
on first use and shared by all threads.

Containers are key prefixes; an explicit one is a zero-byte ``<prefix>/`` marker, as the
S3 consoles make them. Multipart writes and server-side copies are in ``s3_transfers``.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions as be
import botocore.loaders
import botocore.session
import ftrack_api.data

from . import paths, sequences
from .base import (
    Checksum,
    Option,
    RangedRead,
    Stat,
    TransferAccessor,
)
from .errors import (
    AccessorConfigurationError,
    ContainerNotEmptyError,
    ParentResourceNotFoundError,
    ResourceInvalidError,
    ResourceNotFoundError,
    TransientAccessorError,
    UnsupportedOperationError,
    named,
)
from .retry import RetryPolicy
from .s3_errors import NOT_FOUND, STREAM_ERRORS, error_code, map_error
from .s3_signing import sign_writes_with_known_digest
from .s3_transfers import MIN_PART, S3Transfers, stored_checksum
from .streams import ChunkStreamWriter, RangeReader, stream_mode

T = TypeVar("T")

_MiB = 1024 * 1024
CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
    "credentials), or AWS_PROFILE / the location's profile option naming a profile in the "
    "AWS config, or run where an instance role applies"
)


_loader: botocore.loaders.Loader | None = None
_loader_lock = threading.Lock()


def _shared_loader() -> botocore.loaders.Loader:
    """One botocore model loader for every accessor: parsing the S3 service model is most
    of the cost of creating a client. Credentials stay per accessor (per session)."""
    global _loader
    with _loader_lock:
        if _loader is None:
            _loader = botocore.loaders.create_loader()
        return _loader


class S3Accessor(TransferAccessor, RangedRead, S3Transfers, Checksum):
    """Objects under *prefix* in *bucket*; resource identifiers are the rest of the key."""

    name = "s3"
    #: Every part waits a round trip for its answer (and one for ``100-continue``), so
    #: more parts are kept in flight than SFTP chunks. Measured (bench ``wan/disk-s3``, a
    #: 20 ms link): 8 parts upload about 1.25x as fast as 4; on loopback they are level.
    default_streams = 8
    options = (
        Option("bucket", required=True, help="Bucket name."),
        Option("prefix", default="", help="Key prefix of the location inside the bucket."),
        Option("endpoint_url", help="Endpoint of an S3-compatible service (default: AWS)."),
        Option("region", help="Region (default: from the AWS config)."),
        Option("profile", help="Profile of the AWS config that holds the credentials."),
        Option("addressing_style", default="auto", help="auto, path or virtual."),
        Option("url_expiry", kind="duration", default=3600.0, help="Lifetime of get_url links."),
        Option("max_attempts", kind="int", default=5, help="Attempts per request (retries)."),
    )

    #: Part size of the streams :meth:`open` writes; ranged GET size of those it reads.
    stream_block_size = 8 * _MiB
    read_block_size = 8 * _MiB
    #: HTTP connections the client keeps: enough for the engine's parallel parts.
    max_pool_connections = 32

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        addressing_style: str = "auto",
        url_expiry: float = 3600.0,
        max_attempts: int = 5,
    ) -> None:
        super().__init__()
        if not isinstance(bucket, str) or not bucket:
            raise AccessorConfigurationError("s3 accessor: option 'bucket' must be a bucket name")
        if addressing_style not in ("auto", "path", "virtual"):
            raise AccessorConfigurationError(
                f"s3 accessor for bucket {bucket}: addressing_style must be auto, path or "
                f"virtual, not {addressing_style!r}"
            )
        self.bucket = bucket
        self.prefix = paths.safe_relative(prefix or "")
        self.endpoint_url = endpoint_url or None
        self.region = region or None
        self.profile = profile or None
        self.addressing_style = addressing_style
        self.url_expiry = float(url_expiry)
        self.max_attempts = max(1, int(max_attempts))
        # Body reads are not retried by botocore; these retries cover them.
        self.retry = RetryPolicy(self.max_attempts, 0.05, 5.0)
        self._client: Any = None
        self._lock = threading.Lock()

    # -- identity and client -----------------------------------------------------------

    def storage_key(self) -> str:
        return f"s3:{self.endpoint_url or 'aws'}"

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    @property
    def client(self) -> Any:
        """The boto3 client, created on first use (constructing the accessor stays offline)."""
        with self._lock:
            if self._client is None:
                try:
                    core = botocore.session.Session()
                    core.register_component("data_loader", _shared_loader())
                    session = boto3.session.Session(
                        botocore_session=core, profile_name=self.profile, region_name=self.region
                    )
                except be.ProfileNotFound as error:
                    raise map_error(
                        error, "connect", "", self.describe(), CREDENTIALS_HINT
                    ) from error
                config = botocore.config.Config(
                    retries={"mode": "standard", "total_max_attempts": self.max_attempts},
                    max_pool_connections=self.max_pool_connections,
                    # botocore would hash every body again to sign it on plain-http
                    # endpoints; writes are signed with the SHA-256 they carry instead
                    # (s3_signing), and nothing else has a body worth signing.
                    s3={
                        "addressing_style": self.addressing_style,
                        "payload_signing_enabled": False,
                    },
                    connect_timeout=10,
                    read_timeout=120,
                    tcp_keepalive=True,
                    # Presigned URLs must be SigV4: SigV2 links are refused by most regions.
                    signature_version="s3v4",
                )
                client = session.client(
                    "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
                )
                sign_writes_with_known_digest(client)
                self._client = client
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _call(self, operation: str, resource_identifier: str, work: Callable[[Any], T]) -> T:
        try:
            return work(self.client)
        except Exception as error:
            mapped = map_error(
                error, operation, resource_identifier, self.describe(), CREDENTIALS_HINT
            )
            if mapped is error:
                raise
            raise mapped from error

    def _key(self, resource_identifier: str) -> str:
        relative = paths.safe_relative(resource_identifier)
        if self.prefix and relative:
            return f"{self.prefix}/{relative}"
        return self.prefix or relative

    def _children_prefix(self, resource_identifier: str) -> str:
        key = self._key(resource_identifier)
        return f"{key}/" if key else ""

    def _head(self, resource_identifier: str) -> dict[str, Any] | None:
        """HeadObject (with checksums) of a file, or ``None`` when there is none."""
        if not paths.safe_relative(resource_identifier):
            return None

        def work(client: Any) -> dict[str, Any] | None:
            try:
                return client.head_object(
                    Bucket=self.bucket, Key=self._key(resource_identifier), ChecksumMode="ENABLED"
                )
            except be.ClientError as error:
                if error_code(error) in NOT_FOUND:
                    return None
                raise

        return self._call("stat", resource_identifier, work)

    def _some_children(self, resource_identifier: str, limit: int) -> dict[str, Any]:
        prefix = self._children_prefix(resource_identifier)
        return self._call(
            "list",
            resource_identifier,
            lambda c: c.list_objects_v2(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/", MaxKeys=limit
            ),
        )

    # -- ftrack Accessor ---------------------------------------------------------------

    def list(self, resource_identifier: str) -> list[str]:
        relative = paths.safe_relative(resource_identifier)
        prefix = self._children_prefix(resource_identifier)

        def work(client: Any) -> tuple[list[str], bool]:
            names: set[str] = set()
            found = False
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for entry in page.get("CommonPrefixes", []):
                    found = True
                    names.add(entry["Prefix"][len(prefix) :].rstrip("/"))
                for entry in page.get("Contents", []):
                    found = True
                    name = entry["Key"][len(prefix) :]
                    if name:  # the container's own marker
                        names.add(name)
            return sorted(names), found

        names, found = self._call("list", resource_identifier, work)
        if not found and relative:
            if self.is_file(resource_identifier):
                raise ResourceInvalidError(
                    f"Cannot list {named(resource_identifier)} on {self.describe()}: not a container",
                    "list",
                    resource_identifier,
                )
            raise ResourceNotFoundError(
                f"Cannot list {named(resource_identifier)} on {self.describe()}: no such container",
                "list",
                resource_identifier,
            )
        return [f"{relative}/{n}" if relative else n for n in names]

    def exists(self, resource_identifier: str) -> bool:
        return self.is_file(resource_identifier) or self.is_container(resource_identifier)

    def is_file(self, resource_identifier: str) -> bool:
        return self._head(resource_identifier) is not None

    def is_container(self, resource_identifier: str) -> bool:
        listing = self._some_children(resource_identifier, 1)
        if not paths.safe_relative(resource_identifier):
            return True  # the root; listing it raised if the bucket is missing
        return bool(listing.get("KeyCount") or listing.get("CommonPrefixes"))

    def is_sequence(self, resource_identifier: str) -> bool:
        found = sequences.split(paths.safe_relative(resource_identifier))
        if found is None:
            return False
        container, pattern = found
        try:
            names = self.list(container)
        except (ResourceNotFoundError, ResourceInvalidError):
            return False
        return any(pattern.fullmatch(n.rpartition("/")[2]) for n in names)

    def open(self, resource_identifier: str, mode: str = "rb") -> ftrack_api.data.Data:
        if stream_mode(mode, resource_identifier) == "w":
            if paths.safe_relative(resource_identifier) and self.is_container(resource_identifier):
                raise ResourceInvalidError(
                    f"Cannot write {named(resource_identifier)} on {self.describe()}: it is a container",
                    "open",
                    resource_identifier,
                )
            block = max(self.stream_block_size, MIN_PART)
            # "checksum" costs nothing extra here: the commit's HEAD carries the checksum.
            return ChunkStreamWriter(self, resource_identifier, block, verify="checksum")
        size = self.stat(resource_identifier).size
        return RangeReader(
            lambda offset, length: self.read_range(resource_identifier, offset, length),
            size,
            self.read_block_size,
            resource_identifier,
        )

    def remove(self, resource_identifier: str) -> None:
        if not paths.safe_relative(resource_identifier):
            raise ResourceInvalidError(
                f"Refusing to remove the root of {self.describe()}", "remove", resource_identifier
            )
        key = self._key(resource_identifier)
        if self.is_file(resource_identifier):
            self._call(
                "remove",
                resource_identifier,
                lambda c: c.delete_object(Bucket=self.bucket, Key=key),
            )
            return
        listing = self._some_children(resource_identifier, 2)
        marker = f"{key}/"
        others = [e for e in listing.get("Contents", []) if e["Key"] != marker]
        if others or listing.get("CommonPrefixes"):
            raise ContainerNotEmptyError(
                f"Cannot remove {named(resource_identifier)} on {self.describe()}: the container is "
                "not empty",
                "remove",
                resource_identifier,
            )
        if not listing.get("Contents"):
            raise ResourceNotFoundError(
                f"Cannot remove {named(resource_identifier)} on {self.describe()}: no such file or "
                "container",
                "remove",
                resource_identifier,
            )
        self._call(
            "remove", resource_identifier, lambda c: c.delete_object(Bucket=self.bucket, Key=marker)
        )

    def make_container(self, resource_identifier: str, recursive: bool = True) -> None:
        relative = paths.safe_relative(resource_identifier)
        if not relative:
            self._some_children("", 1)  # raises a clear error if the bucket is missing
            return
        if self.is_container(resource_identifier):
            return
        if self.is_file(resource_identifier):
            raise ResourceInvalidError(
                f"Cannot make container {named(resource_identifier)} on {self.describe()}: it is a file",
                "make container",
                resource_identifier,
            )
        parent = paths.parent(relative)
        if not recursive and parent and not self.is_container(parent):
            raise ParentResourceNotFoundError(
                f"Cannot make container {named(resource_identifier)} on {self.describe()}: its "
                "parent does not exist (make it first, or make containers recursively)",
                "make container",
                resource_identifier,
            )
        # A marker per level, so a container outlives its last child as a directory does.
        levels = relative.split("/")
        depths = range(1, len(levels) + 1) if recursive else [len(levels)]
        for depth in depths:
            marker = self._children_prefix("/".join(levels[:depth]))
            self._call(
                "make container",
                resource_identifier,
                lambda c, marker=marker: c.put_object(Bucket=self.bucket, Key=marker, Body=b""),
            )

    def get_url(self, resource_identifier: str) -> str:
        """A presigned GET URL, valid for ``url_expiry`` seconds."""
        key = self._key(resource_identifier)
        return self._call(
            "get url",
            resource_identifier,
            lambda c: c.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=int(self.url_expiry),
            ),
        )

    def get_filesystem_path(self, resource_identifier: str) -> str:
        raise UnsupportedOperationError(
            f"{self.describe()} is object storage: {resource_identifier!r} has no filesystem "
            "path (use get_url)",
            "get_filesystem_path",
            resource_identifier,
        )

    # -- TransferAccessor ---------------------------------------------------------------

    def stat(self, resource_identifier: str) -> Stat:
        head = self._head(resource_identifier)
        if head is None:
            if paths.safe_relative(resource_identifier) == "" or self.is_container(
                resource_identifier
            ):
                raise ResourceInvalidError(
                    f"Cannot stat {named(resource_identifier)} on {self.describe()}: not a file",
                    "stat",
                    resource_identifier,
                )
            raise ResourceNotFoundError(
                f"Cannot stat {named(resource_identifier)} on {self.describe()}: no such file",
                "stat",
                resource_identifier,
            )
        modified = head.get("LastModified")
        return Stat(int(head["ContentLength"]), modified.timestamp() if modified else None)

    # -- RangedRead ----------------------------------------------------------------------

    def read_range(self, resource_identifier: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        key = self._key(resource_identifier)

        def fetch(client: Any) -> bytes:
            try:
                response = client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}"
                )
            except be.ClientError as error:
                if error_code(error) == "InvalidRange":
                    return b""  # starts at or past the end
                raise
            body = response["Body"]  # its context manager yields the raw urllib3 stream
            try:
                return body.read()
            finally:
                body.close()

        return self._with_body_retries("read", resource_identifier, fetch)

    def _with_body_retries(
        self, operation: str, resource_identifier: str, work: Callable[[Any], T]
    ) -> T:
        """Run a GET whose body may break mid-way; botocore retries only the request."""

        def give_up(error: BaseException, attempts: int) -> TransientAccessorError:
            return TransientAccessorError(
                f"Cannot {operation} {named(resource_identifier)} on {self.describe()}: {error} "
                f"(gave up after {attempts} attempts)",
                operation,
                resource_identifier,
            )

        return self._call(
            operation,
            resource_identifier,
            lambda client: self.retry.call(
                lambda: work(client),
                is_transient=lambda e: isinstance(e, STREAM_ERRORS),
                give_up=give_up,
                what=f"{operation} {named(resource_identifier)} on {self.describe()}",
            ),
        )

    # -- Checksum ------------------------------------------------------------------------

    def checksum(self, resource_identifier: str) -> str | None:
        """``sha256:<hex>`` for a single-part object; ``sha256-composite:<hex>-<parts>``
        (SHA-256 of the parts' SHA-256s, see ``digests.DigestKind.composite``) for a multipart one."""
        head = self._head(resource_identifier)
        if head is None:
            raise ResourceNotFoundError(
                f"Cannot checksum {named(resource_identifier)} on {self.describe()}: no such file",
                "checksum",
                resource_identifier,
            )
        stored = stored_checksum(head)
        if stored is None:
            return None
        hexdigest = base64.b64decode(stored[0]).hex()
        return f"sha256-composite:{hexdigest}-{stored[1]}" if stored[1] else f"sha256:{hexdigest}"
