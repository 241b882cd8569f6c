"""``ftrack-transfer sync`` and serve's schedules."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from ftrack_transfer.transfer.service import Service, schedule_due

from tests.fixtures.studio import StudioCase


def cli(studio: StudioCase, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", *args],
        env={**os.environ, **studio.env}, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def sync(studio: StudioCase, *extra: str, to: str = "cloud") -> subprocess.CompletedProcess[str]:
    return cli(
        studio,
        "sync",
        "--from",
        studio.names["hq"],
        "--to",
        studio.names[to],
        "--project",
        "demo",
        *extra,
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_sync_sends_what_is_missing_then_has_nothing_to_do_and_writes_nothing(
    studio: StudioCase,
) -> None:
    first = studio.publish(files={"main": 20_000}, sequences={"plate": (5, 1000)})
    second = studio.publish(files={"main": 30_000}, shot="sq020/sh0030")
    hq, cloud = studio.names["hq"], studio.names["cloud"]
    result = sync(studio)
    assert result.returncode == 0, result.stderr
    assert last_line(result).startswith(
        f"sync demo {hq} -> {cloud}: done: sent 3 components (7 files"
    )
    ids = [*first.components.values(), *second.components.values()]
    assert studio.availability(ids, "cloud") == [100.0, 100.0, 100.0]
    before = studio.server.stats
    again = sync(studio)
    assert again.returncode == 0
    assert (
        last_line(again)
        == f"sync demo {hq} -> {cloud}: nothing to do: 3 components of demo at {hq} are already at {cloud}"
    )
    assert (studio.server.stats - before).write_requests == 0
    assert len(studio.journal().jobs()) == 1


def test_the_project_is_named_by_name_or_id_and_an_unknown_one_lists_the_projects(
    studio: StudioCase,
) -> None:
    hq, cloud = studio.names["hq"], studio.names["cloud"]
    for wrong in ("nope", "demo/sq010"):
        result = cli(studio, "sync", "--from", hq, "--to", cloud, "--project", wrong, "--dry-run")
        assert result.returncode == 2
        line = result.stderr.strip()
        assert line.startswith(
            f"ftrack-transfer sync: unknown project {wrong!r}; projects in ftrack: "
        )
        assert "demo" in line and line.endswith("(--project takes a project's name or id)")
    project_id = studio.server.seed_info.project_id
    by_id = cli(studio, "sync", "--from", hq, "--to", cloud, "--project", project_id, "--dry-run")
    assert by_id.returncode == 0, by_id.stderr
    assert last_line(by_id).startswith(f"sync {project_id} {hq} -> {cloud}: ")


def test_filters_and_dry_run(studio: StudioCase) -> None:
    published = studio.publish(files={"main": 1000, "proxy": 200})
    hq = studio.names["hq"]
    before = studio.server.stats
    dry = sync(studio, "--filter", "component=proxy", "--dry-run")
    assert dry.returncode == 0
    assert "would send 1 component (1 file, 200 B)" in last_line(dry)
    assert (studio.server.stats - before).write_requests == 0
    none = sync(studio, "--filter", "asset_type=Geometry")
    assert "nothing to do: 0 components" in last_line(none)
    only = sync(studio, "--filter", "component=proxy", "--filter", "max_age=1h")
    assert only.returncode == 0
    assert studio.availability([published.components["proxy"]], "cloud") == [100.0]
    assert studio.availability([published.components["main"]], "cloud") == [0.0]
    bad = sync(studio, "--filter", "colour=red")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "ftrack-transfer sync: bad filter 'colour=red'; use KEY=VALUE with KEY one of "
        "asset_type, task_type, status, component, asset, max_age"
    )
    assert hq


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_destination_is_reported_and_the_schedule_survives(
    studio: StudioCase,
) -> None:
    dead = f"dead-{studio.uid}"
    studio.config_path.write_text(
        studio.config_path.read_text()
        + f"""
[locations."{dead}"]
accessor = "sftp"
host = "127.0.0.1"
port = {closed_port()}
username = "nobody"
key_file = "{studio.sftp.client_key_path}"
known_hosts = "{studio.sftp.known_hosts_path}"
root = "/srv/nowhere"
retries = 2

[[schedules]]
name = "to-dead"
from = "{studio.names["hq"]}"
to = "{dead}"
project = "demo"
every = "15m"
"""
    )
    studio.names["dead"] = dead
    studio.publish(files={"main": 1000})
    result = sync(studio, to="dead")
    assert result.returncode == 1
    line = last_line(result)
    assert line.startswith(f"sync demo {studio.names['hq']} -> {dead}: failed: 1 of 1 files failed")
    assert "Connection refused" in line or "cannot connect" in line.lower()

    service = Service(studio.config, journal=studio.journal(), run_schedules=False)
    service.start()
    try:
        outcome = service.run_schedule_now("to-dead")
    finally:
        service.stop()
    assert outcome.status == "failed"
    journal = studio.journal()
    run = journal.schedule_run("to-dead")
    assert run["status"] == "failed" and "files failed" in run["summary"]
    schedule = studio.config.schedules[0]
    assert not schedule_due(schedule, run["started"], time.time())
    assert schedule_due(schedule, run["started"], run["started"] + 15 * 60)
    status = cli(studio, "status")
    assert "to-dead" in status.stdout and "failed" in status.stdout
