"""S3 accessor behaviour beyond the conformance suite: retries through a fault-injecting
proxy, permanent errors, credentials, multipart rules, streaming and copies. Real moto
server throughout (no mocked boto3)."""

from __future__ import annotations

import time
import urllib.request

import pytest
from ftrack_transfer.accessors.base import ChunkRules
from ftrack_transfer.accessors.digests import SHA256
from ftrack_transfer.accessors.errors import (
    AccessorConfigurationError,
    PermissionDeniedError,
    ResourceInvalidError,
    TransientAccessorError,
    UnsupportedOperationError,
    VerificationError,
)
from ftrack_transfer.accessors.s3 import S3Accessor
from ftrack_transfer.sandbox.faultproxy import FaultProxy, Rule
from ftrack_transfer.sandbox.s3 import S3Server

from tests.fixtures.storage import StorageCase, s3_accessor

from .common import CHUNK, MiB, chunks_of, payload, read_file, upload, write_chunks, write_file


def test_constructing_never_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    accessor = S3Accessor(bucket="b", endpoint_url="http://192.0.2.1:9", prefix="a/b/")
    assert accessor.prefix == "a/b"
    assert accessor.describe() == "s3://b/a/b at http://192.0.2.1:9"
    assert accessor.storage_key() == "s3:http://192.0.2.1:9"
    assert accessor._client is None


def test_bad_options() -> None:
    with pytest.raises(AccessorConfigurationError, match="addressing_style"):
        S3Accessor(bucket="b", addressing_style="sideways")
    with pytest.raises(AccessorConfigurationError, match="bucket"):
        S3Accessor(bucket="")


def test_chunk_rules() -> None:
    rules = S3Accessor.chunk_rules
    assert rules == ChunkRules(min_chunk_size=5 * MiB, max_chunks=10_000)
    assert rules.chunk_size_for(1 * MiB, 1 * MiB) == 5 * MiB
    assert rules.chunk_size_for(100_000 * 5 * MiB, 5 * MiB) == 50 * MiB


# -- credentials and configuration ----------------------------------------------------------


def test_missing_credentials_message(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role here
    accessor = s3_accessor(s3_server.endpoint_url, "any-bucket")
    with pytest.raises(AccessorConfigurationError) as caught:
        accessor.list("")
    message = str(caught.value)
    assert "No AWS credentials" in message
    assert "AWS_ACCESS_KEY_ID" in message and "AWS_PROFILE" in message
    assert "s3://any-bucket" in message


def test_unknown_profile(s3_server: S3Server) -> None:
    accessor = s3_accessor(s3_server.endpoint_url, "any-bucket", profile="no-such-profile")
    with pytest.raises(AccessorConfigurationError, match="no-such-profile"):
        accessor.exists("x")


def test_missing_bucket(s3_server: S3Server, s3_env: dict[str, str]) -> None:
    accessor = s3_accessor(s3_server.endpoint_url, "never-created")
    with pytest.raises(AccessorConfigurationError, match="bucket"):
        accessor.check()


def test_credentials_are_not_options() -> None:
    names = {o.name for o in S3Accessor.options}
    assert not names & {"access_key", "secret_key", "aws_access_key_id", "session_token"}


# -- retries through the fault proxy ----------------------------------------------------------


@pytest.mark.parametrize("fault", ["slowdown", "internal", "reset"])
def test_part_upload_retried(
    proxied_s3_case: StorageCase, fault_proxy: FaultProxy, fault: str
) -> None:
    accessor = proxied_s3_case.accessor
    data = payload(12 * MiB, 1)
    rule = fault_proxy.add(
        Rule(fault, method="PUT", query="partNumber", count=1 if fault == "slowdown" else 2)
    )
    upload(accessor, "retried.bin", data)
    assert rule.hits == rule.count
    assert accessor.read_range("retried.bin", 0, len(data)) == data


@pytest.mark.parametrize("fault", ["slowdown", "internal", "reset", "reset_body"])
def test_ranged_get_retried(
    proxied_s3_case: StorageCase, fault_proxy: FaultProxy, fault: str
) -> None:
    accessor = proxied_s3_case.accessor
    data = payload(3 * MiB, 2)
    accessor.put_small("ranged.bin", data, accessor.digest_kind.of(data))
    # SlowDown backs off from 1 s (throttling), the others from 50 ms.
    rule = fault_proxy.add(
        Rule(fault, method="GET", range_header=True, count=1 if fault == "slowdown" else 2)
    )
    assert accessor.read_range("ranged.bin", MiB, MiB) == data[MiB : 2 * MiB]
    assert rule.hits == rule.count


def test_access_denied_is_not_retried(
    proxied_s3_case: StorageCase, fault_proxy: FaultProxy
) -> None:
    accessor = proxied_s3_case.accessor
    accessor.put_small("secret.bin", b"data", accessor.digest_kind.of(b"data"))
    fault_proxy.clear()
    fault_proxy.add(Rule("denied", method="GET", count=-1))
    with pytest.raises(PermissionDeniedError) as caught:
        accessor.read_range("secret.bin", 0, 4)
    assert "AccessDenied" in str(caught.value) and "secret.bin" in str(caught.value)
    assert len([s for s in fault_proxy.seen if s.method == "GET"]) == 1


def test_exhausted_retries_are_transient(s3_server: S3Server, s3_env, fault_proxy) -> None:
    bucket = s3_server.create_bucket("exhausted")
    accessor = s3_accessor(fault_proxy.url, bucket, max_attempts=3)
    fault_proxy.add(Rule("internal", method="PUT", count=-1))
    started = time.monotonic()
    with pytest.raises(TransientAccessorError) as caught:
        accessor.put_small("a.bin", b"x", accessor.digest_kind.of(b"x"))
    assert time.monotonic() - started < 5
    assert "InternalError" in str(caught.value)
    assert "gave up after 3 attempts" in str(caught.value)
    assert len(fault_proxy.faults()) == 3


def test_streams_use_bounded_ranges_and_parts(
    proxied_s3_case: StorageCase, fault_proxy: FaultProxy
) -> None:
    accessor = proxied_s3_case.accessor
    accessor.read_block_size = 2 * MiB
    data = payload(17 * MiB, 3)
    stream = accessor.open("stream.bin", "wb")
    stream.write(data[: 16 * MiB])  # two 8 MiB parts: the first is sent before the second
    parts_before_close = [s for s in fault_proxy.seen if "partNumber" in s.query]
    assert parts_before_close, "parts are uploaded as the buffer fills"
    stream.write(data[16 * MiB :])
    stream.close()
    fault_proxy.clear()
    assert read_file(accessor, "stream.bin", piece=MiB) == data
    gets = [s for s in fault_proxy.seen if s.method == "GET"]
    assert len(gets) == -(-len(data) // (2 * MiB))


# -- multipart details ---------------------------------------------------------------------


def test_token_holds_upload_id_and_chunk_size(s3_case: StorageCase) -> None:
    accessor = s3_case.accessor
    token = accessor.begin_write("t.bin", 12 * MiB, CHUNK)
    size, _, upload_id = token.partition(":")
    assert int(size) == CHUNK and upload_id
    uploads = accessor.client.list_multipart_uploads(Bucket=accessor.bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [upload_id]
    with pytest.raises(ResourceInvalidError, match="multiples"):
        accessor.write_chunk("t.bin", token, 1000, b"x", accessor.digest_kind.of(b"x"))
    accessor.abort_write("t.bin", token)
    with pytest.raises(ResourceInvalidError, match="5 MiB"):
        accessor.begin_write("t.bin", 12 * MiB, MiB)
    with pytest.raises(ResourceInvalidError, match="token"):
        accessor.write_chunk("t.bin", "not-a-token", 0, b"x", accessor.digest_kind.of(b"x"))


def test_parts_carry_sha256_and_composite_checksum(s3_case: StorageCase) -> None:
    accessor = s3_case.accessor
    data = payload(12 * MiB, 4)
    token = accessor.begin_write("c.bin", len(data), CHUNK)
    written = write_chunks(accessor, "c.bin", token, chunks_of(data))
    for chunk in written:
        etag, _, checksum = chunk.receipt.partition(" ")
        assert etag.startswith('"')
        assert checksum == __import__("base64").b64encode(chunk.digest).decode()
    accessor.commit_write("c.bin", token, len(data), written)
    expected = SHA256.composite([SHA256.of(d) for _, d in chunks_of(data)])
    assert accessor.checksum("c.bin") == f"sha256-composite:{expected}"


def test_multipart_server_side_copy(proxied_s3_case: StorageCase, fault_proxy: FaultProxy) -> None:
    accessor = proxied_s3_case.accessor
    accessor.copy_threshold = accessor.copy_part_size = CHUNK
    data = payload(12 * MiB, 5)
    upload(accessor, "src.bin", data)
    fault_proxy.clear()
    accessor.copy_from(accessor, "src.bin", "copies/dst.bin", len(data), "full")
    part_copies = [s for s in fault_proxy.seen if s.method == "PUT" and "partNumber" in s.query]
    assert len(part_copies) == 3
    assert accessor.read_range("copies/dst.bin", 0, len(data)) == data


def test_presigned_url(s3_case: StorageCase) -> None:
    accessor = s3_case.accessor
    write_file(accessor, "shots/plate 1.exr", b"pixels")
    url = accessor.get_url("shots/plate 1.exr")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=3600" in url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        assert response.read() == b"pixels"
    with pytest.raises(UnsupportedOperationError, match="get_url"):
        accessor.get_filesystem_path("shots/plate 1.exr")


def test_content_type_from_the_name(s3_case: StorageCase) -> None:
    accessor = s3_case.accessor
    write_file(accessor, "review/clip.mp4", b"movie")
    head = accessor.client.head_object(Bucket=accessor.bucket, Key=accessor._key("review/clip.mp4"))
    assert head["ContentType"] == "video/mp4"


# -- servers that do not check SHA-256 checksums (radosgw 16) ---------------------------------


def _write_and_read_back(accessor: S3Accessor, data: bytes) -> list[bytes]:
    """A multipart file of *data* and a one-PUT file of its first 1,000 bytes, each read
    back equal, and no incomplete upload left behind; return the bodies written."""
    upload(accessor, "multipart.bin", data)
    accessor.put_small("small.bin", data[:1000], accessor.digest_kind.of(data[:1000]))
    assert accessor.read_range("multipart.bin", 0, len(data)) == data
    assert accessor.read_range("small.bin", 0, 1000) == data[:1000]
    assert not accessor.client.list_multipart_uploads(Bucket=accessor.bucket).get("Uploads")
    return [piece for _, piece in chunks_of(data)] + [data[:1000]]


def test_a_server_ignoring_checksums_is_checked_by_md5_etags(
    proxied_s3_case: StorageCase, fault_proxy: FaultProxy
) -> None:
    fault_proxy.add(Rule("unchecked", method="PUT", count=-1))
    _write_and_read_back(proxied_s3_case.accessor, payload(12 * MiB, 21))
    writes = [s for s in fault_proxy.seen if s.method == "PUT" and s.fault == "unchecked"]
    # Once the first write shows the server checks nothing, writes carry Content-MD5.
    assert "content-md5" in writes[-1].headers


def test_a_server_checking_only_signed_payloads_is_sent_no_md5(
    proxied_s3_case: StorageCase, fault_proxy: FaultProxy
) -> None:
    # radosgw 16: checksum headers ignored, the signed SHA-256 of the body checked.
    fault_proxy.add(Rule("signed_only", method="PUT", count=-1))
    bodies = _write_and_read_back(proxied_s3_case.accessor, payload(12 * MiB, 24))
    writes = [s for s in fault_proxy.seen if s.method == "PUT" and s.fault == "signed_only"]
    # Every write is signed with the digest it carries, and none needed an MD5.
    signed = {s.headers["x-amz-content-sha256"] for s in writes}
    assert {SHA256.of(body).hex() for body in bodies} <= signed
    assert not [s for s in writes if "content-md5" in s.headers]


def _first_chunk_fails(accessor: S3Accessor, data: bytes, match: str) -> str:
    """Begin a write of *data* as damaged.bin whose first chunk must fail verification
    with *match*; return the write's token."""
    token = accessor.begin_write("damaged.bin", len(data), CHUNK)
    with pytest.raises(VerificationError, match=match):
        accessor.write_chunk(
            "damaged.bin", token, 0, data[:CHUNK], accessor.digest_kind.of(data[:CHUNK])
        )
    return token


def test_a_body_damaged_on_the_way_to_such_a_server_is_refused(
    proxied_s3_case: StorageCase, fault_proxy: FaultProxy
) -> None:
    accessor = proxied_s3_case.accessor
    data = payload(6 * MiB, 25)
    fault_proxy.add(Rule("corrupt_signed", method="PUT", query="partNumber", count=1))
    fault_proxy.add(Rule("signed_only", method="PUT", count=-1))
    token = _first_chunk_fails(
        accessor, data, r"'damaged.bin' .*XAmzContentSHA256Mismatch.*the data that arrived"
    )
    # Sent again, the chunk arrives whole and the file commits.
    written = write_chunks(accessor, "damaged.bin", token, chunks_of(data))
    accessor.commit_write("damaged.bin", token, len(data), written)
    assert accessor.read_range("damaged.bin", 0, len(data)) == data


def test_a_part_such_a_server_stored_wrongly_fails_verification(
    proxied_s3_case: StorageCase, fault_proxy: FaultProxy
) -> None:
    accessor = proxied_s3_case.accessor
    data = payload(6 * MiB, 22)
    fault_proxy.add(Rule("corrupt", method="PUT", query="partNumber", count=1))
    token = _first_chunk_fails(
        accessor, data, r"part 1 of 'damaged.bin' .* another MD5 than the data sent"
    )
    accessor.abort_write("damaged.bin", token)
    assert not accessor.exists("damaged.bin")


def test_a_small_file_such_a_server_stored_wrongly_does_not_stay_under_its_name(
    proxied_s3_case: StorageCase, fault_proxy: FaultProxy
) -> None:
    accessor = proxied_s3_case.accessor
    data = payload(100_000, 23)
    fault_proxy.add(Rule("corrupt", method="PUT", count=1))
    with pytest.raises(VerificationError, match="the data S3 stored differs from the source's"):
        accessor.put_small("small.bin", data, accessor.digest_kind.of(data))
    assert not accessor.exists("small.bin")
    # From then on writes also carry Content-MD5, which such servers check on arrival.
    fault_proxy.add(Rule("unchecked", method="PUT", count=-1))
    accessor.put_small("small.bin", data, accessor.digest_kind.of(data))
    assert accessor.read_range("small.bin", 0, len(data)) == data
