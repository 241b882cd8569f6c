"""boto3/botocore failures as accessor errors, with one-line messages.

botocore's standard retry mode has already retried throttling (503 SlowDown), 5xx
replies and connection errors by the time an error reaches this mapping, so what is
still transient here is reported as :class:`TransientAccessorError` for the engine's
slower retries; everything else is permanent.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions as be
import ftrack_api.exception
import urllib3.exceptions

from .errors import (
    AccessorConfigurationError,
    OperationFailedError,
    PermissionDeniedError,
    ResourceInvalidError,
    ResourceNotFoundError,
    TransientAccessorError,
    VerificationError,
)

NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"}
BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}
DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
INVALID = {"EntityTooSmall", "EntityTooLarge", "InvalidPart", "InvalidPartOrder", "InvalidArgument"}
TRANSIENT = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "503",
    "500",
}
#: Failures that happen while reading a response body, which botocore does not retry.
STREAM_ERRORS = (
    be.ResponseStreamingError,
    urllib3.exceptions.ProtocolError,
    be.IncompleteReadError,
    be.ReadTimeoutError,
    be.ConnectionClosedError,
    ConnectionError,
    TimeoutError,
)
CONNECTION_ERRORS = (
    be.EndpointConnectionError,
    be.ConnectionClosedError,
    be.ReadTimeoutError,
    be.ConnectTimeoutError,
    be.ResponseStreamingError,
    be.IncompleteReadError,
    be.ProxyConnectionError,
    be.HTTPClientError,
    ConnectionError,
    TimeoutError,
)


def error_code(error: be.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def map_error(
    error: BaseException,
    operation: str,
    resource_identifier: str,
    where: str,
    credentials_hint: str,
) -> Exception:
    """Return the accessor error for a boto3 *error* (or *error* itself when it is one)."""
    if isinstance(error, ftrack_api.exception.AccessorError):
        return error
    if isinstance(error, be.NoCredentialsError | be.PartialCredentialsError):
        return AccessorConfigurationError(f"No AWS credentials for {where}: {credentials_hint}")
    if isinstance(error, be.ProfileNotFound):
        return AccessorConfigurationError(
            f"{error} for {where}; add it to the AWS config file or change the location's profile"
        )
    if isinstance(error, be.FlexibleChecksumError):
        return VerificationError(
            f"Cannot {operation} {resource_identifier!r} on {where}: the data received does "
            f"not match the checksum S3 holds for it ({error})",
            operation,
            resource_identifier,
        )
    if isinstance(error, be.ClientError):
        return _client_error(error, operation, resource_identifier, where, credentials_hint)
    if isinstance(error, CONNECTION_ERRORS):
        return TransientAccessorError(
            f"Cannot {operation} {resource_identifier!r} on {where}: {error}",
            operation,
            resource_identifier,
        )
    return OperationFailedError(
        f"Cannot {operation} {resource_identifier!r} on {where}: {error}",
        operation,
        resource_identifier,
    )


def _client_error(
    error: be.ClientError,
    operation: str,
    resource_identifier: str,
    where: str,
    credentials_hint: str,
) -> Exception:
    code = error_code(error)
    details: dict[str, Any] = error.response.get("Error", {})
    metadata: dict[str, Any] = error.response.get("ResponseMetadata", {})
    status = int(metadata.get("HTTPStatusCode") or 0)
    reason = details.get("Message") or code
    message = f"Cannot {operation} {resource_identifier!r} on {where}: {code} ({reason})"
    args = (operation, resource_identifier)
    if code == "NoSuchBucket":
        return AccessorConfigurationError(
            f"The bucket of {where} does not exist; create it or fix the location's bucket"
        )
    if code == "NoSuchUpload":
        return ResourceNotFoundError(
            f"No write of {resource_identifier!r} with this token in progress on {where} "
            "(aborted or completed already); begin the write again",
            *args,
        )
    if code in NOT_FOUND:
        return ResourceNotFoundError(message, *args)
    if code in BAD_CREDENTIALS:
        return AccessorConfigurationError(
            f"{where} refused the AWS credentials ({code}): {credentials_hint}"
        )
    if code in DENIED:
        return PermissionDeniedError(message, *args)
    if code in DIGEST:
        return VerificationError(
            f"{message}: the data that arrived does not match its SHA-256", *args
        )
    if code in INVALID:
        return ResourceInvalidError(message, *args)
    if code in TRANSIENT or status >= 500 or status == 429:
        attempts = int(metadata.get("RetryAttempts") or 0) + 1
        return TransientAccessorError(f"{message} (gave up after {attempts} attempts)", *args)
    return OperationFailedError(message, *args)
