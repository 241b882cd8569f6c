"""``python -m bench``: run the benchmarks, write RESULTS.md, results.json and the plots.

Usually started through ``scripts/bench``, which prepares the machine first.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import logging
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import ftrackload, machine, plots, report, resume, stock, transfers, wan
from .compare import Comparison, run_comparison
from .context import Context
from .lab import Lab
from .profile import FULL, QUICK, Profile

log = logging.getLogger("bench")

BENCH_DIR = Path(__file__).resolve().parent

#: Case id -> builder of its comparison (the other kinds are run by their own module).
COMPARISONS: dict[str, Callable[[Context, str], Comparison]] = {
    "single/disk-disk": transfers.single_file,
    "single/disk-sftp": transfers.single_file,
    "single/sftp-disk": transfers.single_file,
    "single/disk-s3": transfers.single_file,
    "single/s3-disk": transfers.single_file,
    "single/s3-s3": transfers.single_file,
    "sequence/disk-sftp": transfers.many_files,
    "sequence/disk-s3": transfers.many_files,
    "sequence/sftp-disk": transfers.many_files,
    "small/disk-sftp": transfers.many_files,
    "small/disk-s3": transfers.many_files,
    "stock/sftp-file": stock.stock_case,
    "stock/sftp-sequence": stock.stock_case,
    "stock/s3-file": stock.stock_case,
    "stock/s3-sequence": stock.stock_case,
    "wan/disk-sftp": wan.wan_file,
    "wan/sftp-disk": wan.wan_file,
    "wan/disk-s3": wan.wan_file,
    "wan/s3-disk": wan.wan_file,
}
OTHER = ("ftrack/requests", "ftrack/scaling", "resume/sftp", "resume/s3")
CASES = (*COMPARISONS, *OTHER)


def select(patterns: str | None) -> list[str]:
    """Case ids matching comma-separated globs or group names (all when None)."""
    if not patterns:
        return list(CASES)
    chosen = []
    for token in (t.strip() for t in patterns.split(",") if t.strip()):
        matches = [c for c in CASES if fnmatch.fnmatchcase(c, token) or c.split("/")[0] == token]
        if not matches:
            raise SystemExit(f"no case matches {token!r}; cases: {', '.join(CASES)}")
        chosen += [m for m in matches if m not in chosen]
    return [c for c in CASES if c in chosen]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark ftrack-transfer against the tools a studio would use instead, "
        "on loopback, and write RESULTS.md with ratios and plots.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="tiny data sets: proves the harness works in seconds")  # fmt: skip
    parser.add_argument("--cases", metavar="LIST",
                        help="comma-separated case ids, globs or groups (e.g. single,stock/s3-*); "
                             "--list shows them")  # fmt: skip
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="rounds per comparison (default: 3, quick: 1)")  # fmt: skip
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where RESULTS.md and results/ go (default: bench/)")  # fmt: skip
    parser.add_argument("--work", type=Path, metavar="DIR",
                        help="work folder for data and servers (default: <out>/work)")  # fmt: skip
    parser.add_argument("--s3", choices=("auto", "radosgw", "moto"),
                        help="S3 server (default: auto = radosgw if it can run here, else moto; "
                             "quick: moto)")  # fmt: skip
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder's data sets for the next run")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite RESULTS.md and the plots from <out>/results/results.json")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def _space_needed(profile: Profile) -> int:
    frames, frame = profile.sequence
    files, size = profile.small
    data = profile.single_size + frames * frame + files * size + profile.stock_sftp_single
    # Sources, plus one destination copy at a time on disk or on the SFTP server.
    return 3 * data


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(CASES))
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "boto3", "urllib3", "paramiko", "ftrack_api", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = (args.out or BENCH_DIR).resolve()
    if args.render:
        results = json.loads((out / "results" / "results.json").read_text())
        _write(results, out)
        return 0
    profile = QUICK if args.quick else FULL
    repeat = args.repeat or profile.repeat
    cases = select(args.cases)
    work = (args.work or out / "work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    if free < _space_needed(profile):
        raise SystemExit(
            f"{work}: {free / 2**30:.1f} GiB free, the {profile.name} profile needs about "
            f"{_space_needed(profile) / 2**30:.1f} GiB"
        )
    s3_kind = args.s3 or ("moto" if args.quick else "auto")
    started = time.monotonic()
    results: dict[str, Any] = {
        "profile": profile.name,
        "repeat": repeat,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cases": cases,
        "request_counts": list(profile.request_counts),
        "scaling_counts": list(profile.scaling_counts),
        "comparisons": [],
        "ftrack": [],
        "resume": [],
        "failures": [],
    }
    log.info("benchmark: %s profile, %d round(s), %d case(s); work in %s",
             profile.name, repeat, len(cases), work)  # fmt: skip
    lab = Lab(work, s3_kind)
    # A stopped run (SIGTERM as well as Ctrl-C) still stops sshd and the Ceph cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        lab.start()
        assert lab.s3 is not None
        log.info("servers: sshd on port %d, %s at %s", lab.sftp.port, lab.s3.label, lab.s3.url)  # type: ignore[union-attr]
        results["s3"] = {"kind": lab.s3.kind, "label": lab.s3.label,
                         "fallback_reason": lab.s3.fallback_reason, "version": lab.s3.version}  # fmt: skip
        results["machine"] = machine.machine()
        results["versions"] = machine.versions(lab.s3.label)
        ctx = Context(lab, profile)
        _run_cases(ctx, cases, repeat, results)
    finally:
        lab.stop()
        if not args.keep:
            _clean_work(work)
    results["seconds"] = time.monotonic() - started
    folder = out / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    _write(results, out)
    if results["failures"]:
        for failure in results["failures"]:
            log.error("FAILED %s: %s", failure["case"], failure["error"].splitlines()[0])
        return 1
    return 0


def _write(results: dict[str, Any], out: Path) -> None:
    """RESULTS.md and the plots, from the results (old plots are replaced)."""
    folder = out / "results"
    for old in folder.glob("*.png"):
        old.unlink()
    written = plots.write(results, folder)
    report.write(results, out / "RESULTS.md", written)
    log.info("wrote %s and %d plot(s) in %s", out / "RESULTS.md", len(written), folder)


def _run_cases(ctx: Context, cases: list[str], repeat: int, results: dict[str, Any]) -> None:
    def attempt(case: str, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as error:
            log.error("%s failed: %s", case, error)
            text = f"{error}\n{traceback.format_exc()}"
            # The results are committed: no paths of this machine in them.
            for path, name in ((ctx.lab.work, "<work>"), (BENCH_DIR.parent, "<repository>")):
                text = text.replace(str(path), name)
            results["failures"].append({"case": case, "error": text})

    for case in cases:
        if case in COMPARISONS:
            attempt(case, lambda case=case: results["comparisons"].append(
                run_comparison(COMPARISONS[case](ctx, case), repeat)))  # fmt: skip
    wanted = set()
    if "ftrack/requests" in cases:
        wanted |= set(ctx.profile.request_counts)
    if "ftrack/scaling" in cases:
        wanted |= set(ctx.profile.scaling_counts)
    if wanted:
        attempt("ftrack", lambda: results["ftrack"].extend(ftrackload.run(ctx, sorted(wanted))))
    for kind in ("sftp", "s3"):
        if f"resume/{kind}" in cases:
            attempt(f"resume/{kind}",
                    lambda kind=kind: results["resume"].append(resume.run(ctx, kind)))  # fmt: skip


def _clean_work(work: Path) -> None:
    """Remove data sets and server state; keep the logs (small, useful after a failure)."""
    for entry in work.iterdir():
        if entry.name != "logs":
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
