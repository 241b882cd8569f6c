"""File sequences: the ``name.%04d.exr`` identifiers ftrack structures give them.

ftrack's structures name a SequenceComponent with a printf-style frame expression
(``%04d``, or ``%d`` without padding); its members are the files whose frame part
matches. A sequence is not a file or a container of its own: an accessor answers
``is_sequence`` by looking for members in the parent container.
"""

from __future__ import annotations

import re

_EXPRESSION = re.compile(r"%(0(?P<padding>\d+))?d")


def member_pattern(name: str) -> re.Pattern[str] | None:
    """Regular expression matching member names of the sequence *name*, or ``None``.

    ``shot.%04d.exr`` matches ``shot.0001.exr`` (exactly four digits, as the padding
    says); ``shot.%d.exr`` matches any number of digits.
    """
    expressions = list(_EXPRESSION.finditer(name))
    if len(expressions) != 1:
        return None
    found = expressions[0]
    padding = found.group("padding")
    digits = rf"\d{{{int(padding)}}}" if padding else r"\d+"
    return re.compile(
        re.escape(name[: found.start()]) + f"(-?{digits})" + re.escape(name[found.end() :])
    )


def split(resource_identifier: str) -> tuple[str, re.Pattern[str]] | None:
    """``(container identifier, member pattern)`` of a sequence identifier, else ``None``."""
    container, _, name = resource_identifier.rpartition("/")
    pattern = member_pattern(name)
    return (container, pattern) if pattern else None
