"""What a send and a sync cost ftrack, and how time grows with the number of files.

For each component count a fresh project is published at hq (one version holding one
file component per small file), then, each as the real command line in its own
process:

1. ``ftrack-transfer send --from hq --to la <version> --wait``;
2. ``ftrack-transfer sync --from hq --to cloud --project <project>`` (sends everything);
3. the same sync again (nothing left to send).

The sandbox server counts every ``/api`` request; the request log tells queries,
registrations and the ftrack Job's progress updates apart. Those updates are paced by
time (``job_update_interval``), not by components, and so are the availability commits
made while data lands beyond one per 1,000 components (about ten per job at most), so
the bound "a constant plus one request per 500 components" is checked on the other
requests and the paced ones are shown beside it. Planning and transfer times come from
the journal (submitted -> started -> finished).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ftrack_transfer.transfer.registrar import BATCH_SIZE, PACED_COMMITS

from . import data
from .catalog import FileEntry
from .context import Context
from .measure import Sample

log = logging.getLogger(__name__)

PER_REQUEST = 500


def classify(batches: list[list[Any]]) -> dict[str, int]:
    """Count request batches by what they do."""
    counts = {"queries": 0, "registrations": 0, "job_updates": 0, "other_writes": 0}
    for batch in batches:
        ops = [op for op in batch if isinstance(op, dict)]
        actions = {op.get("action") for op in ops}
        types = {op.get("entity_type") for op in ops}
        if actions <= {"query", "query_server_information", "query_schemas"}:
            counts["queries"] += 1
        elif "ComponentLocation" in types:
            counts["registrations"] += 1
        elif types <= {"Job", "JobComponent"}:
            counts["job_updates"] += 1
        else:
            counts["other_writes"] += 1
    return counts


def _job_times(ctx: Context) -> dict[str, Any]:
    job = ctx.journal_info(ctx.lab.journal)
    times: dict[str, Any] = {"status": job["status"]}
    if job["started"] and job["finished"]:
        times.update(
            plan_seconds=job["started"] - job["created"],
            transfer_seconds=job["finished"] - job["started"],
        )
    return times


def _cli(ctx: Context, name: str, argv: list[str]) -> tuple[Sample, dict[str, Any]]:
    server = ctx.lab.ftrack
    server.reset_stats()
    sample = ctx.python_side(name, {"operation": "ours-cli", "argv": argv})
    stats = server.stats
    kinds = classify(server.request_log)
    return sample, {"requests": stats.requests, **kinds}


def run(ctx: Context, counts: list[int]) -> list[dict[str, Any]]:
    """One send, one sync and one no-op sync per count; JSON-able rows."""
    lab = ctx.lab
    lab.start_ftrack()
    assert lab.s3 is not None
    small = ctx.small()
    rows = []
    for count in counts:
        if count > len(small.names):
            raise ValueError(f"{count} components need {count} files; the small set has fewer")
        names = small.names[:count]
        entries = [FileEntry(n.rsplit(".", 1)[0], small.relative(n), small.size) for n in names]
        row: dict[str, Any] = {"components": count, "bytes": count * small.size}

        published = lab.catalog.publish_files("send", entries)
        lab.clean_la()
        ctx.flush_disk()
        argv = ["send", "--from", "hq", "--to", "la", published.version_id, "--wait"]
        sample, requests = _cli(ctx, f"ftrack/send-{count}", argv)
        received = data.tree_bytes(lab.la_root)
        if received != (count, count * small.size):
            raise RuntimeError(f"send of {count} components: la holds {received}")
        row["send"] = {"seconds": sample.seconds, "rss": sample.rss, "cpu": sample.cpu,
                       **requests, **_job_times(ctx)}  # fmt: skip
        lab.clean_la()

        synced = lab.catalog.publish_files("sync", entries)
        lab.s3.delete_prefix("cloud/")
        argv = ["sync", "--from", "hq", "--to", "cloud", "--project", synced.project]
        sample, requests = _cli(ctx, f"ftrack/sync-{count}", argv)
        row["sync"] = {"seconds": sample.seconds, "rss": sample.rss, "cpu": sample.cpu,
                       **requests, **_job_times(ctx)}  # fmt: skip
        sample, requests = _cli(ctx, f"ftrack/sync-again-{count}", argv)
        row["sync_again"] = {"seconds": sample.seconds, **requests}
        lab.s3.delete_prefix("cloud/")
        rows.append(row)
        log.info(
            "ftrack: %d components: send %d requests (%.1f s), sync %d, sync again %d",
            count,
            row["send"]["requests"],
            row["send"]["seconds"],
            row["sync"]["requests"],
            row["sync_again"]["requests"],
        )
    return rows


def paced_registrations(row: dict[str, Any], kind: str) -> int:
    """Availability commits of *row*'s *kind* beyond one per ``BATCH_SIZE`` components:
    those the registrar made while data was landing, paced by time."""
    by_count = math.ceil(row["components"] / BATCH_SIZE)
    return max(0, row[kind]["registrations"] - by_count)


def bound_check(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """Whether requests grow by at most one per 500 components.

    Requests paced by time are set aside, as their number follows how long the
    transfer takes, not how many components it has: the Job's progress updates, and
    the availability commits made while data lands (the registrar keeps those to about
    ``PACED_COMMITS`` per job, which is checked here too). The constant is taken from
    the smallest count.
    """
    if not rows:
        return {}

    def steady(row: dict[str, Any]) -> int:
        return row[kind]["requests"] - row[kind]["job_updates"] - paced_registrations(row, kind)

    first = rows[0]
    constant = steady(first) - math.ceil(first["components"] / PER_REQUEST)
    worst = max(steady(r) - constant - math.ceil(r["components"] / PER_REQUEST) for r in rows)
    paced = max(paced_registrations(r, kind) for r in rows)
    last = rows[-1]
    span = last["components"] - first["components"]
    slope = (steady(last) - steady(first)) / span * PER_REQUEST if span else 0.0
    return {
        "constant": constant,
        "per_500": slope,
        "excess": worst,
        "paced_registrations": paced,
        "within": worst <= 0 and paced <= PACED_COMMITS,
    }
