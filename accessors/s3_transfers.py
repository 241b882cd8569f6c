"""Multipart writes and server-side copies for the S3 accessor.

Chunked writes are multipart uploads: every part carries its SHA-256
(``ChecksumSHA256``), so S3 verifies each part as it arrives, and the write token holds
the chunk size and the upload id (part number = offset // chunk size + 1). The commit
checks S3's parts against the engine's digests before completing, so nothing becomes
visible when they differ, then compares the composite checksum S3 reports and deletes
the object if that differs. Copies inside one endpoint never move bytes through this
process: CopyObject, or UploadPartCopy ranges in parallel for large objects.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import logging
import mimetypes
import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.exceptions as be

from . import paths, writes
from .base import (
    ChunkedWrite,
    ChunkRules,
    ServerSideCopy,
    TransferAccessor,
    VerifyLevel,
    WrittenChunk,
)
from .digests import SHA256
from .errors import ResourceInvalidError, ResourceNotFoundError, VerificationError, named
from .s3_errors import DIGEST, error_code

T = TypeVar("T")

_MiB = 1024 * 1024
MIN_PART = 5 * _MiB
MAX_PARTS = 10_000


log = logging.getLogger(__name__)
#: One question at a time: writes in flight wait for the first one's answer.
_PROBE_LOCK = threading.Lock()


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _md5_header(md5: bytes | None) -> dict[str, str]:
    return {"ContentMD5": b64(md5)} if md5 else {}


class S3Transfers(ChunkedWrite, ServerSideCopy):
    """The ChunkedWrite and ServerSideCopy capabilities of :class:`~.s3.S3Accessor`.

    A mixin: it works through the accessor's client (``_call``), keys and reads.
    """

    chunk_rules = ChunkRules(min_chunk_size=MIN_PART, max_chunks=MAX_PARTS)
    #: S3 verifies a part's SHA-256 on arrival, and writes are signed with it.
    digest_kind = SHA256
    #: Objects up to this size are copied with one CopyObject (S3 allows up to 5 GiB),
    #: larger ones with parallel UploadPartCopy ranges of ``copy_part_size``.
    copy_threshold = 256 * _MiB
    copy_part_size = 128 * _MiB
    copy_threads = 8
    #: Whether a server that ignores SHA-256 checksum headers (radosgw 16) refuses a body
    #: that differs from the SHA-256 it is signed with (``None``: not asked yet).
    _checks_signed_payload: bool | None = None
    #: Set once the server is seen to check neither: later writes carry Content-MD5,
    #: which such servers do verify on arrival.
    _send_md5 = False
    _warned_unverified = False

    if TYPE_CHECKING:  # provided by the accessor
        bucket: str
        read_block_size: int

        def describe(self) -> str: ...
        def storage_key(self) -> str: ...
        def _key(self, resource_identifier: str) -> str: ...
        def _call(
            self, operation: str, resource_identifier: str, work: Callable[[Any], T]
        ) -> T: ...
        def _head(self, resource_identifier: str) -> dict[str, Any] | None: ...
        def read_range(self, resource_identifier: str, offset: int, length: int) -> bytes: ...
        def stat(self, resource_identifier: str) -> Any: ...
        def make_container(self, resource_identifier: str, recursive: bool = True) -> None: ...

    # -- ChunkedWrite --------------------------------------------------------------------

    def _parse_token(self, resource_identifier: str, token: str) -> tuple[int, str]:
        size, _, upload_id = str(token).partition(":")
        if not size.isdigit() or not upload_id or int(size) <= 0:
            raise ResourceInvalidError(
                f"Write token {token!r} for {resource_identifier!r} is not one this accessor "
                "issued; start the write again with begin_write",
                "write",
                resource_identifier,
            )
        return int(size), upload_id

    def _content_type(self, resource_identifier: str) -> dict[str, str]:
        guessed, _ = mimetypes.guess_type(resource_identifier)
        return {"ContentType": guessed} if guessed else {}

    def begin_write(self, resource_identifier: str, size: int, chunk_size: int) -> str:
        if not paths.safe_relative(resource_identifier):
            raise ResourceInvalidError(
                f"Cannot write the root of {self.describe()} as a file",
                "write",
                resource_identifier,
            )
        if chunk_size < MIN_PART and size > chunk_size:
            raise ResourceInvalidError(
                f"Cannot write {named(resource_identifier)} on {self.describe()} in chunks of "
                f"{chunk_size} bytes: S3 parts must be at least 5 MiB (except the last)",
                "write",
                resource_identifier,
            )
        if size > chunk_size * MAX_PARTS:
            raise ResourceInvalidError(
                f"Cannot write {named(resource_identifier)} on {self.describe()}: {size} bytes in "
                f"chunks of {chunk_size} is more than S3's {MAX_PARTS} parts",
                "write",
                resource_identifier,
            )
        # Parents get markers as directories would: they outlive the file's removal.
        if paths.parent(resource_identifier):
            self.make_container(paths.parent(resource_identifier))
        key = self._key(resource_identifier)
        response = self._call(
            "write",
            resource_identifier,
            lambda c: c.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ChecksumAlgorithm="SHA256",
                **self._content_type(resource_identifier),
            ),
        )
        return f"{chunk_size}:{response['UploadId']}"

    def write_chunk(
        self,
        resource_identifier: str,
        token: str,
        offset: int,
        data: bytes | memoryview,
        digest: bytes,
    ) -> str | None:
        chunk_size, upload_id = self._parse_token(resource_identifier, token)
        if offset % chunk_size:
            raise ResourceInvalidError(
                f"Cannot write {resource_identifier!r} at byte {offset}: chunks of this write "
                f"start at multiples of {chunk_size}",
                "write",
                resource_identifier,
            )
        part = offset // chunk_size + 1
        key = self._key(resource_identifier)
        md5 = self._md5(data)
        response = self._call(
            "write",
            resource_identifier,
            lambda c: c.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=part,
                Body=bytes(data),
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64(digest),
                **_md5_header(md5),
            ),
        )
        self._check_acknowledged(resource_identifier, f"part {part}", response, data, digest, md5)
        # The receipt keeps what S3 acknowledged, for a commit in another process.
        return f"{response['ETag']} {response.get('ChecksumSHA256') or b64(digest)}"

    def _check_acknowledged(
        self,
        resource_identifier: str,
        what: str,
        response: dict[str, Any],
        data: bytes | memoryview,
        sha256: bytes,
        md5: bytes | None = None,
    ) -> None:
        """Check what the server says it stored against what was sent (*md5*: the data's
        MD5 when it was computed for Content-MD5 already).

        AWS S3 verifies the SHA-256 sent with a write and echoes it. Some S3-compatible
        servers (radosgw 16) ignore it and echo nothing, but check the SHA-256 the write
        is signed with (see ``s3_signing``): that is enough. Where a server checks neither,
        its ETag of an unencrypted write is the MD5 of the data, so that is compared
        instead, and later writes also carry Content-MD5, which such servers verify.
        """
        echoed = response.get("ChecksumSHA256")
        if echoed is not None:
            if echoed != b64(sha256):
                raise VerificationError(
                    f"{what} of {named(resource_identifier)} on {self.describe()} was stored with "
                    "another SHA-256 than the data sent",
                    "write",
                    resource_identifier,
                )
            return
        if self._signed_payload_checked(resource_identifier):
            return
        self._send_md5 = True
        etag = str(response.get("ETag", "")).strip('"')
        if re.fullmatch(r"[0-9a-f]{32}", etag):
            if etag != (md5 or hashlib.md5(data, usedforsecurity=False).digest()).hex():
                raise VerificationError(
                    f"{what} of {named(resource_identifier)} on {self.describe()} was stored with "
                    "another MD5 than the data sent",
                    "write",
                    resource_identifier,
                )
        elif not self._warned_unverified:
            self._warned_unverified = True
            log.warning(
                "%s neither checks SHA-256 checksums nor returns MD5 ETags: writes are checked "
                'by size only (use verify = "full" to read them back)',
                self.describe(),
            )

    def _signed_payload_checked(self, resource_identifier: str) -> bool:
        """Whether the server refuses a body that differs from the SHA-256 it is signed
        with: asked once, by sending a part signed with a wrong digest into a multipart
        upload that is aborted straight after, so nothing ever becomes visible."""
        if self._checks_signed_payload is not None:  # every later write: no lock
            return self._checks_signed_payload
        with _PROBE_LOCK:
            if self._checks_signed_payload is None:
                checks = self._probe_signed_payload(resource_identifier)
                log.info(
                    "%s %s the SHA-256 writes are signed with; %s",
                    self.describe(),
                    "checks" if checks else "does not check",
                    "no MD5 is needed" if checks else "writes also carry Content-MD5",
                )
                self._checks_signed_payload = checks
            return self._checks_signed_payload

    def _probe_signed_payload(self, resource_identifier: str) -> bool:
        key = self._key(resource_identifier)
        body = b"ftrack-transfer: does this server check signed payloads?"
        wrong = b64(hashlib.sha256(body + b"?").digest())

        def work(client: Any) -> bool:
            upload_id = client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256"
            )["UploadId"]
            try:
                client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=1,
                    Body=body,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=wrong,
                )
            except be.ClientError as error:
                return error_code(error) in DIGEST
            finally:
                client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            return False

        try:
            return self._call("write", resource_identifier, work)
        except Exception as error:  # not knowing means Content-MD5, which is safe
            log.info("%s: could not ask whether signed payloads are checked: %s", key, error)
            return False

    def _md5(self, data: bytes | memoryview) -> bytes | None:
        """The data's MD5 for Content-MD5, on servers known not to verify SHA-256."""
        return hashlib.md5(data, usedforsecurity=False).digest() if self._send_md5 else None

    def commit_write(
        self,
        resource_identifier: str,
        token: str,
        size: int,
        chunks: Sequence[WrittenChunk],
        verify: VerifyLevel = "checksum",
    ) -> None:
        chunk_size, upload_id = self._parse_token(resource_identifier, token)
        key = self._key(resource_identifier)
        try:
            ordered = writes.check_coverage(resource_identifier, size, chunks, self.describe())
            if size == 0:
                self.abort_write(resource_identifier, token)
                self.put_small(resource_identifier, b"", SHA256.of(b""), verify)
                return
            try:
                stored = self._list_parts(resource_identifier, key, upload_id)
            except ResourceNotFoundError:
                head = self._head(resource_identifier)
                if head is not None and int(head["ContentLength"]) == size:
                    return  # completed already: a retried commit after a lost reply
                raise
            parts = self._check_parts(resource_identifier, ordered, chunk_size, stored)
        except VerificationError:
            self.abort_write(resource_identifier, token)
            raise
        self._call(
            "commit",
            resource_identifier,
            lambda c: c.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            ),
        )
        try:
            self._verify_object(resource_identifier, size, ordered, verify, composite=True)
        except VerificationError:
            self._call(
                "remove",
                resource_identifier,
                lambda c: c.delete_object(Bucket=self.bucket, Key=key),
            )
            raise

    def _list_parts(self, resource_identifier: str, key: str, upload_id: str) -> dict[int, Any]:
        def work(client: Any) -> dict[int, Any]:
            parts: dict[int, Any] = {}
            paginator = client.get_paginator("list_parts")
            for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                for part in page.get("Parts", []):
                    parts[int(part["PartNumber"])] = part
            return parts

        return self._call("commit", resource_identifier, work)

    def _check_parts(
        self,
        resource_identifier: str,
        ordered: Sequence[WrittenChunk],
        chunk_size: int,
        stored: dict[int, Any],
    ) -> list[dict[str, Any]]:
        """Match S3's parts with the engine's chunks; return CompleteMultipartUpload's list."""
        parts = []
        for chunk in ordered:
            number = chunk.offset // chunk_size + 1
            found = stored.get(number)
            receipt_etag, _, receipt_sum = (chunk.receipt or "").partition(" ")
            problem = None
            if chunk.offset % chunk_size:
                problem = f"starts at byte {chunk.offset}, not at a multiple of {chunk_size}"
            elif found is None:
                problem = "was never uploaded"
            elif int(found["Size"]) != chunk.length:
                problem = f"holds {found['Size']} bytes, {chunk.length} expected"
            else:
                # Real S3 lists each part's verified checksum; where a service does not,
                # the checksum it acknowledged on upload (the receipt) stands in.
                held = found.get("ChecksumSHA256") or receipt_sum or None
                if held is not None and held != b64(chunk.digest):
                    problem = "differs from the source (SHA-256 mismatch)"
            if problem:
                raise VerificationError(
                    f"Cannot commit {named(resource_identifier)} on {self.describe()}: part {number} "
                    f"(byte {chunk.offset}) {problem}",
                    "commit_write",
                    resource_identifier,
                )
            parts.append(
                {
                    "PartNumber": number,
                    "ETag": found["ETag"] or receipt_etag,
                    "ChecksumSHA256": b64(chunk.digest),
                }
            )
        return parts

    def _verify_object(
        self,
        resource_identifier: str,
        size: int,
        ordered: Sequence[WrittenChunk],
        verify: VerifyLevel,
        *,
        composite: bool,
    ) -> None:
        head = self._head(resource_identifier)
        found = int(head["ContentLength"]) if head else None
        problem = None
        if found != size:
            problem = f"{found} bytes stored, {size} expected"
        elif verify in ("checksum", "full") and head and head.get("ChecksumSHA256"):
            digests = [c.digest for c in ordered]
            expected = b64(hashlib.sha256(b"".join(digests)).digest()) if composite else None
            if not composite and len(digests) == 1:
                expected = b64(digests[0])
            reported = str(head["ChecksumSHA256"]).partition("-")[0]
            if expected is not None and reported != expected:
                problem = "the checksum S3 computed differs from the source's (SHA-256 mismatch)"
        if problem is None and verify == "full":
            problem = self._read_back(resource_identifier, ordered)
        if problem:
            raise VerificationError(
                f"Cannot commit {named(resource_identifier)} on {self.describe()}: {problem}",
                "commit_write",
                resource_identifier,
            )

    def _read_back(self, resource_identifier: str, ordered: Sequence[WrittenChunk]) -> str | None:
        def digest(chunk: WrittenChunk) -> bytes:
            return SHA256.of(self.read_range(resource_identifier, chunk.offset, chunk.length))

        workers = max(1, min(self.copy_threads, len(ordered)))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for chunk, found in zip(ordered, pool.map(digest, ordered), strict=True):
                if found != chunk.digest:
                    return f"the data read back at byte {chunk.offset} differs from the source"
        return None

    def abort_write(self, resource_identifier: str, token: str) -> None:
        _, upload_id = self._parse_token(resource_identifier, token)
        key = self._key(resource_identifier)

        def work(client: Any) -> None:
            try:
                client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except be.ClientError as error:
                if error_code(error) != "NoSuchUpload":
                    raise

        self._call("abort", resource_identifier, work)

    def discard_stale(self, resource_identifier: str, keep: str | None = None) -> int:
        key = self._key(resource_identifier)
        kept = self._parse_token(resource_identifier, keep)[1] if keep else None

        def work(client: Any) -> int:
            # Multipart uploads are S3's temporaries: listed by key, aborted by id.
            stale = []
            for page in client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=key
            ):
                stale += [
                    upload["UploadId"]
                    for upload in page.get("Uploads", [])
                    if upload["Key"] == key and upload["UploadId"] != kept
                ]
            for upload_id in stale:
                try:
                    client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                except be.ClientError as error:
                    if error_code(error) != "NoSuchUpload":
                        raise
            return len(stale)

        return self._call("clean up", resource_identifier, work)

    def put_small(
        self,
        resource_identifier: str,
        data: bytes,
        digest: bytes,
        verify: VerifyLevel = "checksum",
    ) -> None:
        """One PutObject carrying the SHA-256: S3 stores the object only if it matches."""
        if not paths.safe_relative(resource_identifier):
            raise ResourceInvalidError(
                f"Cannot write the root of {self.describe()} as a file",
                "write",
                resource_identifier,
            )
        key = self._key(resource_identifier)
        md5 = self._md5(data)
        response = self._call(
            "write",
            resource_identifier,
            lambda c: c.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64(digest),
                **self._content_type(resource_identifier),
                **_md5_header(md5),
            ),
        )
        problem = None
        try:
            self._check_acknowledged(resource_identifier, "the object", response, data, digest, md5)
        except VerificationError:
            problem = "the data S3 stored differs from the source's"
        if problem is None and verify == "full":
            try:
                found = self.read_range(resource_identifier, 0, len(data) + 1)
            except VerificationError:
                found = None
            if found is None or SHA256.of(found) != digest:
                problem = "the data read back differs from the source"
        if problem:
            self._call(
                "remove",
                resource_identifier,
                lambda c: c.delete_object(Bucket=self.bucket, Key=key),
            )
            raise VerificationError(
                f"Cannot write {named(resource_identifier)} on {self.describe()}: {problem}",
                "put_small",
                resource_identifier,
            )

    # -- ServerSideCopy ------------------------------------------------------------------

    def can_copy_from(self, source: TransferAccessor) -> bool:
        return isinstance(source, S3Transfers) and source.storage_key() == self.storage_key()

    def copy_from(
        self,
        source: TransferAccessor,
        source_identifier: str,
        resource_identifier: str,
        size: int,
        verify: VerifyLevel = "checksum",
    ) -> None:
        if not isinstance(source, S3Transfers):
            raise ResourceInvalidError(
                f"Cannot copy to {self.describe()} from {source.describe()}: not S3",
                "copy",
                resource_identifier,
            )
        head = source._head(source_identifier)
        if head is None:
            raise ResourceNotFoundError(
                f"Cannot copy {source_identifier!r} from {source.describe()}: no such file",
                "copy",
                source_identifier,
            )
        if int(head["ContentLength"]) != size:
            raise VerificationError(
                f"Cannot copy {source_identifier!r} from {source.describe()}: it holds "
                f"{head['ContentLength']} bytes, {size} expected",
                "copy",
                source_identifier,
            )
        copy_source = {"Bucket": source.bucket, "Key": source._key(source_identifier)}
        key = self._key(resource_identifier)
        if size <= self.copy_threshold:
            self._call(
                "copy",
                resource_identifier,
                lambda c: c.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource=copy_source,
                    CopySourceIfMatch=head["ETag"],
                    ChecksumAlgorithm="SHA256",
                ),
            )
        else:
            self._copy_parts(resource_identifier, key, copy_source, head, size)
        target = self._head(resource_identifier)
        problem = None
        if target is None or int(target["ContentLength"]) != size:
            problem = f"{target and target['ContentLength']} bytes stored, {size} expected"
        elif verify in ("checksum", "full"):
            ours, theirs = stored_checksum(target), stored_checksum(head)
            # Comparable only when both are whole-object checksums (0 parts).
            if ours and theirs and ours[1] == theirs[1] == 0 and ours != theirs:
                problem = "its checksum differs from the source's"
            elif verify == "full" and self._content_digest(
                resource_identifier
            ) != source._content_digest(source_identifier):
                problem = "the data read back differs from the source"
        if problem:
            self._call(
                "remove",
                resource_identifier,
                lambda c: c.delete_object(Bucket=self.bucket, Key=key),
            )
            raise VerificationError(
                f"Copy of {source_identifier!r} to {named(resource_identifier)} on {self.describe()} "
                f"failed verification: {problem}",
                "copy",
                resource_identifier,
            )

    def _copy_parts(
        self,
        resource_identifier: str,
        key: str,
        copy_source: dict[str, str],
        head: dict[str, Any],
        size: int,
    ) -> None:
        part_size = self.chunk_rules.chunk_size_for(size, self.copy_part_size)
        upload_id = self._call(
            "copy",
            resource_identifier,
            lambda c: c.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ChecksumAlgorithm="SHA256",
                **({"ContentType": head["ContentType"]} if head.get("ContentType") else {}),
            ),
        )["UploadId"]

        def copy_part(number: int) -> dict[str, Any]:
            start = (number - 1) * part_size
            end = min(size, start + part_size) - 1
            result = self._call(
                "copy",
                resource_identifier,
                lambda c: c.upload_part_copy(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=copy_source,
                    CopySourceRange=f"bytes={start}-{end}",
                    CopySourceIfMatch=head["ETag"],
                ),
            )["CopyPartResult"]
            part = {"PartNumber": number, "ETag": result["ETag"]}
            if result.get("ChecksumSHA256"):
                part["ChecksumSHA256"] = result["ChecksumSHA256"]
            return part

        count = -(-size // part_size)
        try:
            with concurrent.futures.ThreadPoolExecutor(min(self.copy_threads, count)) as pool:
                parts = list(pool.map(copy_part, range(1, count + 1)))
            self._call(
                "copy",
                resource_identifier,
                lambda c: c.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                ),
            )
        except BaseException:
            self.abort_write(resource_identifier, f"{part_size}:{upload_id}")
            raise

    def _content_digest(self, resource_identifier: str) -> bytes:
        """SHA-256 of a whole object, read in ranged GETs (for "full" verification)."""
        digest = hashlib.sha256()
        size = self.stat(resource_identifier).size
        for offset in range(0, size, self.read_block_size):
            digest.update(self.read_range(resource_identifier, offset, self.read_block_size))
        return digest.digest()


def stored_checksum(head: dict[str, Any]) -> tuple[str, int] | None:
    """``(base64 SHA-256, part count)`` S3 holds for an object; 0 parts: a whole-object hash.

    S3 writes a multipart object's composite checksum as ``<base64>-<parts>``; some
    S3-compatible services omit the suffix, but the ETag of a multipart object always
    ends in ``-<parts>``.
    """
    value = head.get("ChecksumSHA256")
    if not value:
        return None
    digest, _, parts = str(value).partition("-")
    parts = parts or str(head.get("ETag", "")).strip('"').partition("-")[2]
    return digest, int(parts) if parts.isdigit() else 0
