"""The benchmark harness works end to end: ``python -m bench --quick`` writes the results
page, its data and its plots, with every case present and every figure readable.

Only the harness is checked here; no timing is asserted (figures of the quick profile
are dominated by start-up costs anyway).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ftrack_transfer.sandbox.sftp import find_sshd

REPOSITORY = Path(__file__).resolve().parents[2]

missing = [
    name
    for name, present in (
        ("matplotlib (the bench extra)", importlib.util.find_spec("matplotlib") is not None),
        ("rclone", shutil.which("rclone") is not None),
        ("OpenSSH sshd", find_sshd() is not None),
        ("OpenSSH sftp", shutil.which("sftp") is not None),
    )
    if not present
]


@pytest.fixture(scope="module", autouse=True)
def prerequisites() -> None:
    # scripts/test installs all of these; a machine without them fails here, it does not skip.
    if missing:
        pytest.fail(
            f"benchmark prerequisites missing: {', '.join(missing)}; run scripts/test, which installs them"
        )


NUMBER = r"[0-9][0-9,]*(?:\.[0-9]+)?"


def _number(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, f"the quick benchmark failed:\n{done.stderr[-4000:]}"
    return out


def test_results_page_has_every_comparison_with_numbers(quick_run: Path) -> None:
    from bench.cli import COMPARISONS

    page = (quick_run / "RESULTS.md").read_text()
    for case in COMPARISONS:
        # Ratio rows carry the case's title after its id; memory rows a cell separator.
        rows = [
            line
            for line in page.splitlines()
            if line.startswith(f"| `{case}` ") and not line.startswith(f"| `{case}` |")
        ]
        assert rows, f"{case} is missing from RESULTS.md"
        for row in rows:
            ratio = re.search(rf"\*\*({NUMBER})x\*\* \(({NUMBER})-({NUMBER})\)", row)
            assert ratio, f"no ratio in {row!r}"
            low, middle, high = (_number(ratio.group(i)) for i in (2, 1, 3))
            assert 0 < low <= high and middle > 0


def test_results_page_has_the_other_sections(quick_run: Path) -> None:
    page = (quick_run / "RESULTS.md").read_text()
    for heading in (
        "## Targets",
        "## Memory and CPU per side",
        "## ftrack requests per send and per sync",
        "## Scaling with the number of files",
        "## Resume after SIGKILL",
        "## Machine",
        "## Versions",
        "## S3 server",
    ):
        assert heading in page, f"{heading} is missing"
    resume = [line for line in page.splitlines() if re.match(r"\| (sftp|s3) \| ", line)]
    assert {line.split("|")[1].strip() for line in resume} == {"sftp", "s3"}
    for line in resume:
        assert re.search(rf"\*\*{NUMBER} %\*\*", line), line
        assert "equal to the source" in line, line
    requests = [line for line in page.splitlines() if re.match(rf"\| {NUMBER} \| \*\*", line)]
    assert len(requests) >= 2, "the ftrack request table has no rows"
    for name in ("Python", "paramiko", "boto3", "OpenSSH", "rclone", "S3 server"):
        assert re.search(rf"\| {name}[^|]* \| [^|]*\S[^|]* \|", page), f"no version of {name}"


def test_results_data_and_plots_are_written(quick_run: Path) -> None:
    from bench.cli import CASES, COMPARISONS

    results = json.loads((quick_run / "results" / "results.json").read_text())
    assert results["failures"] == []
    assert set(results["cases"]) == set(CASES)
    assert {c["id"] for c in results["comparisons"]} == set(COMPARISONS)
    for comparison in results["comparisons"]:
        for side in comparison["sides"]:
            assert side["runs"], f"{comparison['id']} {side['label']} has no run"
            for run in side["runs"]:
                assert run["seconds"] > 0 and run["cpu"] >= 0 and run["rss"] >= 0
    assert {r["kind"] for r in results["resume"]} == {"sftp", "s3"}
    assert len(results["ftrack"]) >= 2
    for name in ("throughput.png", "ratios.png", "scaling.png", "requests.png"):
        plot = quick_run / "results" / name
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG"
