"""Injected faults, as the real accsyn client reports them to its caller."""

from __future__ import annotations

import time

import accsyn_api
import pytest
from accsyn_api.session import AccsynException
from ftrack_transfer.sandbox.accsyn import AccsynService, FaultClient

from tests.fixtures.accsyn import open_session, write_file


@pytest.mark.parametrize(
    ("mode", "options", "expected"),
    [
        (
            "error",
            {"message": "Quota exceeded for workspace sandbox"},
            "^Quota exceeded for workspace sandbox$",
        ),
        (
            "exception",
            {"message": "KeyError: 'site'"},
            "^/event caused an exception! Please contact sandbox admin",
        ),
        ("http429", {}, "REST GET .* operation failed! Details: <html>.*429 Too Many Requests"),
        ("http502", {}, "REST GET .* operation failed! Details: <html>.*502 Bad Gateway"),
        ("drop", {}, r"^Could not reach 127\.0\.0\.1:[0-9]+!"),
    ],
)
def test_each_fault_reaches_the_caller_as_a_readable_error(
    accsyn_service: AccsynService, accsyn_session, mode: str, options: dict, expected: str
) -> None:
    rule = accsyn_service.faults.add(mode, uri="transfer/find", **options)

    with pytest.raises(AccsynException, match=expected):
        accsyn_session.find("Job")  # the deprecated alias hits the same rule

    assert rule.fired == 1
    assert accsyn_service.calls("transfer/find")[-1].fault == mode
    assert accsyn_session.find("Transfer") == [], "the service is healthy afterwards"


def test_a_slow_reply_outlasts_the_client_timeout(accsyn_service: AccsynService) -> None:
    session = open_session(accsyn_service, timeout=1)
    accsyn_service.faults.add("slow", uri="site/find", delay=5)
    started = time.monotonic()
    with pytest.raises(AccsynException, match=r"^Could not reach 127\.0\.0\.1"):
        session.find("Site")
    assert time.monotonic() - started < 4, "the client gave up at its own timeout"
    assert [s["code"] for s in session.find("Site WHERE code=la")] == ["la"]


def test_rules_fire_only_on_their_target_and_count(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    write_file(accsyn_roots["site=hq"] / "a.exr", 10)
    accsyn_service.faults.add("http429", uri="task/create", count=2)
    job = accsyn_session.create(
        "Transfer", {"status": "paused", "source": "site=hq:a.exr", "destination": "site=la"}
    )
    task = [{"source": "site=hq:a.exr", "destination": "site=la:copy.exr"}]
    for _ in range(2):
        with pytest.raises(AccsynException, match="429 Too Many Requests"):
            accsyn_session.create("Task", task, entityid=job["id"])
    assert accsyn_session.create("Task", task, entityid=job["id"])["uri"] == "1"
    assert accsyn_service.faults.pending() == 0


def test_a_fault_on_method_only(accsyn_service: AccsynService, accsyn_session) -> None:
    accsyn_service.faults.add("error", uri="*", method="PUT", message="Read-only maintenance")
    assert accsyn_session.find("Site")
    with pytest.raises(AccsynException, match="Read-only maintenance"):
        accsyn_session.set_setting("workspace", "x", "1")


def test_login_and_workspace_lookup_faults(
    accsyn_service: AccsynService, accsyn_env: dict[str, str]
) -> None:
    accsyn_service.faults.add("http502", uri="master")
    with pytest.raises(AccsynException, match="502 Bad Gateway"):
        accsyn_api.Session()
    accsyn_service.faults.add("error", uri="api/login", message="Login temporarily disabled")
    with pytest.raises(AccsynException, match="Login temporarily disabled"):
        accsyn_api.Session()
    accsyn_service.faults.add("drop", uri="api/login")
    with pytest.raises(AccsynException, match="Could not reach"):
        accsyn_api.Session()
    assert accsyn_api.Session().find("Site")


def test_faults_can_be_set_from_another_process_over_http(
    accsyn_service: AccsynService, accsyn_session
) -> None:
    remote = FaultClient(accsyn_service.url, accsyn_service.api_key)
    rule = remote.add("http502", uri="transfer/find", count=None)
    assert [r["id"] for r in remote.list()] == [rule["id"]]
    for _ in range(2):
        with pytest.raises(AccsynException, match="502 Bad Gateway"):
            accsyn_session.find("Transfer")
    remote.clear()
    assert accsyn_session.find("Transfer") == []
    assert remote.list() == []

    with pytest.raises(RuntimeError, match="needs the service's API key"):
        FaultClient(accsyn_service.url, "wrong").add("drop")
    with pytest.raises(RuntimeError, match="Unknown fault mode"):
        remote.add("explode")


def test_a_task_fails_once_then_succeeds_when_requeued(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    hq, la = accsyn_roots["site=hq"], accsyn_roots["site=la"]
    a = write_file(hq / "demo/a.exr", 150_000, 1)
    b = write_file(hq / "demo/b.exr", 150_000, 2)
    accsyn_service.faults.add("task_fail", match="demo/a.exr", message="Connection reset by peer")
    job = accsyn_session.create(
        "Transfer",
        {"tasks": [{"source": f"site=hq:demo/{n}.exr", "destination": "site=la"} for n in "ab"]},
    )
    failed = accsyn_service.wait_for_transfer(job["id"])
    assert failed["status"] == "failed"
    assert "Connection reset by peer" in failed["message"]
    tasks = {t["uri"]: t for t in accsyn_session.find("Task", entityid=job["id"])}
    assert tasks["0"]["status"] == "failed" and tasks["1"]["status"] == "done"
    assert not (la / "demo/a.exr").exists()

    accsyn_session.update_many("task", job["id"], [{"uri": "0", "status": "queued"}])
    assert accsyn_service.wait_for_transfer(job["id"])["status"] == "done"
    assert (la / "demo/a.exr").read_bytes() == a
    assert (la / "demo/b.exr").read_bytes() == b


def test_health_endpoint_needs_no_credentials(accsyn_service: AccsynService) -> None:
    import json
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{accsyn_service.url}/sandbox/health", timeout=5) as reply:
        health = json.loads(reply.read())["result"]
    assert health == {"workspace": "sandbox", "port": accsyn_service.port}
