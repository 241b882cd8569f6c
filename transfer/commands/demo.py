"""``ftrack-transfer demo [--keep]``: see transfer/demo.py."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from rich.console import Console

from ..errors import UserError


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running at the end")
    parser.add_argument("--dir", type=Path, help="studio folder (default: a new temporary folder)")
    parser.add_argument(
        "--fast", action="store_true", help="smaller media and no bandwidth cap (for tests)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        from ...sandbox.studio import Studio  # noqa: F401 - fail early without the extras
        from ..demo import Demo
    except ImportError as error:
        raise UserError(
            f"the demo needs the sandbox extras ({error.name} is missing); "
            "install them with: pip install 'ftrack-transfer[sandbox]'"
        ) from None
    # SIGTERM's default ends the process on the spot, leaving the sandbox's sshd (in its
    # own session) running; as an exit, it stops every server the demo started.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    return Demo(args.dir, Console(soft_wrap=True), fast=args.fast).run(keep=args.keep)
