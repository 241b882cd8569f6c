"""Low-level retries shared by the network accessors.

A dropped connection or a throttled reply is retried a few times inside the accessor,
with exponential backoff and full jitter (so parallel chunk workers that failed together
do not come back together). When the attempts are spent the accessor raises
:class:`~.errors.TransientAccessorError`, and the engine's own, slower retries take over.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TypeVar

import tenacity

from .errors import TransientAccessorError

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one operation is retried.

    The wait before retry *n* is a random value between 0 and
    ``min(maximum, initial * 2 ** n)`` ("full jitter").
    """

    attempts: int = 5
    initial: float = 0.1
    maximum: float = 10.0

    def call(
        self,
        operation: Callable[[], T],
        *,
        is_transient: Callable[[BaseException], bool],
        give_up: Callable[[BaseException, int], TransientAccessorError],
        what: str = "",
    ) -> T:
        """Run *operation*, retrying it while it fails with a transient error.

        *give_up* builds the error raised once the attempts are spent, from the last
        failure and the number of attempts made.
        """

        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.info("retrying %s after attempt %d failed: %s", what, state.attempt_number, error)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, self.attempts)),
            wait=tenacity.wait_random_exponential(multiplier=self.initial, max=self.maximum),
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=log_retry,
            reraise=True,
        )
        attempts = 0

        def counted() -> T:
            nonlocal attempts
            attempts += 1
            return operation()

        try:
            return retrying(counted)
        except Exception as error:
            if is_transient(error):
                raise give_up(error, attempts) from error
            raise
