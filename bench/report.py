"""``RESULTS.md``: the results page, written from ``results.json``."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ftrack_transfer.transfer.registrar import PACED_COMMITS

from .compare import ratio, throughputs, verdict
from .ftrackload import bound_check
from .resume import KILL_AT

MiB = 2**20

TARGETS = {
    "single": "at least as fast as the reference (1.0x)",
    "sequence": "at least as fast as rclone (1.0x)",
    "small": "at least as fast as rclone (1.0x)",
    "stock": "at least 20x the stock ftrack path",
}
RSS_TARGET = 200 * MiB
RESEND_TARGET = 10.0


def _mib(n: float) -> str:
    return f"{n / MiB:,.0f}"


def _rate(n: float) -> str:
    return f"{n:,.1f}" if n < 100 else f"{n:,.0f}"


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (comparison, reference): the figures of the ratio table."""
    out = []
    for result in results.get("comparisons", []):
        ours = next(s for s in result["sides"] if s["role"] == "ours")
        for reference in (s for s in result["sides"] if s["role"] == "reference"):
            middle, low, high = ratio(result, ours["label"], reference["label"])
            targeted = reference.get("targeted", True)
            target = result["target"] if targeted else None
            out.append(
                {
                    "id": result["id"],
                    "group": result["group"],
                    "title": result["title"],
                    "reference": reference["label"],
                    "ours_mibs": statistics.median(throughputs(result, ours["label"])),
                    "ref_mibs": statistics.median(throughputs(result, reference["label"])),
                    "ours_range": _range(throughputs(result, ours["label"])),
                    "ref_range": _range(throughputs(result, reference["label"])),
                    "ratio": middle,
                    "low": low,
                    "high": high,
                    "target": target,
                    "context": not targeted,
                    "met": None if target is None else middle >= target,
                    "ours_rss": max(r["rss"] for r in ours["runs"]),
                    "ref_rss": max(r["rss"] for r in reference["runs"]),
                    "ours_cpu": statistics.median(r["cpu"] for r in ours["runs"]),
                    "ref_cpu": statistics.median(r["cpu"] for r in reference["runs"]),
                    "bytes": result["bytes"],
                    "ours_requests": _requests(ours),
                    "ref_requests": _requests(reference),
                }
            )
    return out


def _target(row: dict[str, Any]) -> str:
    if row["target"] is None:
        return "- (for context)" if row.get("context") else "- (ceiling)"
    return f"{row['target']:g}x {'met' if row['met'] else '**missed**'}"


def _range(values: list[float]) -> tuple[float, float]:
    return min(values), max(values)


def _requests(side: dict[str, Any]) -> int | None:
    found = [r.get("extra", {}).get("ftrack_requests") for r in side["runs"]]
    found = [f for f in found if f is not None]
    return int(statistics.median(found)) if found else None


def write(results: dict[str, Any], path: Path, plots: list[str]) -> None:
    path.write_text(render(results, plots))


def render(results: dict[str, Any], plots: list[str]) -> str:
    table = rows(results)
    out: list[str] = []
    add = out.append
    profile = results["profile"]
    add("# Benchmark results")
    add("")
    add(
        f"Written by `scripts/bench{' --quick' if profile == 'quick' else ''}` on "
        f"{results['date']} ({profile} profile, {results['repeat']} round(s) per comparison, "
        f"{results['seconds'] / 60:.0f} min). Everything ran on this one machine over loopback; "
        "ratios matter, absolute figures depend on the machine. See `bench/README.md` for "
        "what each case measures and how to read it."
    )
    add("")
    if profile == "quick":
        add("> **Quick profile:** tiny data sets that prove the harness works. These figures "
            "are dominated by start-up costs and say nothing about performance.")  # fmt: skip
        add("")
    s3 = results["s3"]
    if s3["kind"] != "radosgw":
        add(f"> **S3 server: moto (fallback).** {s3.get('fallback_reason', '')} moto copies "
            "the whole object on every GET, so download figures against it are not meaningful.")  # fmt: skip
        add("")

    add("## Targets")
    add("")
    add("| target | measured | met |")
    add("|---|---|---|")
    for line in _targets(results, table):
        add(line)
    add("")

    add("## Throughput: ours against each reference")
    add("")
    add("Median MiB/s over the rounds (min-max in brackets); ratio = ours / reference "
        "(median of each side), with the min-max of the per-round ratios.")  # fmt: skip
    add("")
    add("| case | reference | ours MiB/s | reference MiB/s | ratio (min-max) | ours is | target |")
    add("|---|---|---|---|---|---|---|")
    for r in table:
        add(
            f"| `{r['id']}` {r['title']} | {r['reference']} | {_rate(r['ours_mibs'])} "
            f"({_rate(r['ours_range'][0])}-{_rate(r['ours_range'][1])}) | {_rate(r['ref_mibs'])} "
            f"({_rate(r['ref_range'][0])}-{_rate(r['ref_range'][1])}) | **{r['ratio']:.2f}x** "
            f"({r['low']:.2f}-{r['high']:.2f}) | {verdict(r['ratio'])} | {_target(r)} |"
        )
    add("")
    notes = [c for c in results.get("comparisons", []) if c.get("note")]
    for comparison in notes:
        add(f"- `{comparison['id']}`: {comparison['note']}")
    if notes:
        add("")

    add("## Memory and CPU per side")
    add("")
    add("Peak resident memory (largest run) and median CPU seconds (user + system) of each "
        "side's process; servers are not included.")  # fmt: skip
    add("")
    add(
        "| case | reference | ours peak RSS MiB | reference peak RSS MiB | ours CPU s | reference CPU s |"
    )
    add("|---|---|---|---|---|---|")
    for r in table:
        add(
            f"| `{r['id']}` | {r['reference']} | {_mib(r['ours_rss'])} | {_mib(r['ref_rss'])} | "
            f"{r['ours_cpu']:.1f} | {r['ref_cpu']:.1f} |"
        )
    add("")
    stock = [r for r in table if r["group"] == "stock"]
    if stock:
        add("ftrack requests per run in the stock-path cases (median): "
            + "; ".join(f"`{r['id']}` ours {r['ours_requests']}, stock {r['ref_requests']}"
                        for r in stock) + ".")  # fmt: skip
        add("")

    _ftrack_section(results, add)
    _scaling_section(results, add)
    _resume_section(results, add)

    if plots:
        add("## Plots")
        add("")
        for plot in plots:
            add(f"![{plot}](results/{plot})")
            add("")

    add("## Machine")
    add("")
    m = results["machine"]
    add(f"- CPU: {m['cpu']}, {m['cores']} cores")
    add(f"- Memory: {m['memory'] / 2**30:.1f} GiB")
    add(f"- Kernel: {m['kernel']} ({m['os']})")
    add("")
    add("## Versions")
    add("")
    add("| tool | version |")
    add("|---|---|")
    for name, value in results["versions"].items():
        add(f"| {name} | {value} |")
    add("")
    add("## S3 server")
    add("")
    add(_s3_text(s3))
    add("")
    return "\n".join(out)


def _targets(results: dict[str, Any], table: list[dict[str, Any]]) -> list[str]:
    lines = []

    def targeted(select: Any) -> list[dict[str, Any]]:
        """The rows *select* picks that a target is measured on (context rows aside)."""
        return [r for r in table if select(r) and r["target"] is not None]

    def ratios(chosen: list[dict[str, Any]]) -> str:
        return ", ".join(f"{r['id'].split('/', 1)[1]} vs {r['reference']} {r['ratio']:.2f}x"
                         for r in chosen)  # fmt: skip

    def met(chosen: list[dict[str, Any]]) -> str:
        return "yes" if all(r["met"] for r in chosen) else "no"

    checks = [
        ("SFTP at least as fast as OpenSSH sftp",
         lambda r: r["group"] == "single" and "sftp" in r["id"]),
        ("S3 at least as fast as boto3's managed transfer",
         lambda r: r["group"] == "single" and "s3" in r["id"]),
        ("At least 1.0x rclone (defaults and --transfers 16)",
         lambda r: r["group"] in ("sequence", "small")),
        ("At least 20x the stock ftrack path", lambda r: r["group"] == "stock"),
    ]  # fmt: skip
    for label, select in checks:
        chosen = targeted(select)
        if chosen:
            lines.append(f"| {label} | {ratios(chosen)} | {met(chosen)} |")
    rows_ = results.get("ftrack", [])
    if rows_:
        for kind in ("send", "sync"):
            check = bound_check(rows_, kind)
            lines.append(
                f"| ftrack requests per {kind} within a constant + 1 per 500 components "
                "(time-paced Job updates and availability commits aside) | "
                f"constant {check['constant']}, {check['per_500']:.2f} more per 500 "
                f"components, at most {check['paced_registrations']} paced commits | "
                f"{'yes' if check['within'] else 'no'} |"
            )
    rss = [(r["ours_rss"], r["id"]) for r in table]
    rss += [(r["restart_rss"], f"resume/{r['kind']}") for r in results.get("resume", [])]
    if rss:
        worst = max(rss)
        lines.append(
            f"| Peak memory under 200 MiB for any size | largest {_mib(worst[0])} MiB "
            f"(`{worst[1]}`) | {'yes' if worst[0] < RSS_TARGET else 'no'} |"
        )
    for r in results.get("resume", []):
        lines.append(
            f"| Resume re-sends under 10 % ({r['kind']}) | {r['resent_percent']:.1f} % re-sent, "
            f"hash {'equal' if r['hash_equal'] else 'DIFFERENT'} | "
            f"{'yes' if r['resent_percent'] < RESEND_TARGET and r['hash_equal'] else 'no'} |"
        )
    return lines


def _ftrack_section(results: dict[str, Any], add: Any) -> None:
    rows_ = results.get("ftrack", [])
    counts = set(results.get("request_counts", []))
    chosen = [r for r in rows_ if r["components"] in counts] or rows_
    if not chosen:
        return
    add("## ftrack requests per send and per sync")
    add("")
    add("Counted at the sandbox server for the whole command (session start to exit). "
        "Columns: all requests = queries + registrations (ComponentLocation batches: one "
        "per 1,000 components, and more while a slow transfer lands, paced by time) + "
        "Job updates (the ftrack Job's progress, paced by time) + other writes.")  # fmt: skip
    add("")
    add("| components | send: requests (queries / registrations / Job updates / other) | "
        "sync: requests (...) | sync with nothing to send |")  # fmt: skip
    add("|---|---|---|---|")

    def cell(d: dict[str, Any]) -> str:
        return (f"**{d['requests']}** ({d['queries']} / {d['registrations']} / "
                f"{d['job_updates']} / {d['other_writes']})")  # fmt: skip

    for r in chosen:
        add(f"| {r['components']:,} | {cell(r['send'])} | {cell(r['sync'])} | "
            f"{r['sync_again']['requests']} |")  # fmt: skip
    add("")
    for kind in ("send", "sync"):
        check = bound_check(rows_, kind)
        add(
            f"- {kind}: requests other than time-paced ones = {check['constant']} + "
            f"{check['per_500']:.2f} per 500 components (largest excess over the bound: "
            f"{check['excess']}); availability commits paced by time: at most "
            f"{check['paced_registrations']} per job (the registrar's cap is about "
            f"{PACED_COMMITS}); {'within' if check['within'] else 'NOT within'} "
            "a constant plus one per 500 components."
        )
    add("")


def _scaling_section(results: dict[str, Any], add: Any) -> None:
    rows_ = results.get("ftrack", [])
    counts = set(results.get("scaling_counts", []))
    chosen = [r for r in rows_ if r["components"] in counts]
    if not chosen:
        return
    add("## Scaling with the number of files")
    add("")
    size = chosen[0]["bytes"] // chosen[0]["components"]
    add(f"`ftrack-transfer send --wait` of N components of {size // 1024} KiB each, hq (disk) "
        "to la (SFTP), one run per N. Planning = submitted to first byte (session, "
        "locations, planner, journal); transfer = first byte to the end (including "
        "registration).")  # fmt: skip
    add("")
    add("| files | planning s | planning ms per file | transfer s | MiB/s | files/s | total s |")
    add("|---|---|---|---|---|---|---|")
    for r in chosen:
        send = r["send"]
        plan, transfer = send.get("plan_seconds", 0.0), send.get("transfer_seconds", 0.0)
        n = r["components"]
        add(
            f"| {n:,} | {plan:.2f} | {plan / n * 1000:.2f} | {transfer:.2f} | "
            f"{r['bytes'] / MiB / transfer if transfer else 0:.1f} | "
            f"{n / transfer if transfer else 0:,.0f} | {send['seconds']:.2f} |"
        )
    add("")


def _resume_section(results: dict[str, Any], add: Any) -> None:
    rows_ = results.get("resume", [])
    if not rows_:
        return
    add("## Resume after SIGKILL")
    add("")
    add("Bytes counted on the wire by a relay in front of the server: an uninterrupted send, "
        f"then a send killed with SIGKILL just past half-way (at {KILL_AT * 100:.2f} %, mid-chunk) "
        "and restarted with `ftrack-transfer retry "
        "<job> --wait`. Re-sent = (before kill + after restart - uninterrupted) / "
        "uninterrupted.")  # fmt: skip
    add("")
    add(
        "| destination | file | killed at | journalled at kill | re-sent | destination hash | job | restart s | restart peak RSS MiB |"
    )
    add("|---|---|---|---|---|---|---|---|---|")
    for r in rows_:
        add(
            f"| {r['kind']} | {_mib(r['size'])} MiB | {r['killed_at_percent']:.0f} % | "
            f"{_mib(r['journalled_at_kill'])} MiB | **{r['resent_percent']:.1f} %** "
            f"({_mib(r['resent_bytes'])} MiB) | {'equal to the source' if r['hash_equal'] else 'DIFFERENT'} | "
            f"{r['status']} | {r['restart_seconds']:.1f} | {_mib(r['restart_rss'])} |"
        )
    if any(r.get("rate_cap") for r in rows_):
        add("")
        add(f"(Upload capped at {_mib(rows_[0]['rate_cap'])} MiB/s by the relay so the kill "
            "lands half-way on a small file.)")  # fmt: skip
    add("")


def _s3_text(s3: dict[str, Any]) -> str:
    if s3["kind"] == "radosgw":
        return (
            f"{s3['label']}: Debian's `radosgw`, `ceph-mon` and `ceph-osd` packages, one "
            "monitor and one OSD on memstore (objects in RAM), pool size 1, cephx off with the "
            "`crc secure` messenger modes, fast garbage collection, the beast frontend on "
            "127.0.0.1. Started fresh for the run (see `bench/radosgw.py`)."
        )
    return (
        f"{s3['label']}. radosgw was not used: {s3.get('fallback_reason') or 'not requested'}. "
        "See `bench/README.md` for how radosgw is set up."
    )
