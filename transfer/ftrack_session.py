"""ftrack sessions for ftrack-transfer's own processes.

Every session gets the configure-location plugin, so the sites config's locations are
configured whatever ``FTRACK_EVENT_PLUGIN_PATH`` says; the user's own plugin paths are
kept. The plugin reads the sites config named by ``$FTRACK_TRANSFER_CONFIG`` (the CLI
sets it from ``--config``). Credentials come from the environment (``FTRACK_SERVER``, ``FTRACK_API_USER``,
``FTRACK_API_KEY``) as for any ftrack_api script.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import ftrack_api

from .errors import UserError

PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"


def plugin_paths() -> list[str]:
    """The user's plugin paths plus ours, without duplicates."""
    paths = [p for p in os.environ.get("FTRACK_EVENT_PLUGIN_PATH", "").split(os.pathsep) if p]
    resolved = {str(Path(p).resolve()) for p in paths}
    if str(PLUGIN_DIR) not in resolved:
        paths.append(str(PLUGIN_DIR))
    return paths


def open_session(
    *,
    connect_event_hub: bool = False,
    api_user: str | None = None,
    api_key: str | None = None,
) -> ftrack_api.Session:
    """A session with the sites config's locations configured.

    Connection problems become a one-line :class:`UserError` naming the server and
    the environment variables to check; the API key is never echoed.
    """
    if not os.environ.get("FTRACK_SERVER"):
        raise UserError(
            "FTRACK_SERVER is not set; point it at your ftrack server (or source a sandbox env.sh)"
        )
    try:
        session = ftrack_api.Session(
            api_user=api_user, api_key=api_key, plugin_paths=plugin_paths()
        )
        if connect_event_hub:
            # Connecting here rather than with auto_connect_event_hub avoids the client's
            # race that announces early subscribers twice.
            session.event_hub.connect()
        return session
    except ftrack_api.exception.ServerError as error:
        text = str(error)
        if (
            "credentials" in text.lower()
            or "api key" in text.lower()
            or "InvalidCredentials" in text
        ):
            raise UserError(
                f"ftrack at {os.environ['FTRACK_SERVER']} refused the credentials of "
                f"{api_user or os.environ.get('FTRACK_API_USER', 'the API user')}; check FTRACK_API_USER "
                "and FTRACK_API_KEY"
            ) from None
        raise UserError(
            f"ftrack at {os.environ['FTRACK_SERVER']} reported an error: {text}"
        ) from None
    except OSError as error:  # requests' ConnectionError is an OSError
        raise UserError(
            f"cannot reach ftrack at {os.environ['FTRACK_SERVER']}: {type(error).__name__}; check FTRACK_SERVER"
        ) from None


def session_factory(**kwargs) -> Callable[[], ftrack_api.Session]:
    return lambda: open_session(**kwargs)
