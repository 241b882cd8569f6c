"""Writes signed with the SHA-256 the engine has already computed.

SigV4 signs a hash of the request body (``x-amz-content-sha256``). botocore fills it by
hashing every body once more (plain-http endpoints) or leaves it ``UNSIGNED-PAYLOAD``
(https, or when told not to sign payloads, as the accessor does). A body we write always
carries its SHA-256 in ``x-amz-checksum-sha256``, computed by the engine while reading
the source, so that digest is signed instead: nothing is hashed twice, and a server that
checks signed payloads (AWS, radosgw, MinIO) refuses a body that does not match it
(``XAmzContentSHA256Mismatch``) even where it ignores the checksum header itself, as
radosgw 16 does. Whether a server checks is found out by the accessor, never assumed.

Only ``PutObject`` and ``UploadPart`` are signed this way, and only where botocore would
sign them with plain SigV4; every other request is signed as botocore would.
"""

from __future__ import annotations

import base64
from typing import Any

import botocore.auth

#: The signer's name in botocore's registry of signature versions.
SIGNATURE_VERSION = "s3v4-ftrack-transfer-known-digest"
WRITES = ("PutObject", "UploadPart")
_CHECKSUM = "x-amz-checksum-sha256"


class KnownDigestAuth(botocore.auth.S3SigV4Auth):
    """SigV4 for S3 whose payload hash is the body's ``x-amz-checksum-sha256``."""

    def payload(self, request: Any) -> str:
        digest = request.headers.get(_CHECKSUM)
        # An aws-chunked body is not the data the checksum is of: hash it as usual.
        if digest and "aws-chunked" not in request.headers.get("Content-Encoding", ""):
            return base64.b64decode(digest).hex()
        return str(super().payload(request))


def _choose(signature_version: Any, **_: Any) -> str | None:
    # Plain SigV4 only: S3 Express, SigV4a and unsigned operations keep botocore's choice.
    return SIGNATURE_VERSION if signature_version in ("v4", "s3v4") else None


def sign_writes_with_known_digest(client: Any) -> None:
    """Make *client* sign its writes with the digest they carry (see the module)."""
    botocore.auth.AUTH_TYPE_MAPS.setdefault(SIGNATURE_VERSION, KnownDigestAuth)
    for operation in WRITES:
        # First: botocore's own handlers answer "s3v4" and the first answer is taken.
        client.meta.events.register_first(
            f"choose-signer.s3.{operation}", _choose, unique_id=f"{SIGNATURE_VERSION}-{operation}"
        )
