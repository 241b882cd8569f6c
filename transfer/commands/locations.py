"""``ftrack-transfer locations [--check]`` and ``ftrack-transfer plugin-path``."""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.table import Table

from ..accsyn_backend import check_party
from ..config import LocationConfig, load_config
from ..configure_location import build_accessor
from ..errors import ConfigError, first_line
from .tables import table_console


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    if command == "locations":
        parser.add_argument(
            "--check",
            action="store_true",
            help="connect to each location and report whether it is reachable",
        )


def plugin_path() -> Path:
    """The folder holding the configure-location plugin, for FTRACK_EVENT_PLUGIN_PATH."""
    return Path(__file__).resolve().parent.parent / "plugins"


def _check(location: LocationConfig) -> tuple[str, str]:
    try:
        accessor = build_accessor(location)
    except ConfigError as error:
        return "not configured", str(error)
    try:
        accessor.check()
        party = _accsyn_party_to_check(location, accessor)
        if party:
            check_party(party, getattr(accessor, "share", None))
    except Exception as error:
        return "not reachable", first_line(error)
    finally:
        accessor.close()
    return "reachable", ""


def _accsyn_party_to_check(location: LocationConfig, accessor: object) -> str | None:
    """The party accsyn itself must know for this location to be usable from here: where
    its sends go through accsyn, or it is an accsyn share this host does not mount."""
    party = location.accsyn_party or getattr(accessor, "party", None)
    unmounted = location.accessor == "accsyn" and getattr(accessor, "local_disk", None) is None
    return party if party and (location.backend == "accsyn" or unmounted) else None


def run(args: argparse.Namespace) -> int:
    if args.command == "plugin-path":
        print(plugin_path())
        return 0
    config = load_config(args.config)
    locations = list(config.locations.values())
    table = Table(title=f"Locations in {config.path}")
    for column in (
        "name",
        "accessor",
        "storage",
        "structure",
        "priority",
        "accsyn party",
        "backend",
    ):
        table.add_column(column)
    if args.check:
        table.add_column("check")
        table.add_column("reason", overflow="fold")
        with ThreadPoolExecutor(max_workers=min(8, len(locations))) as pool:
            results = list(pool.map(_check, locations))
    failures = 0
    for index, loc in enumerate(locations):
        try:
            storage = build_accessor(loc).describe()
        except ConfigError as error:
            storage = f"({error})"
        row = [
            loc.name,
            loc.accessor,
            storage,
            loc.structure.name,
            str(loc.priority),
            loc.accsyn_party or "-",
            loc.backend,
        ]
        if args.check:
            status, reason = results[index]
            failures += status != "reachable"
            row += [status, reason]
        table.add_row(*row)
    table_console().print(table)
    return 1 if failures else 0
