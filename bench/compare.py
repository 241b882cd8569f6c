"""Comparisons: the same work done by ours and by reference tools, alternately.

A comparison runs every side once per round, in the same order each round (ours, then
each reference: A B A B), so slow drifts of a shared machine hit all sides alike. Each
side's run prepares its own destination, is measured in its own process, checks that
the destination received every byte (a tool that silently skipped files would look
fast), and cleans up.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Callable
from typing import Any

from .measure import Sample

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Side:
    label: str
    #: ``ours`` or ``reference``.
    role: str
    #: Runs one round (its argument is the round number) and returns the measurement.
    run: Callable[[int], Sample]
    #: What the side is, for the results page (tool, settings).
    detail: str = ""
    #: Whether the comparison's target is measured against this reference (a reference
    #: shown for context only is not a target).
    targeted: bool = True


@dataclasses.dataclass
class Comparison:
    id: str
    group: str
    title: str
    bytes: int
    files: int
    sides: list[Side]
    #: The target ratio ours/reference, reported (never asserted); None: no target.
    target: float | None = 1.0
    note: str = ""
    #: Called once every round has run (or one failed): stops what the case started.
    cleanup: Callable[[], None] | None = None


def run_comparison(comparison: Comparison, repeat: int) -> dict[str, Any]:
    """Run *comparison* for *repeat* rounds; return its JSON-able result."""
    try:
        return _run_rounds(comparison, repeat)
    finally:
        if comparison.cleanup is not None:
            comparison.cleanup()


def _run_rounds(comparison: Comparison, repeat: int) -> dict[str, Any]:
    samples: dict[str, list[Sample]] = {side.label: [] for side in comparison.sides}
    for round_number in range(repeat):
        for side in comparison.sides:
            log.info("%s: %s, round %d/%d", comparison.id, side.label, round_number + 1, repeat)
            sample = side.run(round_number)
            samples[side.label].append(sample)
            log.info(
                "%s: %s %.2f s, %.1f MiB/s, peak RSS %.0f MiB, CPU %.1f s",
                comparison.id,
                side.label,
                sample.seconds,
                comparison.bytes / sample.seconds / 2**20,
                sample.rss / 2**20,
                sample.cpu,
            )
    return {
        "id": comparison.id,
        "group": comparison.group,
        "title": comparison.title,
        "bytes": comparison.bytes,
        "files": comparison.files,
        "target": comparison.target,
        "note": comparison.note,
        "sides": [
            {
                "label": side.label,
                "role": side.role,
                "detail": side.detail,
                "targeted": side.targeted,
                "runs": [_sample_json(s) for s in samples[side.label]],
            }
            for side in comparison.sides
        ],
    }


def _sample_json(sample: Sample) -> dict[str, Any]:
    extra = {k: v for k, v in sample.result.items() if k not in ("bench", "seconds")}
    return {
        "seconds": sample.seconds,
        "wall": sample.wall,
        "cpu": sample.cpu,
        "rss": sample.rss,
        **({"extra": extra} if extra else {}),
    }


# --------------------------------------------------------------------------- statistics


def throughputs(result: dict[str, Any], label: str) -> list[float]:
    """MiB/s of each run of side *label*."""
    side = next(s for s in result["sides"] if s["label"] == label)
    return [result["bytes"] / run["seconds"] / 2**20 for run in side["runs"]]


def ratio(result: dict[str, Any], ours: str, reference: str) -> tuple[float, float, float]:
    """ours/reference: ratio of the median throughputs, and the min and max of the
    per-round ratios (each round's runs are neighbours in time)."""
    a, b = throughputs(result, ours), throughputs(result, reference)
    per_round = [x / y for x, y in zip(a, b, strict=False) if y > 0]
    middle = statistics.median(a) / statistics.median(b)
    return middle, min(per_round, default=middle), max(per_round, default=middle)


def verdict(value: float, noise: float = 0.05) -> str:
    if abs(value - 1.0) <= noise:
        return "level (within 5 %)"
    if value > 1.0:
        return f"ahead by {(value - 1) * 100:.0f} %" if value < 2 else f"ahead {value:.1f}x"
    return f"behind by {(1 - value) * 100:.0f} %"
