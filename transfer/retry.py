"""The engine's retry policy: exponential backoff with jitter, interruptible.

Accessors retry their own requests a few times (``accessors/retry.py``); what still fails
transiently reaches the engine, which retries the whole step more patiently with the
``[transfer]`` settings (``retries``, ``retry_wait``, ``retry_max_wait``). A cancel or a
shutdown interrupts the wait at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import tenacity

from ..accessors.retry import with_retries
from .config import TransferSettings

T = TypeVar("T")

logger = logging.getLogger(__name__)


class Cancelled(Exception):
    """The job was cancelled or the process is shutting down; the work stays resumable."""


def retry(
    operation: Callable[[], T],
    settings: TransferSettings,
    *,
    transient: Callable[[BaseException], bool],
    interrupt: threading.Event,
    what: str = "",
) -> T:
    """Run *operation*; retry while it fails with an error *transient* accepts."""

    def sleep(seconds: float) -> None:
        if interrupt.wait(seconds):
            raise Cancelled()

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.info(
            "%s failed (attempt %d): %s; retrying", what or "operation", state.attempt_number, error
        )

    def retrying() -> tenacity.Retrying:
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(transient),
            wait=tenacity.wait_exponential_jitter(
                multiplier=settings.retry_wait,
                max=settings.retry_max_wait,
                jitter=settings.retry_wait,
            ),
            stop=tenacity.stop_after_attempt(settings.retries + 1),
            sleep=sleep,
            before_sleep=log_retry,
            reraise=True,
        )

    return with_retries(operation, transient, retrying)
