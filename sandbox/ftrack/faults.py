"""Fault injection for reliability tests: failing, slow or vanishing ``/api`` requests.

Rules apply to the next matching requests, in the order they were added. A rule can
act before the batch runs (nothing stored) or after it committed (stored, but the
client never hears so: the case that makes retries create duplicates).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, Literal

Batch = list[Any]
When = Literal["writes", "queries"] | Callable[[Batch], bool] | None

_WRITES = ("create", "update", "delete")


@dataclasses.dataclass
class Fault:
    kind: Literal["fail", "drop", "delay"]
    remaining: int
    status: int = 503
    json_body: bool = False
    seconds: float = 0.0
    after_commit: bool = False
    when: When = None

    def matches(self, batch: Batch) -> bool:
        if self.when is None:
            return True
        actions = [op.get("action") for op in batch if isinstance(op, dict)]
        if self.when == "writes":
            return any(a in _WRITES for a in actions)
        if self.when == "queries":
            return bool(actions) and not any(a in _WRITES for a in actions)
        return bool(self.when(batch))  # type: ignore[operator]


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._handshake_failures = 0
        self._handshake_status = 503

    def fail_next_requests(
        self,
        n: int = 1,
        status: int = 503,
        *,
        json_body: bool = False,
        after_commit: bool = False,
        when: When = None,
    ) -> None:
        """Answer the next *n* matching requests with HTTP *status*.

        The body is an HTML error page, as a proxy in front of ftrack would send, or
        with *json_body* an ftrack error object. What ``ftrack_api`` 3.1 raises:

        - JSON body, any status: ``ServerError("Server reported error: ...")``;
        - HTML body, status 2xx: ``ServerError("... unexpected format ...")``;
        - HTML body, status 4xx/5xx: the bare ``json.JSONDecodeError`` (a
          ``ValueError``), because the client re-raises decode errors of responses that
          are not ok. Retry code must expect it.

        With *after_commit* the batch is applied first. *when* is ``"writes"``,
        ``"queries"`` or a predicate on the decoded batch.
        """
        self._add(
            Fault(
                "fail", n, status=status, json_body=json_body, after_commit=after_commit, when=when
            )
        )

    def drop_next_requests(
        self, n: int = 1, *, after_commit: bool = False, when: When = None
    ) -> None:
        """Close the connection of the next *n* matching requests without answering."""
        self._add(Fault("drop", n, after_commit=after_commit, when=when))

    def delay_next_requests(self, n: int = 1, seconds: float = 1.0, *, when: When = None) -> None:
        """Hold the next *n* matching requests for *seconds* before running them."""
        self._add(Fault("delay", n, seconds=seconds, when=when))

    def fail_next_handshakes(self, n: int = 1, status: int = 503) -> None:
        """Refuse the next *n* event hub handshakes (``GET /socket.io/1/``)."""
        with self._lock:
            self._handshake_failures += n
            self._handshake_status = status

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._handshake_failures = 0

    @property
    def pending(self) -> int:
        """Requests still to be affected."""
        with self._lock:
            return sum(r.remaining for r in self._rules) + self._handshake_failures

    def take(self, batch: Batch) -> list[Fault]:
        """The faults for this request (each rule used up by one), oldest first."""
        taken: list[Fault] = []
        with self._lock:
            kinds: set[str] = set()
            for rule in self._rules:
                if rule.kind in kinds or not rule.matches(batch):
                    continue
                kinds.add(rule.kind)
                rule.remaining -= 1
                taken.append(dataclasses.replace(rule))
            self._rules = [r for r in self._rules if r.remaining > 0]
        return taken

    def take_handshake(self) -> int | None:
        with self._lock:
            if self._handshake_failures <= 0:
                return None
            self._handshake_failures -= 1
            return self._handshake_status

    def _add(self, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._rules.append(fault)
