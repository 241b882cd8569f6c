"""``ftrack-transfer demo`` from a bare environment: no servers, no config."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import _ISOLATE


def _bare_environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in _ISOLATE and not k.startswith(("FTRACK_", "ACCSYN_", "AWS_"))
    }


def test_the_demo_runs_the_whole_mission_and_verifies_it(tmp_path) -> None:
    env = _bare_environment()
    result = subprocess.run(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", "demo", "--fast", "--dir", str(tmp_path / "studio")],
        env={**env, "COLUMNS": "80"}, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
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
    # The Job's whole description, as ftrack holds it, wrapped in its panel and not cut
    # to the 80 columns of a log.
    panel = output.split("ftrack Job of alice: done", 1)[1].split("╰", 1)[0]
    description = " ".join(line.strip("│ ") for line in panel.splitlines()[1:])
    assert re.fullmatch(
        r"accsyn Send: sent 4 components \(\d+ files, [\d.]+ MiB\) from hq to each of la, "
        r"vera@vfxvendor\.example in \d\d:\d\d \([\d.]+ MB/s\)",
        description.strip(),
    ), panel
    assert "second run: nothing to do: " in output
    assert "every copy matches its source" in output
    assert "Everything arrived and verified" in output
    assert "demo failed" not in output
    assert "…" not in output  # nothing cut to fit a log's 80 columns


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of the processes whose command line or environment holds *text*."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if text.encode() in command + environment:
            found.append(command.replace(b"\0", b" ").decode(errors="replace"))
    return found


def test_a_demo_stopped_with_sigterm_leaves_no_server_running(tmp_path) -> None:
    studio = tmp_path / "studio"
    demo = subprocess.Popen(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", "demo", "--fast", "--dir", str(studio)],
        env={**_bare_environment(), "COLUMNS": "160"}, stdout=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert demo.stdout is not None
    seen = []
    for line in demo.stdout:  # until every server of the studio is up and serve has started
        seen.append(line)
        if "serve is listening" in line:
            break
    assert "serve is listening" in "".join(seen), "".join(seen)[-3000:]
    assert _processes_mentioning(str(studio)), "the sandbox's sshd runs while the demo does"
    demo.send_signal(signal.SIGTERM)
    demo.stdout.read()
    assert demo.wait(timeout=60) == 128 + signal.SIGTERM
    assert _processes_mentioning(str(studio)) == []
