"""``ftrack-transfer send --from SRC --to DST ENTITY...``"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from ..config import SitesConfig, load_config
from ..engine import configured_locations, submit
from ..errors import SelectionError
from ..ftrack_session import open_session
from ..journal import Journal
from ..planner import Plan, Planner, additional_files
from ..selection import resolve
from ..units import format_size
from .running import permitted_user, run_or_follow
from .tables import table_console


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "--from", dest="source", required=True, metavar="SRC", help="source location"
    )
    parser.add_argument(
        "--to", dest="destinations", required=True, action="append", metavar="DST",
        help="destination location (repeat, or separate with commas, for several)",
    )  # fmt: skip
    parser.add_argument(
        "entities", nargs="+", metavar="ENTITY",
        help=(
            "an ftrack id, or a path: demo/sq010/sh0010/compositing (a context), "
            "demo/sq010/sh0010/plate (an asset), demo/sq010/sh0010/plate/v002 (a version), "
            "demo/sq010/sh0010/plate/v002/main or 'demo/sq010/sh0010/plate v002 main' "
            "(a component, as plans label it)"
        ),
    )  # fmt: skip
    parser.add_argument("--component", dest="components", action="append", default=[], metavar="NAME",
                        help="send only components with this name (repeatable)")  # fmt: skip
    parser.add_argument("--additional", action="append", default=[], metavar="PATH",
                        help="an extra file or folder, relative to the source root (repeatable)")  # fmt: skip
    parser.add_argument(
        "--priority", type=int, default=500, help="1-1000, higher first (default 500)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan; send nothing, write nothing"
    )
    parser.add_argument("--wait", action="store_true", help="show progress until the job ends")


def print_plan(plan: Plan) -> None:
    table = Table(title=f"Plan: {plan.summary() or 'nothing selected'}")
    for column in ("component", "to", "files", "size", "action"):
        table.add_column(column, overflow="fold")
    for leg in plan.legs:
        owner = {c.component_id: c.container_id or c.component_id for c in leg.components}
        files: dict[str, list[int]] = {}
        for file in leg.files:
            key = owner.get(file.component_id or "", file.source_ri)
            files.setdefault(key, []).append(file.size)
        for component in leg.components:
            if component.container_id is None:
                sizes = files.get(component.component_id, [])
                table.add_row(component.label, leg.destination, str(len(sizes)), format_size(sum(sizes)),
                              f"send to {component.resource_identifier}")  # fmt: skip
        for file in leg.files:
            if file.component_id is None:
                table.add_row(
                    file.label,
                    leg.destination,
                    "1",
                    format_size(file.size),
                    "send (not registered)",
                )
        for skipped in leg.skipped:
            table.add_row(skipped.label, leg.destination, "-", "-", f"skip: {skipped.reason}")
    for missing in plan.missing:
        table.add_row(missing.label, "-", "-", "-", f"skip: {missing.reason}")
    table_console().print(table)


def destinations(config: SitesConfig, values: list[str]) -> list[str]:
    """``--to la --to cloud`` or ``--to la,cloud`` (unless a location is named so),
    each location once."""
    names: dict[str, None] = {}
    for value in values:
        pieces = [piece.strip() for piece in value.split(",")]
        split = value not in config.locations and all(p in config.locations for p in pieces)
        names.update(dict.fromkeys(pieces if split else [value]))
    return list(names)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    args.destinations = destinations(config, args.destinations)
    for name in [args.source, *args.destinations]:
        config.location(name)
    if args.source in args.destinations:
        raise SelectionError(
            f"source and destination are the same location ({args.source}); choose another destination"
        )
    console = Console(soft_wrap=True)
    session = open_session()
    try:
        username, user_id = permitted_user(session, config, args.source, args.destinations)
        selection = resolve(session, args.entities)
        if args.dry_run:
            locations = configured_locations(session, config, [args.source, *args.destinations])
            plan = Planner(session).plan(
                selection, locations[args.source], [locations[d] for d in args.destinations],
                component_names=args.components, additional_files=args.additional,
            )  # fmt: skip
            print_plan(plan)
            return 0
        if args.additional:
            # Refused here, before anything is queued, as the action's form does.
            locations = configured_locations(session, config, [args.source])
            for path in args.additional:
                additional_files(locations[args.source], path)
    finally:
        session.close()
    journal = Journal(config.journal_path())
    job_id = submit(
        journal, source=args.source, destinations=args.destinations, selection=selection, origin="cli",
        username=username, user_id=user_id, title="ftrack-transfer send", component_names=args.components,
        additional_files=args.additional, priority=args.priority,
    )  # fmt: skip
    return run_or_follow(journal, config, job_id, wait=args.wait, console=console)
