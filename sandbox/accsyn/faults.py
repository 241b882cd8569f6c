"""Fault injection: make the service misbehave on demand, the way a real backend can.

A rule names a *mode*, what it targets and how many times it fires::

    service.faults.add("error", uri="task/create", message="Quota exceeded")
    service.faults.add("http429", uri="transfer/find", count=2)
    service.faults.add("slow", uri="*", delay=3)
    service.faults.add("task_fail", match="demo/x.exr")   # fails once, a re-queue succeeds

Modes for requests: ``error`` (a JSON ``message``/``message_hr`` reply), ``exception``
(a JSON ``exception`` reply), ``http429`` / ``http502`` (an HTML page, not JSON),
``drop`` (the socket is closed without a reply) and ``slow`` (the reply is held back for
``delay`` seconds, longer than the client's read timeout). Mode ``task_fail`` fails the
next execution of tasks whose source contains ``match``.

``uri`` is matched (shell-style wildcards) against the envelope uri with entity aliases
folded (``job/find`` is ``transfer/find``, ``share/*`` is ``volume/*``); the login is
``api/login`` and the workspace host lookup ``master``. ``count`` is how many times the
rule fires; ``None`` keeps it firing until removed.

Other processes reach the same rules over HTTP (``/sandbox/faults``, see
:class:`FaultClient`), so a test can disturb a service it did not start.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import secrets
import threading
import urllib.error
import urllib.request
from typing import Any

REQUEST_MODES = ("error", "exception", "http429", "http502", "drop", "slow")
TASK_MODES = ("task_fail",)
MODES = REQUEST_MODES + TASK_MODES

# Loopback only: an HTTP proxy from the environment must never see these calls.
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_ALIASES = {"job": "transfer", "share": "volume", "folder": "volume"}


def normalise_uri(uri: str) -> str:
    """``Job/Find`` -> ``transfer/find``: the form rules are matched against."""
    head, sep, tail = uri.strip().strip("/").lower().partition("/")
    return _ALIASES.get(head, head) + sep + tail


@dataclasses.dataclass
class FaultRule:
    mode: str
    uri: str = "*"
    method: str | None = None
    count: int | None = 1
    message: str = "Injected failure"
    delay: float = 5.0
    match: str = ""
    id: str = dataclasses.field(default_factory=lambda: secrets.token_hex(6))
    fired: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Unknown fault mode {self.mode!r}; expected one of {MODES}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be 1 or more (or None for always)")
        self.uri = normalise_uri(self.uri) if self.uri not in ("*", "") else "*"
        self.method = self.method.upper() if self.method else None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        known = {f.name for f in dataclasses.fields(cls)} - {"id", "fired"}
        unknown = set(data) - known - {"id", "fired"}
        if unknown:
            raise ValueError(f"Unknown fault rule fields: {sorted(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})


class Faults:
    """Thread-safe rule set consulted by the HTTP handler and the executor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, mode: str, uri: str = "*", count: int | None = 1, **options: Any) -> FaultRule:
        return self.add_rule(FaultRule(mode=mode, uri=uri, count=count, **options))

    def add_rule(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) < before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def pending(self) -> int:
        """How many rules still have firings left (0 once every counted rule fired)."""
        with self._lock:
            return sum(1 for r in self._rules if r.count is None or r.fired < r.count)

    def take_request(self, uri: str, method: str) -> FaultRule | None:
        """The rule to apply to this request, consuming one firing, or None."""
        uri = normalise_uri(uri)
        return self._take(
            lambda r: (
                r.mode in REQUEST_MODES
                and (r.uri == "*" or fnmatch.fnmatchcase(uri, r.uri))
                and (r.method is None or r.method == method.upper())
            )
        )

    def take_task(self, source: str) -> FaultRule | None:
        """The rule failing a task whose source spec is *source*, or None."""
        lowered = source.lower()
        return self._take(lambda r: r.mode in TASK_MODES and r.match.lower() in lowered)

    def _take(self, wanted: Any) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if (rule.count is None or rule.fired < rule.count) and wanted(rule):
                    rule.fired += 1
                    return rule
        return None


class FaultClient:
    """Sets fault rules on a service running in another process, over its admin API."""

    def __init__(self, url: str, api_key: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/") + "/sandbox/faults"
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.timeout = timeout

    def add(self, mode: str, uri: str = "*", count: int | None = 1, **options: Any) -> dict:
        return self._call("POST", {"mode": mode, "uri": uri, "count": count, **options})

    def list(self) -> list[dict]:
        return self._call("GET")

    def clear(self) -> None:
        self._call("DELETE")

    def _call(self, method: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        # The URL is the loopback service this process was given, never user input.
        request = urllib.request.Request(  # noqa: S310
            self.url, data=data, method=method, headers=self._headers
        )
        try:
            with _LOOPBACK.open(request, timeout=self.timeout) as reply:
                payload = json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as error:
            payload = json.loads(error.read() or b"{}")
        if "message" in payload:
            raise RuntimeError(payload["message"])
        return payload.get("result")
