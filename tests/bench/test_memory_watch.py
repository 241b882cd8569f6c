"""The benchmark's peak memory of a side: its process and every process it started."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.measure import run

MiB = 1024 * 1024

# Holds 160 MiB, then starts a child the way subprocess does (fork, then exec) but stays
# between the two for a while, so the watch sees the child carrying the parent's memory.
SIDE = """
import json, os, sys, time
held = bytearray(160 * 1024 * 1024)
for at in range(0, len(held), 4096):
    held[at] = 1
child = os.fork()
if child == 0:
    time.sleep(0.5)
    os.execv(sys.argv[1], [sys.argv[1], "0.5"])
os.waitpid(child, 0)
with open("/proc/self/status") as status:
    mark = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"bench": 1, "own_peak": mark * 1024}))
"""


def test_a_child_between_fork_and_exec_is_not_counted_as_a_copy_of_its_parent(
    tmp_path: Path,
) -> None:
    script = tmp_path / "side.py"
    script.write_text(SIDE)
    sample = run(
        [sys.executable, str(script), "/bin/sleep"],
        env=os.environ,
        log=tmp_path / "side.log",
    )
    own = sample.result["own_peak"]
    assert own >= 160 * MiB
    # The side itself plus a few MiB for `sleep`, not twice the side.
    assert own <= sample.rss <= own + 16 * MiB, (own / MiB, sample.rss / MiB)
