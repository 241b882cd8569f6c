"""``ftrack-transfer serve``: the long-running service (see transfer/service.py)."""

from __future__ import annotations

import argparse
import logging
import signal

from ..config import load_config
from ..journal import Journal
from ..service import Service


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--workers", type=int, default=2, help="jobs running at once (default 2)")
    parser.add_argument(
        "--scan-interval", type=float, default=300.0, metavar="SECONDS",
        help="how often to look for vendor publishes missed while serve was down (default 300)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if not args.verbose:
        logging.getLogger().setLevel(logging.INFO)
    config = load_config(args.config)
    service = Service(
        config,
        journal=Journal(config.journal_path()),
        workers=args.workers,
        scan_interval=args.scan_interval,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: service.stopping.set())
    service.start()
    print(
        f"ftrack-transfer serve: ready ({len(service.locations)} locations, journal {service.journal.path})",
        flush=True,
    )
    service.wait()
    service.stop()
    print("ftrack-transfer serve: stopped; unfinished jobs resume at the next start", flush=True)
    return 0
