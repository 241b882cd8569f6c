"""Concurrency and load: many sends at once over the same sites, and one very large send.

Figures (peak memory, ftrack requests) are recorded for docs/reliability.md; the
assertions are bounds, not timings.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading

import pytest
from ftrack_transfer.transfer.journal import Journal
from ftrack_transfer.transfer.selection import PAGE_SIZE
from ftrack_transfer.transfer.units import counted

from tests.fixtures.studio import StudioCase

from .conftest import FULL, Auditor, Ledger, Recorder
from .helpers import queue, run

MiB = 1024**2
#: Peak resident memory allowed to the process sending the large send.
MEMORY_CEILING = 512 * MiB
#: The CLI, reporting its own peak resident set (VmHWM) as it exits. ru_maxrss of a child
#: would not do: Linux carries the parent's high-water mark across fork and exec.
PEAK_RSS = """
import atexit, sys
def report():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write(f"peak-rss-kib {line.split()[1]}\\n")
atexit.register(report)
from ftrack_transfer.transfer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_twenty_parallel_sends_with_overlapping_components(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    versions = [
        ledger.publish(files={"main": 300_000 + i}, sequences={"plate": (4, 4000 + i)})
        for i in range(6)
    ]
    # Each send takes three of the six versions, to la, to the cloud or to both: every
    # component is in several sends that run at the same time.
    targets = (["la"], ["cloud"], ["la", "cloud"])
    jobs: list[tuple[Journal, str, list[str]]] = []
    for index in range(20):
        picked = [versions[(index + k) % 6].version_id for k in (0, 1, 3)]
        destinations = targets[index % 3]
        journal, job_id = queue(studio, "hq", destinations, picked, title=f"parallel {index}")
        jobs.append((journal, job_id, destinations))
    results: dict[str, str] = {}
    barrier = threading.Barrier(len(jobs))

    def send(journal: Journal, job_id: str) -> None:
        barrier.wait()
        results[job_id] = run(studio, journal, job_id)

    threads = [threading.Thread(target=send, args=(j, i)) for j, i, _ in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    messages = {job_id: journal.job(job_id).message for journal, job_id, _ in jobs}
    assert sorted(results.values()) == ["done"] * 20, messages

    ids = [c for v in versions for c in v.components.values()]
    for role in ("la", "cloud"):
        assert studio.availability(ids, role) == [100.0] * len(ids), role
    # One ComponentLocation per component and destination, members included.
    everything = [m for c in ids for m in ledger.containers.get(c, [])] + ids
    for role in ("la", "cloud"):
        location = studio.server.query(
            f'select id from Location where name is "{studio.names[role]}"'
        )[0]["id"]
        rows = studio.server.query(
            f'select component_id from ComponentLocation where location_id is "{location}"'
        )
        assert sorted(r["component_id"] for r in rows) == sorted(everything), role
    # The journal agrees with itself and with ftrack: each job's files all landed and
    # each of its components is registered (by it, or found registered by another).
    journal = studio.journal()
    for _, job_id, _ in jobs:
        progress = journal.progress(job_id)
        assert progress.files_done == progress.files_total
        assert progress.files_failed == 0
        assert progress.components_registered == progress.components_total
        assert progress.bytes_done == progress.bytes_total
        assert all(row.status == "done" for row in journal.files(job_id))
    planned = sum(journal.progress(job_id).files_total for _, job_id, _ in jobs)
    recorder.figure(
        "20 parallel sends",
        f"6 versions ({len(everything)} components) in 20 overlapping sends to 2 sites: "
        f"{planned} file copies planned, 1 ComponentLocation per component and site",
    )
    audit(ledger)


def large_send(
    studio: StudioCase, ledger: Ledger, files: int
) -> tuple[subprocess.CompletedProcess[str], int, dict[str, int]]:
    """Send *files* frames hq -> la with the CLI in a process of its own; return its
    result, its peak RSS in bytes and the ftrack requests it made, by kind."""
    version_id = ledger.bulk(files)
    studio.server.reset_stats()
    process = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "send", "--from", studio.names["hq"], "--to",
         studio.names["la"], version_id, "--wait"],
        env={**os.environ, **studio.env}, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    peak = int(process.stderr.rsplit("peak-rss-kib ", 1)[1].split()[0]) * 1024
    log = studio.server.request_log
    kinds = {
        "requests": len(log),
        "queries": sum(1 for batch in log if all(op.get("action") == "query" for op in batch)),
        "registration commits": sum(
            1 for batch in log
            if any(op.get("entity_type") == "ComponentLocation" and op.get("action") == "create" for op in batch)
        ),
        "Job updates": sum(
            1 for batch in log if any(op.get("entity_type") == "Job" for op in batch)
        ),
    }  # fmt: skip
    return process, peak, kinds


@pytest.mark.timeout(1200)
def test_a_very_large_send_has_bounded_memory_and_ftrack_requests(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    # Progress updates of the ftrack Job are time-driven (one per interval, whatever the
    # size); an interval longer than the send leaves only the per-component requests to
    # count.
    studio.edit_config(
        lambda text: text.replace('job_update_interval = "200ms"', 'job_update_interval = "1h"'),
    )
    sizes = (2_000, 10_000) if FULL else (500, 2_000)
    measured = {}
    for files in sizes:
        result, peak, kinds = large_send(studio, ledger, files)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"done: sent {counted(files // 500, 'component')} ({files} files" in result.stderr
        assert peak > 0
        sequences = math.ceil(files / 500)
        components = files + sequences
        assert peak < MEMORY_CEILING, f"{files} files: peak RSS {peak / MiB:.0f} MiB"
        # A constant, plus per 1,000 components one query page and one registration
        # commit, plus one commit per completed sequence.
        pages = math.ceil(components / PAGE_SIZE)
        assert kinds["registration commits"] <= pages + sequences + 2, kinds
        assert kinds["queries"] <= 15 + pages, kinds
        assert kinds["requests"] <= 30 + 2 * pages + sequences, kinds
        measured[files] = (peak, kinds, components)
    (small, (peak_small, kinds_small, n_small)), (large, (peak_large, kinds_large, n_large)) = (
        measured.items()
    )
    per_500 = (kinds_large["requests"] - kinds_small["requests"]) / ((n_large - n_small) / 500)
    recorder.figure(
        f"{large:,}-file send",
        f"peak RSS {peak_large / MiB:.0f} MiB ({peak_small / MiB:.0f} MiB for {small:,} files); "
        f"{kinds_large['requests']} ftrack requests ({kinds_large['queries']} queries, "
        f"{kinds_large['registration commits']} registration commits, "
        f"{kinds_large['Job updates']} Job writes); {per_500:.1f} more requests per 500 components",
    )
    audit(ledger)
