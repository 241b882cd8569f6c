"""Pieces of the chunked-write protocol shared by the file-system-like accessors.

Disk and SFTP write chunks into a hidden temporary file beside the final one and rename
it when the write is committed. The temporary name is derived from the final name and
the write token alone, so a restarted process holding only the journalled token finds
the same file again.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

from .base import WrittenChunk
from .errors import ResourceInvalidError, VerificationError

_TOKEN = re.compile(r"^[0-9a-f]{16}$")
#: Names of temporary files written by an unfinished chunked write.
TEMPORARY_NAME = re.compile(r"^\..*\.[0-9a-f]{16}\.part$", re.DOTALL)
# Keeps the temporary name under NAME_MAX (255) even for long final names; the token,
# not the name, makes it unique.
_NAME_PART = 120


def new_token() -> str:
    """A fresh write token: 64 random bits, hex."""
    return secrets.token_hex(8)


def check_token(token: str, resource_identifier: str) -> str:
    """Return *token* if it has the shape :func:`new_token` makes, else raise.

    The token becomes part of a file name, so a forged one must not carry a path.
    """
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise ResourceInvalidError(
            f"Write token {token!r} for {resource_identifier!r} is not one this accessor "
            "issued; start the write again with begin_write",
            "write_chunk",
            resource_identifier,
        )
    return token


def temporary_name(final_name: str, token: str) -> str:
    """Hidden name of the temporary file of a write of *final_name* (a base name)."""
    return f".{final_name[:_NAME_PART]}.{token}.part"


def stale_temporaries(entries: Sequence[str], final_name: str, keep: str | None) -> list[str]:
    """The entries of a directory that are temporaries of *final_name*, other than
    the temporary of token *keep*."""
    prefix = f".{final_name[:_NAME_PART]}."
    kept = temporary_name(final_name, keep) if keep else None
    return [
        entry
        for entry in entries
        if entry.startswith(prefix)
        and _TOKEN.match(entry[len(prefix) : -len(".part")])
        and entry.endswith(".part")
        and entry != kept
    ]


def is_temporary(name: str) -> bool:
    """Whether a directory entry is the temporary file of an unfinished write."""
    return bool(TEMPORARY_NAME.match(name))


def check_coverage(
    resource_identifier: str, size: int, chunks: Sequence[WrittenChunk], where: str
) -> list[WrittenChunk]:
    """Return *chunks* sorted by offset, or raise if they do not tile ``[0, size)``.

    A missing chunk would leave a hole of zeros that a size check cannot see.
    """
    ordered = sorted(chunks, key=lambda c: c.offset)
    position = 0
    for chunk in ordered:
        if chunk.offset != position:
            break
        position += chunk.length
    else:
        if position == size:
            return ordered
    raise VerificationError(
        f"Cannot commit {resource_identifier!r} on {where}: the written chunks do not cover "
        f"bytes 0-{size} exactly (gap or overlap at byte {position})",
        "commit_write",
        resource_identifier,
    )
