"""Errors a user sees: one line that names the problem and the fix.

Anything raised as :class:`UserError` (or a subclass) is printed by the CLI without a
traceback, sent back to the ftrack action form, or written into the ftrack Job, as is.
Messages never contain secrets.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; ``str()`` is the whole message."""

    exit_code = 2


class ConfigError(UserError):
    """The sites config is invalid. Raised before anything touches ftrack or storage."""


class SelectionError(UserError):
    """The selection, locations or components of a send cannot be used."""


class NotAllowedError(UserError):
    """The user may not do this (send from/to a location, publish into a task)."""


class JobError(UserError):
    """A transfer job cannot be found, resumed, retried or cancelled as asked."""


def first_line(error: BaseException) -> str:
    """The first line of *error*'s message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
