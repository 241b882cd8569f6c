"""``ftrack-transfer sandbox --dir DIR``: the loopback studio in the foreground."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from ..errors import UserError


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "--dir", required=True, type=Path, help="studio folder (state survives restarts)"
    )
    parser.add_argument(
        "--sftp", choices=("auto", "openssh", "embedded"), default="auto",
        help="SFTP server for the la office: OpenSSH's sshd when installed (auto), or the embedded one",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        from ...sandbox.studio import Studio
    except ImportError as error:
        raise UserError(
            f"the sandbox needs the sandbox extras ({error.name} is missing); "
            "install them with: pip install 'ftrack-transfer[sandbox]'"
        ) from None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    studio = Studio(args.dir, sftp=args.sftp)
    studio.start()
    try:
        assert studio.ftrack and studio.sftp and studio.s3 and studio.accsyn
        print(
            f"sandbox ready: ftrack {studio.ftrack.url}, accsyn {studio.accsyn.url}, "
            f"sftp {studio.sftp.kind} 127.0.0.1:{studio.sftp.port}, s3 {studio.s3.endpoint_url}; "
            f"in another shell: . {studio.env_path}",
            flush=True,
        )
        stop.wait()
    finally:
        studio.stop()
    print("sandbox stopped; its state stays in", studio.directory, flush=True)
    return 0
