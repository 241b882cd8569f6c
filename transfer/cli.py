"""``ftrack-transfer``: the command line.

Each subcommand lives in its own module under ``transfer/commands`` with two functions,
``add_arguments(parser)`` and ``run(args) -> int``; :data:`COMMANDS` lists them. Modules
are imported only for the command being run, so ``ftrack-transfer status`` does not pay
for boto3 or paramiko.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .config import CONFIG_ENV
from .errors import UserError
from .heap import share_one_heap

#: command -> (module under ftrack_transfer.transfer.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "run the whole mission on an embedded sandbox studio"),
    "sandbox": ("sandbox", "start the loopback studio and write the env to point at it"),
    "serve": ("serve", "run the action listener, transfer workers and schedules"),
    "send": ("send", "send components under entities from one location to others"),
    "sync": ("sync", "send what a project has at one location and not at another"),
    "publish": ("publish", "publish files at a (vendor) location and send them home"),
    "status": ("status", "show transfer jobs and their progress"),
    "retry": ("jobs", "re-send what did not arrive in a job"),
    "cancel": ("jobs", "stop a job cleanly"),
    "locations": ("locations", "list configured locations; --check connects to each"),
    "plugin-path": ("locations", "print the folder to put on FTRACK_EVENT_PLUGIN_PATH"),
}


def _command_module(name: str):
    module, _ = COMMANDS[name]
    return importlib.import_module(f"ftrack_transfer.transfer.commands.{module}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftrack-transfer",
        description="Move published work between studio sites, remote staff and vendors, "
        "with ftrack locations as the record of what is where.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="sites config (default: $FTRACK_TRANSFER_CONFIG, else the per-user sites.toml)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported to describe its arguments.
        if name == command:
            _command_module(name).add_arguments(command_parser, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    if args.config:
        # Every ftrack session of this process, and the processes it starts, read the
        # sites config through the configure-location plugin, which looks here.
        os.environ[CONFIG_ENV] = os.path.abspath(os.path.expanduser(args.config))
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    share_one_heap()
    try:
        return int(_command_module(args.command).run(args) or 0)
    except UserError as error:
        print(f"ftrack-transfer {args.command}: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"ftrack-transfer {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
