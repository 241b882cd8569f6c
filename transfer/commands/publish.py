"""``ftrack-transfer publish --location LOC --task TASK --asset NAME PATH...``"""

from __future__ import annotations

import argparse

from rich.console import Console

from ..config import load_config
from ..engine import submit
from ..ftrack_session import open_session
from ..journal import Journal
from ..publish import publish, return_target
from ..selection import EntityRef
from ..units import counted
from .running import run_or_follow


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "--location", required=True, help="the (vendor) location the files are published at"
    )
    parser.add_argument(
        "--task", required=True, help="task id or path, e.g. demo/sq010/sh0020/compositing"
    )
    parser.add_argument(
        "--asset", required=True, help="asset name (created under the task's parent if new)"
    )
    parser.add_argument(
        "--type", dest="asset_type", help="asset type name (default: Upload or Render)"
    )
    parser.add_argument("--comment", default="", help="version comment")
    parser.add_argument("--to", help="send here instead of the location's return_to")
    parser.add_argument(
        "--no-wait", action="store_true", help="queue the send home and return at once"
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="files or wildcards (comp.*.exr); frame-numbered files form sequences",
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    destination = return_target(config, args.location, args.to)
    console = Console(soft_wrap=True)
    session = open_session(connect_event_hub=True)
    try:
        published = publish(
            session, config, location=args.location, task=args.task, asset=args.asset,
            paths=args.paths, asset_type=args.asset_type, comment=args.comment,
        )  # fmt: skip
        user = session.query(f'select id from User where username is "{session.api_user}"').one()
        console.print(
            f"published {published.label} with {counted(len(published.components), 'component')} at {args.location}"
        )
    finally:
        session.close()
    if destination is None:
        console.print(
            f"no return target for {args.location} (set return_to in the sites config, or pass --to)"
        )
        return 0
    journal = Journal(config.journal_path())
    job_id = submit(
        journal, source=args.location, destinations=[destination],
        selection=[EntityRef("AssetVersion", published.version["id"])], origin="publish",
        username=session.api_user, user_id=user["id"], title=f"Publish {published.label} home",
    )  # fmt: skip
    return run_or_follow(journal, config, job_id, wait=not args.no_wait, console=console)
