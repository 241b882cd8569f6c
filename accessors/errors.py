"""Accessor errors: ftrack's own exception classes, with messages that read well.

ftrack's ``Error.__str__`` formats its message with ``str.format`` and byte-encodes
string details, so a file name with braces breaks it and a path shows as ``b'...'``.
Every class here subclasses the matching ftrack class (``except
ftrack_api.exception.AccessorResourceNotFoundError`` keeps working) and carries a final,
one-line message that names the resource and, where there is one, the fix.
"""

from __future__ import annotations

import errno

import ftrack_api.exception as fe


def named(resource_identifier: str) -> str:
    """A resource as messages name it: quoted, or "the root" for the empty identifier."""
    return repr(resource_identifier) if resource_identifier else "the root"


class _PlainMessage:
    message: str

    def __str__(self) -> str:
        return self.message


def _init(self: fe.Error, message: str, operation: str, resource_identifier: str | None) -> None:
    fe.Error.__init__(self, message=message)
    self.details.update(operation=operation, resource_identifier=resource_identifier)


class ResourceNotFoundError(_PlainMessage, fe.AccessorResourceNotFoundError):
    def __init__(self, message: str, operation: str = "", resource_identifier: str | None = None):
        _init(self, message, operation, resource_identifier)


class ParentResourceNotFoundError(_PlainMessage, fe.AccessorParentResourceNotFoundError):
    def __init__(self, message: str, operation: str = "", resource_identifier: str | None = None):
        _init(self, message, operation, resource_identifier)


class ResourceInvalidError(_PlainMessage, fe.AccessorResourceInvalidError):
    def __init__(self, message: str, operation: str = "", resource_identifier: str | None = None):
        _init(self, message, operation, resource_identifier)


class ContainerNotEmptyError(_PlainMessage, fe.AccessorContainerNotEmptyError):
    def __init__(self, message: str, operation: str = "", resource_identifier: str | None = None):
        _init(self, message, operation, resource_identifier)


class PermissionDeniedError(_PlainMessage, fe.AccessorPermissionDeniedError):
    def __init__(self, message: str, operation: str = "", resource_identifier: str | None = None):
        _init(self, message, operation, resource_identifier)


class UnsupportedOperationError(_PlainMessage, fe.AccessorUnsupportedOperationError):
    def __init__(self, message: str, operation: str = "", resource_identifier: str | None = None):
        _init(self, message, operation, resource_identifier)


class OperationFailedError(_PlainMessage, fe.AccessorOperationFailedError):
    """A permanent failure (disk full, I/O error): the file fails with this message."""

    def __init__(self, message: str, operation: str = "", resource_identifier: str | None = None):
        _init(self, message, operation, resource_identifier)


class TransientAccessorError(OperationFailedError):
    """A failure worth retrying: a dropped connection, a throttled or 5xx reply.

    Accessors retry these themselves a few times (low-level retries); when they give up
    they raise this class so the engine can retry the chunk or file later with backoff.
    Anything else an accessor raises is permanent and fails the file with its message.
    """


class VerificationError(OperationFailedError):
    """Written data does not match what was read from the source.

    The final name is left untouched; the engine re-sends the file from scratch a
    bounded number of times and never registers unverified data.
    """


class AccessorConfigurationError(_PlainMessage, fe.AccessorError):
    """The accessor cannot work as configured: missing credentials, an unknown or changed
    SSH host key, an unreachable endpoint. The message names the fix; never a secret."""

    def __init__(self, message: str):
        fe.Error.__init__(self, message=message)


class UnsafeResourceIdentifierError(_PlainMessage, fe.AccessorResourceIdentifierError):
    """A resource identifier that would leave the location's root, or cannot be a path."""

    def __init__(self, resource_identifier: str, reason: str) -> None:
        self.reason = reason
        fe.Error.__init__(
            self,
            message=(
                f"Resource identifier {resource_identifier!r} {reason}; use a path relative "
                "to the location root, with '/' separators and no '..'."
            ),
        )
        self.details.update(resource_identifier=resource_identifier)


def from_os_error(
    error: OSError, operation: str, resource_identifier: str, where: str
) -> fe.AccessorError:
    """Map an ``OSError`` to the ftrack accessor exception a caller expects.

    *where* is a secret-free description of the storage (``disk /mnt/hq``,
    ``sftp user@host:22``) so the message says which location failed.
    """
    reason = error.strerror or str(error)
    message = f"Cannot {operation} {resource_identifier!r} on {where}: {reason}"
    code = error.errno
    if code == errno.ENOENT:
        return ResourceNotFoundError(message, operation, resource_identifier)
    if code in (errno.EPERM, errno.EACCES):
        return PermissionDeniedError(message, operation, resource_identifier)
    if code == errno.ENOTEMPTY:
        return ContainerNotEmptyError(message, operation, resource_identifier)
    if code in (errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.EEXIST):
        return ResourceInvalidError(message, operation, resource_identifier)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return OperationFailedError(
            f"{message} (free space or make the location writable, then retry the job)",
            operation,
            resource_identifier,
        )
    if code in (errno.ECONNRESET, errno.ETIMEDOUT, errno.EPIPE, errno.ECONNABORTED):
        return TransientAccessorError(message, operation, resource_identifier)
    return OperationFailedError(message, operation, resource_identifier)
