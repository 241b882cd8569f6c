"""``ftrack-transfer demo`` from a bare environment: no servers, no config."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import _ISOLATE


def test_the_demo_runs_the_whole_mission_and_verifies_it(tmp_path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _ISOLATE and not k.startswith(("FTRACK_", "ACCSYN_", "AWS_"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", "demo", "--fast", "--dir", str(tmp_path / "studio")],
        env={**env, "COLUMNS": "160"}, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout
    assert result.returncode == 0, output[-3000:] + result.stderr[-3000:]
    for step in (
        "1. A studio on loopback",
        "2. ftrack-transfer serve",
        "3. A coordinator sends a shot",
        "4. The vendor publishes back",
        "5. The scheduled sync to the cloud",
        "6. What is where",
    ):
        assert step in output
    assert "Actions offered for the shot: accsyn Send" in output
    assert "ftrack Job of alice: done" in output
    assert "second run: nothing: nothing to do" in output
    assert "every copy matches its source" in output
    assert "Everything arrived and verified" in output
    assert "demo failed" not in output
