"""The two retry layers: an accessor's quick retries and the engine's patient ones.

Pure logic, no server: what matters to a user is how many times a step is tried, that
a permanent error is never retried, and what is raised once the attempts are spent.
"""

from __future__ import annotations

import logging
import threading

import pytest
from ftrack_transfer.accessors.errors import TransientAccessorError
from ftrack_transfer.accessors.retry import RetryPolicy
from ftrack_transfer.transfer.config import TransferSettings
from ftrack_transfer.transfer.retry import Cancelled, retry


class Flaky(Exception):
    """A transient failure."""


class Broken(Exception):
    """A permanent failure."""


class Operation:
    """Fails with the given errors in turn, then returns ``"done"``."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def transient(error: BaseException) -> bool:
    return isinstance(error, Flaky)


FAST = TransferSettings(retries=3, retry_wait=0.001, retry_max_wait=0.002)
POLICY = RetryPolicy(attempts=3, initial=0.001, maximum=0.002)


def give_up(error: BaseException, attempts: int) -> TransientAccessorError:
    return TransientAccessorError(f"gave up after {attempts} attempts: {error}", "read", "a.exr")


def engine(operation: Operation, interrupt: threading.Event | None = None) -> str:
    return retry(
        operation, FAST, transient=transient, interrupt=interrupt or threading.Event(), what="x"
    )


def accessor(operation: Operation) -> str:
    return POLICY.call(operation, is_transient=transient, give_up=give_up, what="x")


@pytest.mark.parametrize("run", [engine, accessor], ids=["engine", "accessor"])
def test_a_step_that_works_is_run_once(run) -> None:
    operation = Operation()
    assert run(operation) == "done"
    assert operation.calls == 1


@pytest.mark.parametrize("run", [engine, accessor], ids=["engine", "accessor"])
def test_a_transient_failure_is_retried_and_logged(run, caplog) -> None:
    operation = Operation(Flaky("connection reset"), Flaky("connection reset"))
    with caplog.at_level(logging.INFO):
        assert run(operation) == "done"
    assert operation.calls == 3
    retried = [r.getMessage() for r in caplog.records if "connection reset" in r.getMessage()]
    assert len(retried) == 2 and "attempt 1" in retried[0] and "attempt 2" in retried[1]


@pytest.mark.parametrize("run", [engine, accessor], ids=["engine", "accessor"])
def test_a_permanent_failure_is_never_retried(run) -> None:
    operation = Operation(Broken("permission denied"))
    with pytest.raises(Broken, match="permission denied"):
        run(operation)
    assert operation.calls == 1


def test_a_permanent_failure_after_a_transient_one_stops_the_retries() -> None:
    operation = Operation(Flaky("timed out"), Broken("disk full"), Flaky("never reached"))
    with pytest.raises(Broken, match="disk full"):
        engine(operation)
    assert operation.calls == 2


def test_the_engine_raises_the_last_failure_once_its_retries_are_spent() -> None:
    operation = Operation(*(Flaky(f"reset {n}") for n in range(1, 10)))
    with pytest.raises(Flaky, match="reset 4"):
        engine(operation)
    assert operation.calls == FAST.retries + 1


def test_an_accessor_gives_up_with_the_number_of_attempts_made() -> None:
    operation = Operation(*(Flaky(f"reset {n}") for n in range(1, 10)))
    with pytest.raises(TransientAccessorError, match="gave up after 3 attempts: reset 3"):
        accessor(operation)
    assert operation.calls == POLICY.attempts


def test_a_cancel_interrupts_the_wait_between_attempts() -> None:
    interrupt = threading.Event()
    interrupt.set()
    operation = Operation(Flaky("reset"))
    with pytest.raises(Cancelled):
        engine(operation, interrupt)
    assert operation.calls == 1
