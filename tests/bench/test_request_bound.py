"""The benchmark's check of "ftrack requests bounded by a constant plus one per 500
components", on request counts as the sandbox server reports them."""

from __future__ import annotations

from typing import Any

from ftrack_transfer.transfer.registrar import PACED_COMMITS

from bench.ftrackload import bound_check


def _row(components: int, queries: int, registrations: int, job_updates: int) -> dict[str, Any]:
    counts = {
        "queries": queries,
        "registrations": registrations,
        "job_updates": job_updates,
        "other_writes": 0,
    }
    return {"components": components, "send": {"requests": sum(counts.values()), **counts}}


def test_availability_commits_paced_while_a_slow_send_lands_are_set_aside() -> None:
    rows = [_row(1, 11, 1, 4), _row(1000, 11, 4, 7), _row(10_000, 20, 10, 41)]
    check = bound_check(rows, "send")
    assert check["within"], check
    assert check["paced_registrations"] == 3
    assert check["excess"] <= 0


def test_queries_growing_with_components_are_over_the_bound() -> None:
    rows = [_row(1, 11, 1, 4), _row(1000, 30, 1, 4)]
    check = bound_check(rows, "send")
    assert not check["within"]
    # 31 requests that are not paced, against a constant of 11 plus 2 per 1,000.
    assert check["excess"] == 31 - 11 - 2


def test_paced_commits_beyond_the_registrars_cap_are_over_the_bound() -> None:
    rows = [_row(1, 11, 1, 4), _row(1000, 11, PACED_COMMITS + 2, 40)]
    check = bound_check(rows, "send")
    assert check["paced_registrations"] == PACED_COMMITS + 1
    assert not check["within"]
