"""The sites config: every location a studio uses, described once.

A TOML file names each location by its ftrack name with its accessor and the accessor's
fields, its structure, priority and accsyn party, plus transfer defaults, schedules,
auto-return and auto-send rules and send permissions. ``docs/configuration.md`` is the
reference; ``examples/sites.toml`` a commented example.

Loading validates everything before anything touches ftrack or storage: each problem is
one :class:`~ftrack_transfer.transfer.errors.ConfigError` naming the file, the location
and the field. Secrets are never read from the file; credentials come from the
environment or key files.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import platformdirs

from ..accessors import accessor_class, available
from ..accessors.base import VERIFY_LEVELS, Option
from ..accessors.errors import AccessorConfigurationError
from ..structures import STRUCTURES, structure_options
from . import units
from .errors import ConfigError

#: Environment variable naming the sites config file.
CONFIG_ENV = "FTRACK_TRANSFER_CONFIG"
#: Environment variable restricting which locations this machine configures
#: (comma-separated names or globs), for workstations that cannot reach every site.
SCOPE_ENV = "FTRACK_TRANSFER_LOCATIONS"

#: ``sys.platform`` -> the key used in per-OS root tables.
PLATFORM_KEYS = {"linux": "linux", "win32": "windows", "darwin": "macos"}
_ROOT_KEYS = ("linux", "windows", "macos")

#: Field names that would hold a secret; the config refuses them with a message saying
#: where secrets go. Fields an accessor declares (``passphrase_env``) are names of
#: variables, not secrets, and are checked against the accessor's options first.
_SECRET_FIELD = re.compile(
    r"password|passwd|secret|token|api_?key|access_?key|private_?key|passphrase", re.IGNORECASE
)
_CREDENTIALS_ELSEWHERE = (
    "secrets are never read from the sites config; put the secret in an environment "
    "variable or a key file and name that instead (see docs/configuration.md)"
)


def _looks_secret(field: str) -> bool:
    # "key_file", "passphrase_env": where a secret is, not the secret itself.
    return bool(_SECRET_FIELD.search(field)) and not field.endswith(("_env", "_file", "_path"))


#: A Windows root: a drive letter (``P:\\``) or a UNC share (``\\\\server\\share``).
_WINDOWS_ROOT = re.compile(r"^([A-Za-z]:[\\/]|\\\\[^\\]+\\[^\\]+)")
_PARTY = re.compile(r"^(site=[A-Za-z0-9_.-]+|[^@\s:]+@[^@\s:]+)$")

_LOCATION_FIELDS = {
    "accessor",
    "structure",
    "priority",
    "label",
    "description",
    "accsyn",
    "backend",
    "transfer",
    "return_to",
    "readers",
    "writers",
}


def default_config_path() -> Path:
    """The per-user default: ``<user config dir>/ftrack-transfer/sites.toml``."""
    # appauthor=False: on Windows, %LOCALAPPDATA%\ftrack-transfer rather than the
    # vendor-named ...\ftrack-transfer\ftrack-transfer.
    return Path(platformdirs.user_config_dir("ftrack-transfer", appauthor=False)) / "sites.toml"


def default_journal_path() -> Path:
    """The per-user default journal: ``<user data dir>/ftrack-transfer/journal.sqlite``."""
    return Path(platformdirs.user_data_dir("ftrack-transfer", appauthor=False)) / "journal.sqlite"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Which sites config to read: ``--config``, then ``$FTRACK_TRANSFER_CONFIG``, then the default."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    return default_config_path()


@dataclasses.dataclass(frozen=True)
class TransferSettings:
    """How bytes move: the ``[transfer]`` table, optionally overridden per location."""

    chunk_size: int = 8 * 1024**2
    #: Chunks of one file in flight; ``None``: the storages' own default (the larger
    #: ``default_streams`` of the two ends that have one, see ``Endpoints.streams``).
    streams: int | None = None
    files_in_flight: int = 8
    bandwidth: int | None = None
    verify: str = "checksum"
    retries: int = 5
    retry_wait: float = 1.0
    retry_max_wait: float = 60.0
    job_update_interval: float = 2.0

    def merged(self, overrides: Mapping[str, Any]) -> TransferSettings:
        return dataclasses.replace(self, **overrides) if overrides else self


@dataclasses.dataclass(frozen=True)
class StructureConfig:
    name: str = "template"
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LocationConfig:
    """One ``[locations."<name>"]`` table, validated."""

    name: str
    accessor: str
    options: Mapping[str, Any]
    structure: StructureConfig
    priority: int = 50
    label: str = ""
    description: str = ""
    accsyn_party: str | None = None
    #: ``"direct"`` or ``"accsyn"``: which backend sends to or from this location use
    #: when both ends have an accsyn party (``"direct"`` unless set).
    backend: str = "direct"
    transfer: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: Where this location's publishes go home to (vendor locations).
    return_to: str | None = None
    #: Who may send from (readers) and to (writers) this location: usernames,
    #: ``group:<name>`` or ``*``.
    readers: tuple[str, ...] = ("*",)
    writers: tuple[str, ...] = ("*",)

    @property
    def accessor_options(self) -> list[Option]:
        return list(accessor_class(self.accessor).options)

    def resolved_options(self, platform: str = sys.platform) -> dict[str, Any]:
        """Accessor keyword arguments for *platform*: per-OS root tables resolved.

        Raises ConfigError when a required root has no entry for *platform*; an
        optional one without an entry is left out.
        """
        values = dict(self.options)
        for option in self.accessor_options:
            if option.kind == "roots" and isinstance(values.get(option.name), Mapping):
                root = resolve_root(values[option.name], platform)
                if root is None and option.required:
                    key = PLATFORM_KEYS.get(platform, platform)
                    raise ConfigError(
                        f'location "{self.name}": field "{option.name}": no root for this '
                        f"platform ({key}); add {option.name}.{key} to the sites config"
                    )
                if root is None:
                    values.pop(option.name)
                else:
                    values[option.name] = root
        return values


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A ``[[schedules]]`` entry: a sync run every N seconds or in a daily window."""

    name: str
    source: str
    destination: str
    project: str
    every: float | None = None
    window: tuple[str, str] | None = None
    filters: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class AutoReturnRule:
    """``[[auto_return]]``: components added at a matching location are sent to ``to``."""

    source: str  # a location name or glob (``*@vfxvendor.example``)
    destination: str
    filters: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class AutoSendRule:
    """``[[auto_send]]``: when a task is assigned to a matching user, send its inputs."""

    source: str
    users: tuple[str, ...]  # usernames, group:<name> or *
    filters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: ``"latest"``: the latest version of each asset under the task's parent.
    versions: str = "latest"


@dataclasses.dataclass(frozen=True)
class AccsynSettings:
    poll_interval: float = 2.0
    poll_max_interval: float = 30.0
    stall_timeout: float = 1800.0
    tasks_per_transfer: int = 500


@dataclasses.dataclass(frozen=True)
class SitesConfig:
    path: Path | None
    locations: Mapping[str, LocationConfig]
    transfer: TransferSettings = TransferSettings()
    accsyn: AccsynSettings = AccsynSettings()
    send_permission: tuple[str, ...] = ("*",)
    schedules: tuple[Schedule, ...] = ()
    auto_return: tuple[AutoReturnRule, ...] = ()
    auto_send: tuple[AutoSendRule, ...] = ()
    journal: Path | None = None

    def location(self, name: str) -> LocationConfig:
        try:
            return self.locations[name]
        except KeyError:
            known = ", ".join(sorted(self.locations)) or "none"
            raise ConfigError(
                f'unknown location "{name}"; configured locations: {known} '
                f"(see {self.path or 'the sites config'})"
            ) from None

    def scoped(self, scope: str | None = None) -> list[LocationConfig]:
        """Locations this machine configures: all, or those matching ``$FTRACK_TRANSFER_LOCATIONS``."""
        scope = os.environ.get(SCOPE_ENV, "") if scope is None else scope
        patterns = [p.strip() for p in scope.split(",") if p.strip()]
        if not patterns:
            return list(self.locations.values())
        return [
            loc
            for loc in self.locations.values()
            if any(fnmatch.fnmatchcase(loc.name, p) for p in patterns)
        ]

    def settings_for(self, source: str, destination: str) -> TransferSettings:
        """Transfer settings of a send: defaults, then the source's, then the destination's."""
        settings = self.transfer
        for name in (source, destination):
            if name in self.locations:
                settings = settings.merged(self.locations[name].transfer)
        return settings

    def journal_path(self) -> Path:
        return self.journal or default_journal_path()


def resolve_root(roots: Mapping[str, str] | str, platform: str = sys.platform) -> str | None:
    """Pick the root for *platform* (a ``sys.platform`` value) from a per-OS table."""
    if isinstance(roots, str):
        return roots
    return roots.get(PLATFORM_KEYS.get(platform, platform))


# --------------------------------------------------------------------------- loading


#: path -> ((mtime in ns, size), config). The size is part of the key because file
#: systems stamp times with a coarse clock: two quick edits can share one mtime.
_cache: dict[Path, tuple[tuple[int, int], SitesConfig]] = {}


def load_config(path: str | os.PathLike[str] | None = None, *, cached: bool = True) -> SitesConfig:
    """Read and validate the sites config (see :func:`config_path` for which file).

    Results are cached per file and modification time, so every ftrack session of a
    long-running process reads the file once and picks up edits.
    """
    resolved = config_path(path)
    try:
        info = resolved.stat()
    except FileNotFoundError:
        raise ConfigError(
            f"{resolved}: sites config not found; pass --config, set {CONFIG_ENV}, "
            f"or create it (see docs/configuration.md)"
        ) from None
    stamp = (info.st_mtime_ns, info.st_size)
    if cached and resolved in _cache and _cache[resolved][0] == stamp:
        return _cache[resolved][1]
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{resolved}: cannot read the sites config: {error}") from None
    config = parse_config(text, resolved)
    _cache[resolved] = (stamp, config)
    return config


def parse_config(text: str, path: Path | None = None) -> SitesConfig:
    """Validate TOML *text* into a :class:`SitesConfig`; *path* is used in messages
    and as the base of relative file paths."""
    where = str(path) if path else "sites config"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        twice = re.search(r"Cannot declare \('locations', '([^']+)'\) twice", message)
        line = re.search(r"line (\d+)", message)
        if twice:
            raise ConfigError(
                f'{where}: duplicate location "{twice.group(1)}"'
                + (f" (line {line.group(1)})" if line else "")
                + "; each location must appear once"
            ) from None
        raise ConfigError(f"{where}: not valid TOML: {message}") from None
    return _Parser(where, path.parent if path else Path.cwd()).config(data, path)


class _Parser:
    """Turns the decoded TOML into dataclasses, one clear error per problem."""

    def __init__(self, where: str, base_dir: Path) -> None:
        self.where = where
        self.base_dir = base_dir

    def fail(
        self,
        message: str,
        location: str | None = None,
        field: str | None = None,
        *,
        rule: str | None = None,
    ) -> ConfigError:
        """One line: the file, then the location or rule (``schedule "nightly"``), then
        the field, then what is wrong and how to fix it."""
        parts = [self.where]
        if rule is not None:
            parts.append(rule)
        if location is not None:
            parts.append(f'location "{location}"')
        if field is not None:
            parts.append(f'field "{field}"')
        return ConfigError(": ".join(parts) + ": " + message)

    # ------------------------------------------------------------------ top level

    def config(self, data: Mapping[str, Any], path: Path | None) -> SitesConfig:
        known = {
            "locations", "transfer", "accsyn", "permissions", "schedules",
            "auto_return", "auto_send", "journal",
        }  # fmt: skip
        for key in data:
            if key not in known:
                raise self.fail(f'unknown section "{key}"; known: {", ".join(sorted(known))}')
        raw_locations = data.get("locations", {})
        if not isinstance(raw_locations, Mapping) or not raw_locations:
            raise self.fail('no locations; add at least one [locations."<name>"] table')
        transfer = self.transfer(data.get("transfer", {}), None)
        locations: dict[str, LocationConfig] = {}
        seen: dict[str, str] = {}
        for name, table in raw_locations.items():
            folded = name.casefold()
            if folded in seen:
                raise self.fail(
                    f'duplicate location (same name as "{seen[folded]}" apart from case; '
                    "ftrack location names are unique regardless of case)",
                    name,
                )
            seen[folded] = name
            locations[name] = self.location(name, table)
        for loc in locations.values():
            if loc.return_to is not None and loc.return_to not in locations:
                raise self.fail(f'unknown location "{loc.return_to}"', loc.name, "return_to")
        journal = data.get("journal")
        if journal is not None and not isinstance(journal, str):
            raise self.fail('field "journal": expected a file path')
        return SitesConfig(
            path=path,
            locations=locations,
            transfer=transfer,
            accsyn=self.accsyn(data.get("accsyn", {})),
            send_permission=self.permissions(data.get("permissions", {})),
            schedules=self.schedules(self.list_of_tables(data, "schedules"), locations),
            auto_return=tuple(
                self.auto_return(i, r, locations)
                for i, r in enumerate(self.list_of_tables(data, "auto_return"))
            ),
            auto_send=tuple(
                self.auto_send(i, r, locations)
                for i, r in enumerate(self.list_of_tables(data, "auto_send"))
            ),
            journal=self.path(journal, None, "journal") if journal else None,
        )

    def permissions(self, table: Any) -> tuple[str, ...]:
        if not isinstance(table, Mapping):
            raise self.fail('"permissions" must be a table ([permissions])')
        for key in table:
            if key != "send":
                raise self.fail(
                    "unknown setting; allowed: send (who may send from or to a location "
                    "at all; per location: readers and writers)",
                    field=f"permissions.{key}",
                )
        return self.principals(table.get("send", ["*"]), None, "permissions.send")

    def list_of_tables(self, data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.fail(f'"{key}" must be a list of tables ([[{key}]])')
        return value

    # ------------------------------------------------------------------ locations

    def location(self, name: str, table: Any) -> LocationConfig:
        if not isinstance(table, Mapping):
            raise self.fail("expected a table of fields", name)
        if not name.strip() or name != name.strip():
            raise self.fail("location names cannot be empty or start/end with spaces", name)
        if '"' in name or any(ord(c) < 32 for c in name):
            raise self.fail("location names cannot contain quotes or control characters", name)
        if name.lower().startswith("ftrack."):
            raise self.fail("the name is reserved by ftrack (ftrack.*); choose another name", name)
        accessor = table.get("accessor")
        if accessor is None:
            raise self.fail('missing required field "accessor"', name)
        known = available()
        if not isinstance(accessor, str) or accessor not in known:
            raise self.fail(
                f'unknown accessor "{accessor}"; known accessors: {", ".join(sorted(known))}',
                name,
                "accessor",
            )
        options_spec = {o.name: o for o in accessor_class(accessor).options}
        party = table.get("accsyn")
        if party is None and "@" in name:
            party = name
        if party is not None and (not isinstance(party, str) or not _PARTY.match(party)):
            raise self.fail(
                f'bad accsyn party {party!r}; use "site=<code>" or a user e-mail', name, "accsyn"
            )
        options: dict[str, Any] = {}
        for field, value in table.items():
            if field in _LOCATION_FIELDS:
                continue
            if field not in options_spec:
                if _looks_secret(field):
                    raise self.fail(_CREDENTIALS_ELSEWHERE, name, field)
                allowed = ", ".join(sorted(set(options_spec) | _LOCATION_FIELDS))
                raise self.fail(
                    f"unknown field for a {accessor} location; allowed: {allowed}", name, field
                )
            options[field] = self.option(options_spec[field], value, name)
        if accessor == "accsyn" and "party" not in options and party:
            options["party"] = party
        for option in options_spec.values():
            if option.required and option.name not in options:
                raise self.fail(f'missing required field "{option.name}"', name)
        priority = table.get("priority", 50)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise self.fail(f"expected an integer, got {priority!r}", name, "priority")
        backend = table.get("backend", "direct")
        if backend not in ("direct", "accsyn"):
            raise self.fail(f'expected "direct" or "accsyn", got {backend!r}', name, "backend")
        if backend == "accsyn" and not party:
            raise self.fail(
                'backend "accsyn" needs an accsyn party; set accsyn = "site=<code>"',
                name,
                "backend",
            )
        return_to = table.get("return_to")
        if return_to is not None and not isinstance(return_to, str):
            raise self.fail("expected a location name", name, "return_to")
        location = LocationConfig(
            name=name,
            accessor=accessor,
            options=options,
            structure=self.structure(table.get("structure", "template"), name),
            priority=priority,
            label=self.text(table.get("label", ""), name, "label"),
            description=self.text(table.get("description", ""), name, "description"),
            accsyn_party=party,
            backend=backend,
            transfer=self.transfer_overrides(table.get("transfer", {}), name),
            return_to=return_to,
            readers=self.principals(table.get("readers", ["*"]), name, "readers"),
            writers=self.principals(table.get("writers", ["*"]), name, "writers"),
        )
        self.check_accessor(location, options_spec)
        return location

    def check_accessor(self, location: LocationConfig, spec: Mapping[str, Option]) -> None:
        """Build the accessor once and drop it, so what only its constructor can judge (an
        SFTP root that is not absolute, an unknown S3 addressing style) fails here and not
        half-way through starting an ftrack session. Building never connects (the
        accessor contract), so this stays offline and fast."""
        try:
            values = location.resolved_options()
        except ConfigError:
            return  # no root for this OS: valid for the others, nothing to build here
        try:
            accessor = accessor_class(location.accessor).from_options(values)
        except (TypeError, ValueError, AccessorConfigurationError) as error:
            message = str(error)
            # Accessors name the option as "option '<name>'" in their messages.
            named = re.search(r"\boption '([A-Za-z_]+)'", message)
            field = named.group(1) if named and named.group(1) in spec else None
            raise self.fail(message, location.name, field) from None
        accessor.close()

    def text(self, value: Any, location: str, field: str) -> str:
        if not isinstance(value, str):
            raise self.fail(f"expected text, got {value!r}", location, field)
        return value

    def option(self, option: Option, value: Any, location: str) -> Any:
        kind = option.kind
        try:
            if kind == "str":
                if not isinstance(value, str):
                    raise ValueError(f"expected text, got {value!r}")
                return value
            if kind == "int":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"expected an integer, got {value!r}")
                return value
            if kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"expected true or false, got {value!r}")
                return value
            if kind == "size":
                return units.parse_size(value)
            if kind == "duration":
                return units.parse_duration(value)
            if kind == "list":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("expected a list of strings")
                return list(value)
            if kind == "path":
                return str(self.path(value, location, option.name, must_exist=option.must_exist))
            if kind == "roots":
                return self.roots(value)
        except ValueError as error:
            raise self.fail(str(error), location, option.name) from None
        raise AssertionError(f"option kind {kind!r} of {option.name} is not handled")

    def path(self, value: Any, location: str | None, field: str, must_exist: bool = False) -> Path:
        if not isinstance(value, str) or not value:
            raise self.fail(f"expected a file path, got {value!r}", location, field)
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.base_dir / path
        if must_exist:
            try:
                with path.open("rb"):
                    pass
            except OSError as error:
                raise self.fail(
                    f'cannot read "{path}": {error.strerror or error}', location, field
                ) from None
        return path

    def roots(self, value: Any) -> str | dict[str, str]:
        if isinstance(value, str):
            if not value:
                raise ValueError("expected a non-empty root path")
            # A relative root would follow the working directory of whichever process
            # opened the session, so files would land somewhere different each time.
            if not value.startswith(("/", "~")) and not _WINDOWS_ROOT.match(value):
                raise ValueError(
                    f"root {value!r} must be an absolute path (/mnt/projects, P:\\projects "
                    "or \\\\server\\share), or a per-OS table"
                )
            return value
        if not isinstance(value, Mapping) or not value:
            raise ValueError(
                'expected a path, or a table such as { linux = "/mnt/projects", windows = "P:\\\\projects" }'
            )
        roots: dict[str, str] = {}
        for key, root in value.items():
            if key not in _ROOT_KEYS:
                raise ValueError(f'unknown platform "{key}"; use linux, windows or macos')
            if not isinstance(root, str) or not root:
                raise ValueError(f"root for {key} must be a non-empty path")
            if key == "windows" and not _WINDOWS_ROOT.match(root):
                raise ValueError(
                    f"windows root {root!r} must start with a drive letter (P:\\) or be a UNC path (\\\\server\\share)"
                )
            if key in ("linux", "macos") and not root.startswith(("/", "~")):
                raise ValueError(f"{key} root {root!r} must be an absolute path")
            roots[key] = root
        return roots

    def structure(self, value: Any, location: str) -> StructureConfig:
        if isinstance(value, str):
            name, options = value, {}
        elif isinstance(value, Mapping) and isinstance(value.get("name"), str):
            name, options = value["name"], {k: v for k, v in value.items() if k != "name"}
        else:
            raise self.fail(
                'expected a structure name or a table with "name"', location, "structure"
            )
        if name not in STRUCTURES:
            raise self.fail(
                f'unknown structure "{name}"; known structures: {", ".join(sorted(STRUCTURES))}',
                location,
                "structure",
            )
        allowed = structure_options(name)
        for key, option_value in options.items():
            if key not in allowed:
                names = ", ".join(sorted(allowed)) or "none"
                raise self.fail(
                    f"unknown option for the {name} structure; allowed: {names}",
                    location,
                    f"structure.{key}",
                )
            if not isinstance(option_value, str | bool):
                raise self.fail(
                    f"expected text or true/false, got {option_value!r}",
                    location,
                    f"structure.{key}",
                )
        try:
            from ..structures import build_structure

            build_structure(name, options)  # templates are checked here, not at first use
        except ValueError as error:
            raise self.fail(str(error), location, "structure") from None
        return StructureConfig(name, dict(options))

    def principals(self, value: Any, location: str | None, field: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail('expected a list of usernames, "group:<name>" or "*"', location, field)
        return tuple(value)

    # ------------------------------------------------------------------ transfer

    _TRANSFER_KINDS = {
        "chunk_size": "size",
        "streams": "count",
        "files_in_flight": "count",
        "bandwidth": "rate",
        "verify": "verify",
        "retries": "int",
        "retry_wait": "duration",
        "retry_max_wait": "duration",
        "job_update_interval": "duration",
    }

    def transfer_overrides(self, table: Any, location: str | None) -> dict[str, Any]:
        field_prefix = "transfer."
        if not isinstance(table, Mapping):
            raise self.fail("expected a table", location, "transfer")
        values: dict[str, Any] = {}
        for key, value in table.items():
            kind = self._TRANSFER_KINDS.get(key)
            field = field_prefix + key
            if location is not None and key == "job_update_interval":
                # Every job has one ftrack Job entity, updated by one loop.
                raise self.fail(
                    "set it in [transfer]: it applies to every job, not per location",
                    location,
                    field,
                )
            if kind is None:
                if _looks_secret(key):
                    raise self.fail(_CREDENTIALS_ELSEWHERE, location, field)
                allowed = ", ".join(sorted(self._TRANSFER_KINDS))
                raise self.fail(f"unknown transfer setting; allowed: {allowed}", location, field)
            try:
                if kind == "size":
                    values[key] = units.parse_size(value)
                    if values[key] < 64 * 1024:
                        raise ValueError(f"chunk size {value!r} is too small; use at least 64KiB")
                elif kind == "rate":
                    values[key] = units.parse_rate(value)
                elif kind == "duration":
                    values[key] = units.parse_duration(value)
                elif kind == "verify":
                    if value not in VERIFY_LEVELS:
                        raise ValueError(
                            f"expected one of {', '.join(VERIFY_LEVELS)}, got {value!r}"
                        )
                    values[key] = value
                else:
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise ValueError(f"expected an integer, got {value!r}")
                    if kind == "count" and not 1 <= value <= 256:
                        raise ValueError(f"expected a number from 1 to 256, got {value}")
                    if value < 0:
                        raise ValueError(f"expected zero or more, got {value}")
                    values[key] = value
            except ValueError as error:
                raise self.fail(str(error), location, field) from None
        return values

    def transfer(self, table: Any, location: str | None) -> TransferSettings:
        return TransferSettings().merged(self.transfer_overrides(table, location))

    def accsyn(self, table: Any) -> AccsynSettings:
        if not isinstance(table, Mapping):
            raise self.fail('"accsyn" must be a table')
        values: dict[str, Any] = {}
        for key, value in table.items():
            field = f"accsyn.{key}"
            try:
                if key in ("poll_interval", "poll_max_interval", "stall_timeout"):
                    values[key] = units.parse_duration(value)
                elif key == "tasks_per_transfer":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                        raise ValueError(f"expected a positive integer, got {value!r}")
                    values[key] = value
                elif _looks_secret(key):
                    raise ValueError(_CREDENTIALS_ELSEWHERE)
                else:
                    raise ValueError(
                        "unknown setting; allowed: poll_interval, poll_max_interval, "
                        "stall_timeout, tasks_per_transfer"
                    )
            except ValueError as error:
                raise self.fail(f'field "{field}": {error}') from None
        return AccsynSettings(**values)

    # ------------------------------------------------------------------ rules

    def check_fields(self, table: Mapping[str, Any], allowed: set[str], rule: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(
                    f"unknown field; allowed: {', '.join(sorted(allowed))}", field=key, rule=rule
                )

    def known_location(
        self, value: Any, locations: Mapping[str, LocationConfig], rule: str, field: str
    ) -> str:
        if value is None:
            raise self.fail("missing; name a configured location", field=field, rule=rule)
        if not isinstance(value, str) or value not in locations:
            raise self.fail(
                f"unknown location {value!r}; configured: {', '.join(sorted(locations))}",
                field=field,
                rule=rule,
            )
        return value

    def filters(self, value: Any, rule: str) -> dict[str, Any]:
        if value is None:
            return {}
        allowed = {"asset_types", "task_types", "statuses", "components", "max_age", "assets"}
        if not isinstance(value, Mapping):
            raise self.fail(
                'expected a table such as { asset_types = ["Plate"] }', field="filter", rule=rule
            )
        result: dict[str, Any] = {}
        for key, item in value.items():
            field = f"filter.{key}"
            if key not in allowed:
                raise self.fail(
                    f"unknown filter; allowed: {', '.join(sorted(allowed))}", field=field, rule=rule
                )
            if key == "max_age":
                try:
                    result[key] = units.parse_duration(item)
                except ValueError as error:
                    raise self.fail(str(error), field=field, rule=rule) from None
            else:
                if isinstance(item, str):
                    item = [item]
                if not isinstance(item, list) or not all(isinstance(v, str) for v in item):
                    raise self.fail("expected a list of names", field=field, rule=rule)
                result[key] = tuple(item)
        return result

    def schedules(
        self, tables: list[Mapping[str, Any]], locations: Mapping[str, LocationConfig]
    ) -> tuple[Schedule, ...]:
        schedules: list[Schedule] = []
        for index, table in enumerate(tables):
            schedule = self.schedule(index, table, locations)
            # Runs are journaled by name: two schedules sharing one would share a history.
            if any(s.name == schedule.name for s in schedules):
                raise self.fail(
                    "two schedules have this name; give each a unique name",
                    field="name",
                    rule=f'schedule "{schedule.name}"',
                )
            schedules.append(schedule)
        return tuple(schedules)

    def schedule(
        self, index: int, table: Mapping[str, Any], locations: Mapping[str, LocationConfig]
    ) -> Schedule:
        name = table.get("name", f"schedule-{index + 1}")
        if not isinstance(name, str) or not name.strip():
            raise self.fail(
                f"expected a non-empty name, got {name!r}",
                field="name",
                rule=f"schedule {index + 1}",
            )
        rule = f'schedule "{name}"'
        self.check_fields(
            table, {"name", "from", "to", "project", "every", "window", "filter"}, rule
        )
        source = self.known_location(table.get("from"), locations, rule, "from")
        destination = self.known_location(table.get("to"), locations, rule, "to")
        if source == destination:
            raise self.fail(
                f'"from" and "to" are the same location ({source})', field="to", rule=rule
            )
        project = table.get("project")
        if not isinstance(project, str) or not project:
            raise self.fail("missing; name the ftrack project", field="project", rule=rule)
        every = window = None
        if "every" in table:
            try:
                every = units.parse_duration(table["every"])
            except ValueError as error:
                raise self.fail(str(error), field="every", rule=rule) from None
            if every < 1:
                raise self.fail("must be at least 1s", field="every", rule=rule)
        if "window" in table:
            match = re.fullmatch(
                r"(([01]\d|2[0-3]):[0-5]\d)-(([01]\d|2[0-3]):[0-5]\d)", str(table["window"])
            )
            if not match:
                raise self.fail(
                    f'expected "HH:MM-HH:MM" on a 24-hour clock, got {table["window"]!r}',
                    field="window",
                    rule=rule,
                )
            window = (match.group(1), match.group(3))
        if (every is None) == (window is None):
            raise self.fail(
                'set exactly one of "every" (e.g. "15m") or "window" (e.g. "01:00-05:00")',
                rule=rule,
            )
        return Schedule(
            name,
            source,
            destination,
            project,
            every,
            window,
            self.filters(table.get("filter"), rule),
        )

    def auto_return(
        self, index: int, table: Mapping[str, Any], locations: Mapping[str, LocationConfig]
    ) -> AutoReturnRule:
        rule = f"auto_return {index + 1}"
        self.check_fields(table, {"from", "to", "filter"}, rule)
        source = table.get("from")
        if not isinstance(source, str) or not source:
            raise self.fail(
                'missing; name a location or a pattern such as "*@vendor.example"',
                field="from",
                rule=rule,
            )
        if not any(fnmatch.fnmatchcase(n, source) for n in locations):
            raise self.fail(
                f"{source!r} matches no configured location; configured: "
                f"{', '.join(sorted(locations))}",
                field="from",
                rule=rule,
            )
        destination = self.known_location(table.get("to"), locations, rule, "to")
        return AutoReturnRule(source, destination, self.filters(table.get("filter"), rule))

    def auto_send(
        self, index: int, table: Mapping[str, Any], locations: Mapping[str, LocationConfig]
    ) -> AutoSendRule:
        rule = f"auto_send {index + 1}"
        self.check_fields(table, {"from", "users", "filter", "versions"}, rule)
        source = self.known_location(table.get("from"), locations, rule, "from")
        value = table.get("users", ["*"])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(
                'expected a list of usernames, "group:<name>" or "*"', field="users", rule=rule
            )
        versions = table.get("versions", "latest")
        if versions not in ("latest", "all"):
            raise self.fail(
                f'expected "latest" or "all", got {versions!r}', field="versions", rule=rule
            )
        return AutoSendRule(source, tuple(value), self.filters(table.get("filter"), rule), versions)


def matches_principal(principals: Iterable[str], username: str, groups: Iterable[str]) -> bool:
    """Whether a user (with ftrack *groups*) is one of *principals* (``*``, name, ``group:x``)."""
    group_set = {g.casefold() for g in groups}
    for principal in principals:
        if principal == "*" or principal.casefold() == username.casefold():
            return True
        if principal.startswith("group:") and principal[6:].casefold() in group_set:
            return True
    return False
