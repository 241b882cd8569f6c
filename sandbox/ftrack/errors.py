"""Errors the sandbox server reports, in ftrack's error shape.

The client turns every error object into ``ServerError("Server reported error:
<exception>(<content>)")``, so ``exception`` names the kind of problem and ``content``
must be a complete sentence naming the offending type, attribute, value or user.
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """Base of every error returned to a client as ``{"exception", "content"}``."""

    exception = "ServerError"
    #: HTTP status used when the client asked for ``ftrack-strict-api: true``.
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def payload(self) -> dict[str, Any]:
        return {"exception": self.exception, "content": self.message, "error_code": None}


class ParseError(SandboxError):
    exception = "ParseError"


class UnknownEntityTypeError(SandboxError):
    exception = "UnknownEntityTypeError"


class UnknownAttributeError(SandboxError):
    exception = "UnknownAttributeError"


class ValidationError(SandboxError):
    exception = "ValidationError"


class ImmutableAttributeError(ValidationError):
    exception = "ImmutableAttributeError"


class IntegrityError(SandboxError):
    exception = "IntegrityError"
    status = 409


class NotFoundError(SandboxError):
    exception = "NotFoundError"
    status = 404


class InvalidCredentialsError(SandboxError):
    exception = "InvalidCredentialsError"
    status = 401


class UnsupportedActionError(SandboxError):
    exception = "UnsupportedActionError"


class MalformedRequestError(SandboxError):
    exception = "MalformedRequestError"
