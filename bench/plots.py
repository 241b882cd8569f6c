"""PNG plots of the results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .report import rows

OURS = "#1f77b4"
REFERENCE = "#ff7f0e"


def write(results: dict[str, Any], folder: Path) -> list[str]:
    """Write every plot the results allow; return their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    table = rows(results)
    if table:
        written.append(_throughput(table, folder / "throughput.png"))
        written.append(_ratios(table, folder / "ratios.png"))
    ftrack = results.get("ftrack", [])
    scaling = [r for r in ftrack if r["components"] in set(results.get("scaling_counts", []))]
    if len(scaling) >= 2:
        written.append(_scaling(scaling, folder / "scaling.png"))
    if len(ftrack) >= 2:
        written.append(_requests(ftrack, folder / "requests.png"))
    return written


def _labels(table: list[dict[str, Any]]) -> list[str]:
    return [f"{r['id']}\nvs {r['reference']}" for r in table]


def _throughput(table: list[dict[str, Any]], path: Path) -> str:
    height = max(4.0, 0.55 * len(table) + 1.5)
    figure, axes = plt.subplots(figsize=(10, height))
    positions = range(len(table))
    ours = [r["ours_mibs"] for r in table]
    reference = [r["ref_mibs"] for r in table]
    ours_err = [[r["ours_mibs"] - r["ours_range"][0] for r in table],
                [r["ours_range"][1] - r["ours_mibs"] for r in table]]  # fmt: skip
    ref_err = [[r["ref_mibs"] - r["ref_range"][0] for r in table],
               [r["ref_range"][1] - r["ref_mibs"] for r in table]]  # fmt: skip
    axes.barh([p - 0.2 for p in positions], ours, 0.4, xerr=ours_err, color=OURS, label="ours")
    axes.barh([p + 0.2 for p in positions], reference, 0.4, xerr=ref_err, color=REFERENCE,
              label="reference")  # fmt: skip
    axes.set_yticks(list(positions), _labels(table), fontsize=7)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("MiB/s (median, bars: min-max; log scale)")
    axes.set_title("Throughput per case: ours and the reference")
    axes.legend(loc="lower right")
    axes.grid(axis="x", alpha=0.3, which="both")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def _ratios(table: list[dict[str, Any]], path: Path) -> str:
    height = max(4.0, 0.4 * len(table) + 1.5)
    figure, axes = plt.subplots(figsize=(10, height))
    positions = list(range(len(table)))
    values = [r["ratio"] for r in table]
    errors = [[r["ratio"] - r["low"] for r in table], [r["high"] - r["ratio"] for r in table]]
    colours = ["#999999" if r["met"] is None else (OURS if r["met"] else "#d62728") for r in table]
    axes.barh(positions, values, 0.6, xerr=errors, color=colours)
    for position, r in zip(positions, table, strict=True):
        if r["target"] is not None:
            axes.plot([r["target"]] * 2, [position - 0.4, position + 0.4], color="black", lw=1)
        axes.annotate(f"{r['ratio']:.2f}x", (r["high"], position), xytext=(4, 0),
                      textcoords="offset points", va="center", fontsize=7)  # fmt: skip
    axes.axvline(1.0, color="grey", lw=1, ls="--")
    axes.set_yticks(positions, _labels(table), fontsize=7)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("ours / reference (median; bars: per-round min-max; black tick: target)")
    axes.set_title("Ratio per case (red: target missed; grey: no target)")
    axes.grid(axis="x", alpha=0.3, which="both")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def _scaling(scaling: list[dict[str, Any]], path: Path) -> str:
    counts = [r["components"] for r in scaling]
    plan = [r["send"].get("plan_seconds", 0.0) for r in scaling]
    transfer = [r["send"].get("transfer_seconds", 0.0) for r in scaling]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(counts, [p / n * 1000 for p, n in zip(plan, counts, strict=True)], "o-",
              label="planning, ms per file")  # fmt: skip
    left.plot(counts, [t / n * 1000 for t, n in zip(transfer, counts, strict=True)], "s-",
              label="transfer, ms per file")  # fmt: skip
    left.plot(counts, plan, "o--", alpha=0.5, label="planning, s")
    left.plot(counts, transfer, "s--", alpha=0.5, label="transfer, s")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("files per send")
    left.set_title("Cost vs file count (send to SFTP)")
    left.legend(fontsize=8)
    left.grid(alpha=0.3, which="both")
    size = scaling[0]["bytes"] / scaling[0]["components"]
    rates = [n * size / 2**20 / t if t else 0 for n, t in zip(counts, transfer, strict=True)]
    right.plot(counts, rates, "o-", color=OURS)
    right.set_xscale("log")
    right.set_xlabel("files per send")
    right.set_ylabel("MiB/s (transfer phase)")
    # Every file has the same size, so files/s is the same curve on another scale.
    right.secondary_yaxis(
        "right", functions=(lambda m: m * 2**20 / size, lambda f: f * size / 2**20)
    ).set_ylabel("files/s")
    right.set_title("Throughput vs file count")
    right.grid(alpha=0.3, which="both")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def _requests(ftrack: list[dict[str, Any]], path: Path) -> str:
    counts = [r["components"] for r in ftrack]
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for kind, marker in (("send", "o-"), ("sync", "s-")):
        axes.plot(counts, [r[kind]["requests"] for r in ftrack], marker, label=f"{kind}: all")
        axes.plot(counts, [r[kind]["requests"] - r[kind]["job_updates"] for r in ftrack],
                  marker.replace("-", ":"), label=f"{kind}: without Job updates")  # fmt: skip
    base = ftrack[0]["send"]["requests"] - ftrack[0]["send"]["job_updates"]
    axes.plot(counts, [base + n / 500 for n in counts], color="grey", ls="--",
              label="bound: constant + 1 per 500")  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel("components")
    axes.set_ylabel("ftrack API requests")
    axes.set_title("ftrack requests per send / sync")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3, which="both")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name
