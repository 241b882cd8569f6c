"""Transfers through the real accsyn client: files really move between party folders."""

from __future__ import annotations

import time

import accsyn_api
import pytest
from accsyn_api.session import AccsynException
from ftrack_transfer.sandbox.accsyn import AccsynService

from tests.fixtures.accsyn import VENDOR, open_session, part_files, write_file


def poll(session, transfer_id: str, until, timeout: float = 10.0) -> dict:
    """Poll the transfer through the client (as the product does) until *until* holds."""
    deadline = time.monotonic() + timeout
    while True:
        job = session.get_entity("transfer", transfer_id)
        if until(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"Transfer never reached the condition; last seen: {job}")
        time.sleep(0.01)  # a polling interval, not a wait for an outcome


def test_plain_session_moves_files_between_sites_with_observable_progress(
    make_accsyn_service, accsyn_roots, restore_environ, monkeypatch
) -> None:
    service: AccsynService = make_accsyn_service(bandwidth=1_500_000)
    for name, value in service.env().items():
        monkeypatch.setenv(name, value)
    hq, la = accsyn_roots["site=hq"], accsyn_roots["site=la"]
    data = {
        f"demo/sh010/plate.{n}.exr": write_file(hq / f"demo/sh010/plate.{n}.exr", 400_000, n)
        for n in (1001, 1002)
    }

    session = accsyn_api.Session()
    job = session.create(
        "Transfer",
        {
            "name": "sh010 plates to LA",
            "tasks": [{"source": f"site=hq:{path}", "destination": "site=la"} for path in data],
            "metadata": {"ftrack_component_ids": ["c-1", "c-2"]},
        },
    )
    assert len(job["id"]) == 24 and job["status"] in ("init", "running")
    assert job["size"] == 800_000

    seen: list[tuple[str, int]] = []
    final = poll(
        session,
        job["id"],
        lambda j: (
            seen.append((j["status"], j["progress"]))
            or (j["status"] in ("done", "failed", "aborted"))
        ),
    )
    running = [p for status, p in seen if status == "running"]
    assert any(0 < p < 100 for p in running), seen
    assert running == sorted(running), "progress never goes backwards"
    assert final["status"] == "done"

    done = session.find_one(f"Transfer WHERE id={job['id']}")
    assert done["status"] == "done" and done["progress"] == 100
    assert done["metadata"] == {"ftrack_component_ids": ["c-1", "c-2"]}
    assert done["finished"].year > 1970
    assert session.find("Transfer") == [], "a done transfer drops out of plain queries"
    assert [j["id"] for j in session.find("Transfer", finished=True)] == [job["id"]]
    for path, content in data.items():
        assert (la / path).read_bytes() == content
    assert part_files(la) == []


def test_speed_and_etr_are_reported_while_running(make_accsyn_service, accsyn_roots) -> None:
    service: AccsynService = make_accsyn_service(bandwidth=1_000_000)
    write_file(accsyn_roots["site=hq"] / "big.mov", 1_500_000)
    session = open_session(service)
    job = session.create("Transfer", {"source": "site=hq:big.mov", "destination": "site=la"})
    running = poll(
        session,
        job["id"],
        lambda j: j["status"] == "running" and j["speed"] > 0 and j["etr"] not in ("", None),
    )
    assert 0.5 < running["speed"] < 1.5  # MB/s, under the 1 MB/s cap
    hours, minutes, seconds = (int(x) for x in running["etr"].split(":"))
    assert hours == 0 and minutes == 0 and seconds <= 2
    finished = service.wait_for_transfer(job["id"])
    assert finished["status"] == "done" and finished["speed"] == 0.0 and finished["etr"] == ""


def test_mirrored_and_explicit_destination_paths(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    hq, la = accsyn_roots["site=hq"], accsyn_roots["site=la"]
    a = write_file(hq / "proj/a.exr", 5000, 1)
    b = write_file(hq / "proj/b.exr", 5000, 2)
    c = write_file(hq / "proj/c.exr", 5000, 3)
    d = write_file(hq / "proj/d.exr", 5000, 4)
    job = accsyn_session.create(
        "Transfer",
        {
            "tasks": [
                {"source": "site=hq:proj/a.exr", "destination": "site=la"},
                {"source": "site=hq:proj/b.exr", "destination": "site=la:in/renamed.exr"},
                {"source": "site=hq:volume=root/proj/c.exr", "destination": "site=la:in/"},
                {"source": "proj/d.exr"},  # no parties: from and to the main site's defaults
            ],
            "destination": "site=la",
            "mirror_paths": True,
        },
    )
    assert accsyn_service.wait_for_transfer(job["id"])["status"] == "done"
    assert (la / "proj/a.exr").read_bytes() == a
    assert (la / "in/renamed.exr").read_bytes() == b
    assert (la / "in/c.exr").read_bytes() == c
    assert (la / "proj/d.exr").read_bytes() == d  # job-level destination, mirrored
    tasks = {t["uri"]: t for t in accsyn_session.find("Task", entityid=job["id"])}
    assert tasks["1"]["destination"]["path"] == "in/renamed.exr"
    assert tasks["0"]["source"]["site"] == accsyn_session.find_one("Site WHERE code=hq")["id"]
    assert {t["status"] for t in tasks.values()} == {"done"}


def test_a_directory_is_copied_recursively(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    hq, la = accsyn_roots["site=hq"], accsyn_roots["site=la"]
    files = {
        rel: write_file(hq / "shots/sh020" / rel, 70_000, i)
        for i, rel in enumerate(["comp/v001/f.1001.exr", "comp/v001/f.1002.exr", "notes.txt"])
    }
    job = accsyn_session.create(
        "Transfer", {"tasks": [{"source": "site=hq:shots/sh020", "destination": "site=la"}]}
    )
    final = accsyn_service.wait_for_transfer(job["id"])
    assert final["status"] == "done" and final["size"] == 210_000
    for rel, content in files.items():
        assert (la / "shots/sh020" / rel).read_bytes() == content


def test_a_user_party_sends_and_receives(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    hq, vendor = accsyn_roots["site=hq"], accsyn_roots[VENDOR]
    plate = write_file(hq / "out/plate.exr", 9000)
    job = accsyn_session.create(
        "Transfer", {"tasks": [{"source": "site=hq:out/plate.exr", "destination": VENDOR}]}
    )
    assert accsyn_service.wait_for_transfer(job["id"])["status"] == "done"
    assert (vendor / "out/plate.exr").read_bytes() == plate
    assert accsyn_session.find_one(f"Transfer WHERE destination={VENDOR}", finished=True)

    comp = write_file(vendor / "work/comp_v002.exr", 7000)
    back = accsyn_session.create(
        "Transfer",
        {
            "tasks": [
                {
                    "source": f"{VENDOR}@WS-042:work/comp_v002.exr",
                    "destination": "site=hq:from_vendor/",
                }
            ]
        },
    )
    assert accsyn_service.wait_for_transfer(back["id"])["status"] == "done"
    assert (hq / "from_vendor/comp_v002.exr").read_bytes() == comp


def test_a_standard_user_may_only_move_their_own_files(
    accsyn_service: AccsynService, accsyn_roots
) -> None:
    write_file(accsyn_roots["site=hq"] / "out/plate.exr", 10)
    vendor = open_session(
        accsyn_service, username=VENDOR, api_key=accsyn_service.api_key_for(VENDOR)
    )
    with pytest.raises(AccsynException, match="may only transfer to or from their own"):
        vendor.create("Transfer", {"source": "site=hq:out/plate.exr", "destination": "site=la"})
    job = vendor.create("Transfer", {"source": "site=hq:out/plate.exr", "destination": VENDOR})
    assert accsyn_service.wait_for_transfer(job["id"])["status"] == "done"


def test_tasks_added_to_an_existing_transfer_run_and_duplicates_retry(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    hq, la = accsyn_roots["site=hq"], accsyn_roots["site=la"]
    for n in range(3):
        write_file(hq / f"daily/f{n}.exr", 3000, n)
    job = accsyn_session.create(
        "Transfer",
        {
            "name": "hq > la daily sync",
            "tasks": [{"source": "site=hq:daily/f0.exr", "destination": "site=la"}],
        },
    )
    assert accsyn_service.wait_for_transfer(job["id"])["status"] == "done"

    added = accsyn_session.create(
        "Task",
        {"tasks": [{"source": "site=hq:daily/f1.exr", "destination": "site=la"}]},
        entityid=job["id"],
    )
    assert added["uri"] == "1" and added["status"] == "queued"
    # Plain strings: sources on the transfer's source party, mirrored to its destination.
    more = accsyn_session.create("Task", ["daily/f2.exr"], entityid=job["id"])
    assert more["destination"]["path"] == "daily/f2.exr"
    final = accsyn_service.wait_for_transfer(job["id"])
    assert final["status"] == "done" and final["tasks"]["total"] == 3
    assert sorted(p.name for p in (la / "daily").iterdir()) == ["f0.exr", "f1.exr", "f2.exr"]

    # The same source and destination again: the existing task is retried, not added.
    (la / "daily/f0.exr").unlink()
    retried = accsyn_session.create(
        "Task",
        {"tasks": [{"source": "site=hq:daily/f0.exr", "destination": "site=la"}]},
        entityid=job["id"],
    )
    assert retried["uri"] == "0"
    final = accsyn_service.wait_for_transfer(job["id"])
    assert final["status"] == "done" and final["tasks"]["total"] == 3
    assert (la / "daily/f0.exr").read_bytes() == (hq / "daily/f0.exr").read_bytes()

    with pytest.raises(AccsynException, match="duplicates are not allowed"):
        accsyn_session.create(
            "Task",
            {"tasks": [{"source": "site=hq:daily/f0.exr", "destination": "site=la"}]},
            entityid=job["id"],
            allow_duplicates=False,
        )


def test_pause_resume_and_abort(make_accsyn_service, accsyn_roots) -> None:
    service: AccsynService = make_accsyn_service(bandwidth=1_000_000)
    hq, la = accsyn_roots["site=hq"], accsyn_roots["site=la"]
    files = {f"seq/f{n}.exr": write_file(hq / f"seq/f{n}.exr", 300_000, n) for n in range(3)}
    session = open_session(service)
    tasks = [{"source": f"site=hq:{rel}", "destination": "site=la"} for rel in files]
    job = session.create("Transfer", {"tasks": tasks})

    poll(session, job["id"], lambda j: j["status"] == "running" and j["progress"] > 0)
    paused = session.update("Transfer", job["id"], {"status": "paused"})
    assert paused["status"] == "paused"
    service.wait_for(lambda: not service.executor.busy)
    held = session.get_entity("transfer", job["id"])
    assert held["status"] == "paused" and 0 < held["progress"] < 100
    for rel, content in files.items():  # a partial file never has the final name
        assert not (la / rel).exists() or (la / rel).read_bytes() == content
    assert part_files(la), "the partial file is kept for the resume"
    assert session.get_entity("transfer", job["id"])["progress"] == held["progress"]

    session.update("Transfer", job["id"], {"status": "waiting"})
    assert service.wait_for_transfer(job["id"])["status"] == "done"
    for rel, content in files.items():
        assert (la / rel).read_bytes() == content
    assert part_files(la) == []

    for rel in files:
        (la / rel).unlink()
    again = session.create("Transfer", {"tasks": tasks})
    poll(session, again["id"], lambda j: j["status"] == "running" and j["progress"] > 0)
    aborted = session.update("Transfer", again["id"], {"status": "aborted"})
    assert aborted["status"] == "aborted"
    service.wait_for(lambda: not service.executor.busy and not part_files(la))
    finished = service.wait_for_transfer(again["id"], ("aborted",))
    assert finished["progress"] < 100
    complete = [rel for rel in files if (la / rel).exists()]
    assert len(complete) < len(files)
    for rel in complete:  # only files completed before the abort, and whole
        assert (la / rel).read_bytes() == files[rel]
    assert part_files(la) == []
    assert again["id"] not in [j["id"] for j in session.find("Transfer")]
    assert again["id"] in [j["id"] for j in session.find("Transfer", finished=True)]
    assert session.find_one(f"Transfer WHERE id={again['id']}")["status"] == "aborted"
    with pytest.raises(AccsynException, match="was aborted"):
        session.update("Transfer", again["id"], {"status": "waiting"})


def test_a_missing_source_fails_its_task_while_the_others_complete(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    hq, la = accsyn_roots["site=hq"], accsyn_roots["site=la"]
    write_file(hq / "demo/a.exr", 2000, 1)
    write_file(hq / "demo/b.exr", 2000, 2)
    job = accsyn_session.create(
        "Transfer",
        {
            "tasks": [
                {"source": f"site=hq:demo/{n}.exr", "destination": "site=la"}
                for n in ("a", "x", "b")
            ]
        },
    )
    final = accsyn_service.wait_for_transfer(job["id"])
    assert final["status"] == "failed"
    assert "Source file site=hq:demo/x.exr does not exist" in final["message"]
    assert final["message"].startswith("1 of 3 task(s) failed")
    tasks = {t["uri"]: t for t in accsyn_session.find("Task", entityid=job["id"])}
    assert [tasks[u]["status"] for u in ("0", "1", "2")] == ["done", "failed", "done"]
    assert tasks["1"]["message"] == "Source file site=hq:demo/x.exr does not exist"
    assert (la / "demo/a.exr").exists() and (la / "demo/b.exr").exists()
    failed = accsyn_session.find("Task WHERE status=failed", entityid=job["id"])
    assert [t["uri"] for t in failed] == ["1"]
    # A failed transfer is still live (accsyn may retry it), not finished.
    assert job["id"] in [j["id"] for j in accsyn_session.find("Transfer")]

    # Fix the cause, re-queue the task: the transfer runs again and completes.
    x = write_file(hq / "demo/x.exr", 2000, 3)
    updated = accsyn_session.update_many(
        "task", job["id"], [{"id": tasks["1"]["id"], "status": "queued"}]
    )
    assert updated[0]["status"] == "queued"
    assert accsyn_service.wait_for_transfer(job["id"])["status"] == "done"
    assert (la / "demo/x.exr").read_bytes() == x


def test_excluded_tasks_are_skipped(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    hq, la = accsyn_roots["site=hq"], accsyn_roots["site=la"]
    write_file(hq / "a.exr", 100, 1)
    write_file(hq / "b.exr", 100, 2)
    job = accsyn_session.create(
        "Transfer",
        {
            "status": "paused",
            "tasks": [{"source": f"site=hq:{n}.exr", "destination": "site=la"} for n in "ab"],
        },
    )
    accsyn_session.update_many("task", job["id"], [{"uri": "1", "status": "excluded"}])
    accsyn_session.update("Transfer", job["id"], {"status": "waiting"})
    final = accsyn_service.wait_for_transfer(job["id"])
    assert final["status"] == "done" and final["size"] == 100
    assert (la / "a.exr").exists() and not (la / "b.exr").exists()
    with pytest.raises(AccsynException, match="cannot be deleted"):
        accsyn_session.delete_one("task", job["id"])


@pytest.mark.parametrize(
    ("source", "destination", "expected"),
    [
        ("site=hq:../outside.exr", "site=la", "escapes the party root"),
        ("site=hq:demo/../../outside.exr", "site=la", "escapes the party root"),
        ("site=hq:/etc/hostname", "site=la", "is absolute"),
        ("site=hq:C:\\temp\\x.exr", "site=la", "is absolute"),
        ("site=hq:demo/a.exr", "site=la:../../x.exr", "escapes the party root"),
        ("site=hq:demo/a.exr", "site=la:~/x.exr", "is absolute"),
        ("site=nowhere:demo/a.exr", "site=la", "Unknown party 'site=nowhere'"),
        ("site=hq:volume=nope/a.exr", "site=la", "Unknown volume 'nope'"),
        ("site=hq:demo/a.exr", "site=hq", "source and destination are the same"),
    ],
)
def test_paths_outside_a_party_root_are_refused(
    accsyn_session, accsyn_service: AccsynService, source: str, destination: str, expected: str
) -> None:
    with pytest.raises(AccsynException, match="Task #0: .*" + expected.replace("\\", "\\\\")):
        accsyn_session.create(
            "Transfer", {"tasks": [{"source": source, "destination": destination}]}
        )
    assert accsyn_service.transfers() == []


def test_thousands_of_tasks_travel_gzipped(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    hq, la = accsyn_roots["site=hq"], accsyn_roots["site=la"]
    count = 2500
    for n in range(count):
        (hq / "seq").mkdir(exist_ok=True)
        (hq / f"seq/sh010_comp_v001.{n:04d}.exr").write_bytes(n.to_bytes(2, "big"))
    tasks = [
        {"source": f"site=hq:seq/sh010_comp_v001.{n:04d}.exr", "destination": "site=la"}
        for n in range(count)
    ]
    job = accsyn_session.create("Transfer", {"name": "big sequence", "tasks": tasks})

    create = accsyn_service.calls("transfer/create")
    assert len(create) == 1 and create[0].gz_data, "the client compressed, the service decoded"
    assert job["tasks"]["total"] == count and job["size"] == 2 * count
    final = accsyn_service.wait_for_transfer(job["id"], timeout=30)
    assert final["status"] == "done"
    assert len(list((la / "seq").iterdir())) == count
    assert (la / "seq/sh010_comp_v001.2499.exr").read_bytes() == (2499).to_bytes(2, "big")
    found = accsyn_session.find("Task WHERE status=done", entityid=job["id"])
    assert len(found) == count


def test_stop_halts_transfers_and_a_restarted_service_resumes(
    make_accsyn_service, accsyn_roots, tmp_path
) -> None:
    state = tmp_path / "persistent"
    service: AccsynService = make_accsyn_service(state_dir=state, bandwidth=1_000_000)
    hq, la = accsyn_roots["site=hq"], accsyn_roots["site=la"]
    content = write_file(hq / "long.mov", 1_000_000)
    session = open_session(service)
    job = session.create("Transfer", {"source": "site=hq:long.mov", "destination": "site=la"})
    poll(session, job["id"], lambda j: j["progress"] > 0)
    started = time.monotonic()
    service.stop()
    assert time.monotonic() - started < 2, "stop() does not wait for transfers to finish"
    assert not (la / "long.mov").exists()

    again: AccsynService = make_accsyn_service(state_dir=state)
    assert again.api_key == service.api_key
    final = again.wait_for_transfer(job["id"])
    assert final["status"] == "done"
    assert (la / "long.mov").read_bytes() == content
    assert open_session(again).get_entity("transfer", job["id"])["progress"] == 100


def test_delete_archives_a_transfer(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    write_file(accsyn_roots["site=hq"] / "a.exr", 10)
    job = accsyn_session.create(
        "Transfer", {"status": "paused", "source": "site=hq:a.exr", "destination": "site=la"}
    )
    assert accsyn_session.delete_one("transfer", job["id"]) is True
    assert accsyn_session.find("Transfer", finished=True) == []
    assert accsyn_session.get_entity("transfer", job["id"])["status"] == "aborted"
