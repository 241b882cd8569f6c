"""The configure-location plugin: the sites config's locations in every ftrack session.

``register(session)`` subscribes to ``ftrack.api.session.configure-location``; when a
session starts, every location of the sites config (or of its scope on this machine)
is ensured in ftrack and given its accessor, structure and priority. Actions, the CLI
and any studio script therefore see the same locations.

Nothing here connects to storage: accessors open connections on first use, so a session
starts fast when a site is down. Accessor objects are shared by the sessions of one
process (keyed by location and options), so their connection pools are too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import ftrack_api

from ..accessors import accessor_class
from ..accessors.base import TransferAccessor
from ..accessors.errors import AccessorConfigurationError
from ..structures import build_structure
from .config import LocationConfig, SitesConfig, load_config
from .errors import ConfigError

logger = logging.getLogger(__name__)

_accessors: dict[tuple[str, str], TransferAccessor] = {}
_accessors_lock = threading.Lock()


def build_accessor(location: LocationConfig) -> TransferAccessor:
    """The accessor of a configured location, shared within this process."""
    options = location.resolved_options()
    key = (location.name, repr(sorted(options.items())) + location.accessor)
    with _accessors_lock:
        accessor = _accessors.get(key)
        if accessor is None:
            try:
                accessor = accessor_class(location.accessor).from_options(options)
            except (TypeError, ValueError, AccessorConfigurationError) as error:
                raise ConfigError(f'location "{location.name}": {error}') from None
            _accessors[key] = accessor
        return accessor


def close_accessors() -> None:
    """Close every shared accessor (connection pools); used at process shutdown."""
    with _accessors_lock:
        for accessor in _accessors.values():
            try:
                accessor.close()
            except Exception:
                logger.debug("closing %s failed", accessor.describe(), exc_info=True)
        _accessors.clear()


def configure_locations(
    session: ftrack_api.Session, config: SitesConfig | None = None
) -> dict[str, Any]:
    """Ensure and configure the config's locations in *session*; return them by name.

    Costs one query, plus one commit when locations are missing in ftrack.
    """
    config = config or load_config()
    scoped = config.scoped()
    if not scoped:
        return {}
    names = ", ".join(f'"{loc.name}"' for loc in scoped)
    found = {
        entity["name"]: entity
        for entity in session.query(f"select name from Location where name in ({names})")
    }
    created = False
    for loc in scoped:
        if loc.name not in found:
            found[loc.name] = session.create(
                "Location",
                {"name": loc.name, "label": loc.label or loc.name, "description": loc.description},
            )
            created = True
    if created:
        session.commit()
    configured: dict[str, Any] = {}
    for loc in scoped:
        entity = found[loc.name]
        try:
            entity.accessor = build_accessor(loc)
        except ConfigError as error:
            # A location this machine cannot use (no root for this OS) stays without an
            # accessor, which ftrack treats as unusable; the reason is logged, and a
            # send to or from it names it.
            logger.warning("%s", error)
            continue
        entity.structure = build_structure(loc.structure.name, loc.structure.options)
        entity.priority = loc.priority
        configured[loc.name] = entity
    # Remembered on the session, so product code using it does not configure again.
    session.ftrack_transfer_locations = (config.path, configured)
    logger.debug("configured locations: %s", ", ".join(configured))
    return configured


def register(session: ftrack_api.Session, config_path: str | None = None, **_: Any) -> None:
    """ftrack plugin entry point (also usable programmatically).

    *config_path* overrides ``$FTRACK_TRANSFER_CONFIG`` for this session; a config error
    is raised from the session's constructor, before anything touches storage.
    """
    if not isinstance(session, ftrack_api.Session):
        return
    # Read here, not only in the handler: ftrack logs and swallows exceptions raised by
    # event handlers, but lets those of register() out of Session(), which is where a
    # broken sites config has to be reported.
    load_config(config_path)

    def on_configure(event: Mapping[str, Any]) -> None:
        # Read again (cached per file version) so session.reset() picks up edits.
        configure_locations(event["data"]["session"], load_config(config_path))

    session.event_hub.subscribe("topic=ftrack.api.session.configure-location", on_configure)
