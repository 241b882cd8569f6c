"""ftrack sessions for ftrack-transfer's own processes.

Every session gets the configure-location plugin, so the sites config's locations are
configured whatever ``FTRACK_EVENT_PLUGIN_PATH`` says; the user's own plugin paths are
kept. The plugin reads the sites config named by ``$FTRACK_TRANSFER_CONFIG`` (the CLI
sets it from ``--config``). Credentials come from the environment (``FTRACK_SERVER``, ``FTRACK_API_USER``,
``FTRACK_API_KEY``) as for any ftrack_api script.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ftrack_api
import requests
import tenacity

from .errors import UserError

logger = logging.getLogger(__name__)

PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"

#: Attempts per ftrack request before a transient failure is given up on.
FTRACK_ATTEMPTS = 6
#: Replies that mean "the server is busy or restarting, try again": a 5xx or 429 page
#: from a proxy (ftrack_api raises it as a JSON decode error or an "unexpected format"
#: ServerError), or ftrack's own service-unavailable answer.
_TRANSIENT_REPLY = re.compile(
    r"unexpected format|ServiceUnavailable|^(429|5\d\d) (Client|Server) Error", re.IGNORECASE
)


def is_transient(error: BaseException) -> bool:
    """Whether an ftrack request failure is worth retrying (the server or link is busy)."""
    if isinstance(error, requests.exceptions.RequestException | json.JSONDecodeError):
        # A dropped or refused connection, a timeout, or an HTML error page (a 502 from
        # a proxy reaches us as the bare JSON decode error ftrack_api re-raises).
        return True
    if isinstance(error, ftrack_api.exception.ServerError):
        return bool(_TRANSIENT_REPLY.search(str(error).removeprefix("Server reported error: ")))
    return False


class RetryingSession(ftrack_api.Session):
    """A session whose requests survive a busy ftrack: a dropped connection, a 5xx or 429
    reply is retried with backoff before anything sees it.

    A retried write may already have been applied before its reply was lost. Entities
    carry ids made by the client, so the replay is refused as a duplicate rather than
    applied twice; the product's writes are written to expect that (see the registrar
    and :meth:`JobReporter.create_job`).
    """

    def call(self, data: Any) -> Any:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
            stop=tenacity.stop_after_attempt(FTRACK_ATTEMPTS),
            reraise=True,
            before_sleep=lambda state: logger.info(
                "ftrack request failed (%s); retrying",
                describe_failure(state.outcome.exception()) if state.outcome else "?",
            ),
        )
        return retrying(super().call, data)


def describe_failure(error: BaseException | None) -> str:
    """A short, secret-free name for a failed ftrack request."""
    if isinstance(error, json.JSONDecodeError):
        return "an error page instead of an answer"
    return type(error).__name__


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
    if not (api_key or os.environ.get("FTRACK_API_KEY")):
        # ftrack_api would raise a TypeError: a traceback instead of the fix.
        raise UserError(
            "FTRACK_API_KEY is not set; set it to the API key of FTRACK_API_USER (or source a sandbox env.sh)"
        )
    try:
        with _server_errors_unlogged():
            session = RetryingSession(
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
    except (OSError, json.JSONDecodeError) as error:  # requests' errors are OSErrors
        raise UserError(
            f"cannot reach ftrack at {os.environ['FTRACK_SERVER']}: {describe_failure(error)}; "
            "check FTRACK_SERVER"
        ) from None


@contextlib.contextmanager
def _server_errors_unlogged() -> Iterator[None]:
    """Keep ftrack_api from logging (with an empty traceback) the server error a session
    cannot be opened for: it is raised to us, and the user gets it as one line."""
    thread = threading.get_ident()

    def keep(record: logging.LogRecord) -> bool:
        return not (
            record.thread == thread and record.getMessage().startswith("Server reported error")
        )

    session_logger = logging.getLogger(f"{ftrack_api.session.__name__}.{RetryingSession.__name__}")
    session_logger.addFilter(keep)
    try:
        yield
    finally:
        session_logger.removeFilter(keep)


def session_factory(**kwargs) -> Callable[[], ftrack_api.Session]:
    return lambda: open_session(**kwargs)
