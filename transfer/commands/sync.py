"""``ftrack-transfer sync --from SRC --to DST --project P``: safe to run from cron."""

from __future__ import annotations

import argparse

from ..config import load_config
from ..errors import UserError
from ..ftrack_session import open_session, session_factory
from ..journal import Journal
from ..planner import Filters
from ..progress import LogSubscriber
from ..sync import run_sync
from ..units import parse_duration
from .running import permitted_user
from .send import print_plan

_FILTER_KEYS = {
    "asset_type": "asset_types",
    "task_type": "task_types",
    "status": "statuses",
    "component": "components",
    "asset": "assets",
    "max_age": "max_age",
}


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--from", dest="source", required=True, metavar="SRC")
    parser.add_argument("--to", dest="destination", required=True, metavar="DST")
    parser.add_argument("--project", required=True, help="the ftrack project name")
    parser.add_argument(
        "--filter", action="append", default=[], metavar="KEY=VALUE",
        help="asset_type=, task_type=, status=, component=, asset= (repeatable) or max_age=7d",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be sent; send and write nothing"
    )


def parse_filters(values: list[str]) -> Filters:
    collected: dict[str, list[str]] = {}
    max_age = None
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or key not in _FILTER_KEYS or not text:
            raise UserError(
                f"bad filter {value!r}; use KEY=VALUE with KEY one of {', '.join(_FILTER_KEYS)}"
            )
        if key == "max_age":
            try:
                max_age = parse_duration(text)
            except ValueError as error:
                raise UserError(f"bad filter {value!r}: {error}") from None
        else:
            collected.setdefault(_FILTER_KEYS[key], []).append(text)
    return Filters(**{k: tuple(v) for k, v in collected.items()}, max_age=max_age)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    filters = parse_filters(args.filter)
    session = open_session()
    try:
        username, user_id = permitted_user(session, config, args.source, [args.destination])
    finally:
        session.close()
    result = run_sync(
        Journal(config.journal_path()), config, session_factory(connect_event_hub=True),
        source=args.source, destination=args.destination, project=args.project, filters=filters,
        dry_run=args.dry_run, username=username, user_id=user_id, subscribers=[LogSubscriber()],
    )  # fmt: skip
    if args.dry_run and result.plan is not None and not result.plan.empty:
        print_plan(result.plan)
    print(f"sync {args.project} {args.source} -> {args.destination}: {result.describe()}")
    return result.exit_code
