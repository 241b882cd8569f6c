"""Auto-send on assignment: assigning a task to a vendor sends them the task's inputs."""

from __future__ import annotations

from pathlib import Path

from ftrack_transfer.transfer.service import Service

from tests.fixtures.ftrack import wait_until
from tests.fixtures.studio import StudioCase

VENDOR = "vera@vfxvendor.example"


def test_assigning_a_task_to_a_vendor_sends_the_latest_plates_and_notes_it(
    studio: StudioCase, tmp_path: Path
) -> None:
    vera_root = tmp_path / "vera"
    studio.accsyn.add_user(VENDOR, vera_root)
    studio.config_path.write_text(
        studio.config_path.read_text()
        + f"""
[locations."{VENDOR}"]
accessor = "accsyn"
local_root = "{vera_root}"
structure = "mirror"
backend = "accsyn"

[[auto_send]]
from = "{studio.names["hq"]}"
users = ["group:vendors"]
filter = {{ asset_types = ["Plate"] }}
"""
    )
    studio.names["vera"] = VENDOR
    asset = f"bg-{studio.uid}"
    old = studio.publish(files={"main": 1000}, asset=asset, shot="sq020/sh0030")
    latest = studio.publish(
        files={"main": 2000}, sequences={"plate": (3, 100)}, asset=asset, shot="sq020/sh0030"
    )
    render = studio.publish(
        files={"main": 3000}, asset=f"render-{studio.uid}", asset_type="Render", shot="sq020/sh0030"
    )
    service = Service(
        studio.config, journal=studio.journal(), housekeeping_interval=0.2, scan_interval=3600
    )
    service.start()
    try:
        studio.server.wait_for_subscribers("ftrack.update", timeout=10)
        session = studio.session()
        info = studio.server.seed_info
        task_id = info.tasks["sq020/sh0030/lighting"]
        vera = session.query(f'User where username is "{VENDOR}"').one()
        session.create(
            "Appointment", {"context_id": task_id, "resource_id": vera["id"], "type": "assignment"}
        )
        session.commit()
        wait_until(
            lambda: studio.availability(list(latest.components.values()), "vera") == [100.0, 100.0],
            timeout=60, message="the latest plate never reached the vendor",
        )  # fmt: skip
    finally:
        service.stop()
    assert studio.availability(list(old.components.values()), "vera") == [0.0]
    assert studio.availability(list(render.components.values()), "vera") == [0.0]
    assert studio.read(latest.components["plate"], "vera") == [
        p.read_bytes() for p in latest.files["plate"]
    ]
    session = studio.session()
    notes = session.query(f'select content from Note where parent_id is "{task_id}"').all()
    assert any(
        f"to {VENDOR} for {VENDOR}" in note["content"] and "inputs of lighting" in note["content"]
        for note in notes
    )
    jobs = [j for j in studio.journal().jobs() if j.origin == "auto-send"]
    assert len(jobs) == 1 and jobs[0].status == "done"
