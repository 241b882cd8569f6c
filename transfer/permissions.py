"""Who may do what: send permission, reading and writing locations, publishing into tasks.

Principals in the sites config are usernames, ``group:<ftrack group name>`` or ``*``.
Group membership and task assignments are read from ftrack, so the studio manages
them where it manages people.
"""

from __future__ import annotations

import time
from typing import Any

from .config import SitesConfig, matches_principal
from .errors import NotAllowedError

_GROUP_CACHE_SECONDS = 60.0
_group_cache: dict[str, tuple[float, tuple[str, ...]]] = {}


def user_groups(session: Any, user_id: str) -> tuple[str, ...]:
    """Names of the ftrack groups *user_id* belongs to (cached for a minute)."""
    cached = _group_cache.get(user_id)
    if cached and time.monotonic() - cached[0] < _GROUP_CACHE_SECONDS:
        return cached[1]
    rows = session.query(f'select group.name from Membership where user_id is "{user_id}"')
    groups = tuple(sorted({row["group"]["name"] for row in rows}))
    _group_cache[user_id] = (time.monotonic(), groups)
    return groups


def may_send(config: SitesConfig, username: str, groups: tuple[str, ...]) -> bool:
    return matches_principal(config.send_permission, username, groups)


def check_send(
    config: SitesConfig,
    username: str,
    groups: tuple[str, ...],
    source: str,
    destinations: list[str],
) -> None:
    """Raise NotAllowedError unless the user may read *source* and write every destination."""
    if not may_send(config, username, groups):
        raise NotAllowedError(
            f"{username} may not send; the sites config allows: {', '.join(config.send_permission)}"
        )
    if not matches_principal(config.location(source).readers, username, groups):
        raise NotAllowedError(
            f"{username} may not send from {source} (not among its readers in the sites config)"
        )
    for destination in destinations:
        if not matches_principal(config.location(destination).writers, username, groups):
            raise NotAllowedError(
                f"{username} may not send to {destination} (not among its writers in the sites config)"
            )


def check_assigned(session: Any, user: Any, task: Any) -> None:
    """Raise NotAllowedError unless *task* is assigned to *user* (an ftrack Appointment)."""
    assignment = session.query(
        f'select id from Appointment where context_id is "{task["id"]}" '
        f'and resource_id is "{user["id"]}" and type is "assignment"'
    ).first()
    if assignment is None:
        raise NotAllowedError(
            f"task {task['name']} ({task['id']}) is not assigned to {user['username']}; "
            "vendors can only publish into their own tasks - ask the coordinator to assign it"
        )
