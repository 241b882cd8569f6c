"""Sizes, durations and rates as people write them in a config file.

``"8MiB"``, ``"512 KB"``, ``"30s"``, ``"1h30m"``, ``"50MB/s"``. Decimal units (KB, MB,
GB) are powers of 1000 and binary units (KiB, MiB, GiB) powers of 1024, as on every
storage vendor's data sheet; a bare number is bytes or seconds. Each parser raises
``ValueError`` with a message that shows an accepted form.
"""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Return a size in bytes from an int or a string such as ``"8MiB"``."""
    if isinstance(value, bool):
        raise ValueError(f'bad size {value!r}; use a number with a unit such as "8MiB"')
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"bad size {value!r}; sizes cannot be negative")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match and match.group(2).lower() in _SIZE_UNITS:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise ValueError(f'bad size {value!r}; use a number with a unit such as "8MiB" or "512KB"')


def parse_duration(value: object) -> float:
    """Return seconds from a number or a string such as ``"30s"``, ``"5m"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise ValueError(f'bad duration {value!r}; use a number with a unit such as "30s"')
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"bad duration {value!r}; durations cannot be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts).lower() == text.lower():
            return sum(float(n) * _DURATION_UNITS[u.lower()] for n, u in parts)
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
    raise ValueError(
        f'bad duration {value!r}; use a number with a unit such as "30s", "15m" or "1h30m"'
    )


def parse_rate(value: object) -> int | None:
    """Return bytes per second from ``"50MB/s"`` (``/s`` optional); 0 or ``"off"`` is no cap."""
    if value in (None, 0, "0", "off", "none", "unlimited"):
        return None
    text = value
    if isinstance(value, str):
        text = re.sub(r"\s*/\s*s(ec)?$", "", value.strip(), flags=re.IGNORECASE)
    try:
        rate = parse_size(text)
    except ValueError:
        raise ValueError(
            f'bad bandwidth {value!r}; use a rate such as "50MB/s", or "off"'
        ) from None
    return rate or None


def format_size(size: float) -> str:
    """``1536 -> "1.5 KiB"``: sizes for people, binary units."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value = float(size)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_rate(bytes_per_second: float) -> str:
    """Throughput in MB/s (decimal, as transfer tools and ftrack Jobs show it)."""
    return f"{bytes_per_second / 1e6:.1f} MB/s"


def format_duration(seconds: float | None) -> str:
    """``3725 -> "1:02:05"``; ``None`` (unknown) -> ``"--:--"``."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--:--"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def counted(number: int, noun: str) -> str:
    """``"1 file"``, ``"2 files"``: a count as a sentence says it (regular plurals only)."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
