"""Resource identifiers that cannot escape a location's root.

Every accessor turns a resource identifier into a storage path through
:func:`safe_relative`, so ``..``, absolute paths, drive letters and NUL bytes are refused
the same way everywhere, with one message that names the identifier and the fix. A string
``startswith`` check (ftrack's own DiskAccessor) lets ``/mnt/proj2`` pass for
``/mnt/proj``; here containment is decided on path components.
"""

from __future__ import annotations

import re

from .errors import UnsafeResourceIdentifierError

_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_relative(resource_identifier: str) -> str:
    """Return *resource_identifier* normalised to ``a/b/c`` form, or raise.

    The empty string (and ``"."``) is the root itself. Backslashes are refused rather
    than converted: on a POSIX storage ``a\\b`` is a legal file name, and guessing would
    write somewhere the user did not ask for.
    """
    ri = resource_identifier
    if not isinstance(ri, str):
        raise UnsafeResourceIdentifierError(repr(ri), "is not a string")
    if "\x00" in ri:
        raise UnsafeResourceIdentifierError(ri, "contains a NUL byte")
    if "\\" in ri:
        raise UnsafeResourceIdentifierError(ri, "contains a backslash")
    if ri.startswith("/") or _DRIVE.match(ri):
        raise UnsafeResourceIdentifierError(ri, "is absolute")
    parts = []
    for part in ri.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeResourceIdentifierError(ri, "escapes the location root with '..'")
        parts.append(part)
    return "/".join(parts)


def join(root: str, resource_identifier: str, sep: str = "/") -> str:
    """Join a root and a checked identifier with *sep* (``/`` for SFTP and S3 keys)."""
    rel = safe_relative(resource_identifier)
    if not rel:
        return root
    if not root:
        return rel
    return root.rstrip(sep) + sep + rel.replace("/", sep)


def parent(resource_identifier: str) -> str:
    """Identifier of the parent container (``""`` for the root's direct children)."""
    rel = safe_relative(resource_identifier)
    return rel.rsplit("/", 1)[0] if "/" in rel else ""
