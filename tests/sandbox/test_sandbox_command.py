"""``ftrack-transfer sandbox --dir D``, then plain client scripts with ``. D/env.sh``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import _ISOLATE

LOCATIONS_TUTORIAL = textwrap.dedent(
    """
    import os, sys, tempfile
    import ftrack_api, ftrack_api.accessor.disk, ftrack_api.structure.id

    session = ftrack_api.Session()          # everything from the environment
    names = sorted(l["name"] for l in session.query("Location") if l.accessor)
    print("configured:", ", ".join(n for n in names if not n.startswith("ftrack.")))
    for name, kind in (("hq", "DiskAccessor"), ("la", "SftpAccessor"), ("cloud", "S3Accessor")):
        location = session.query(f'Location where name is "{name}"').one()
        assert type(location.accessor).__name__ == kind, (name, location.accessor)

    # The Locations tutorial of the ftrack API docs, end to end.
    location = session.ensure("Location", {"name": "tutorial.location"})
    location.accessor = ftrack_api.accessor.disk.DiskAccessor(prefix=tempfile.mkdtemp())
    location.structure = ftrack_api.structure.id.IdStructure()
    location.priority = 1
    source = os.path.join(tempfile.mkdtemp(), "plate.exr")
    with open(source, "wb") as handle:
        handle.write(b"tutorial" * 1000)
    version = session.query("AssetVersion").first()
    component = version.create_component(source, data={"name": "tutorial"}, location=location)
    session.commit()
    assert session.get_component_availability(component)[location["id"]] == 100.0
    path = location.get_filesystem_path(component)
    assert open(path, "rb").read() == b"tutorial" * 1000
    location.remove_component(component)
    assert session.get_component_availability(component)[location["id"]] == 0.0
    print("tutorial ok")
    """
)

ACCSYN_SCRIPT = textwrap.dedent(
    """
    import time, accsyn_api
    session = accsyn_api.Session()          # everything from the environment
    job = session.create("transfer", {
        "name": "plain script", "tasks": [{"source": "site=hq:incoming/a.bin", "destination": "site=la"}],
    })
    deadline = time.time() + 60
    while time.time() < deadline:
        found = session.find_one(f"Transfer WHERE id={job['id']}")
        if found["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    print("accsyn", found["status"], found["progress"])
    """
)


def shell(env_sh: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f". {env_sh} && {command}"], env=env, capture_output=True, text=True, timeout=120, check=False
    )  # fmt: skip


def test_sandbox_command_serves_plain_ftrack_and_accsyn_scripts(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _ISOLATE and not k.startswith(("FTRACK_", "ACCSYN_", "AWS_"))
    }
    studio = tmp_path / "studio"
    process = subprocess.Popen(
        [sys.executable, "-m", "ftrack_transfer.transfer.cli", "sandbox", "--dir", str(studio)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        ready = process.stdout.readline()  # one line when ready
        assert ready.startswith("sandbox ready: ftrack http://127.0.0.1:"), ready
        assert f"in another shell: . {studio / 'env.sh'}" in ready
        (studio / "storage" / "hq" / "incoming").mkdir(parents=True, exist_ok=True)
        (studio / "storage" / "hq" / "incoming" / "a.bin").write_bytes(b"accsyn" * 50_000)

        script = tmp_path / "tutorial.py"
        script.write_text(LOCATIONS_TUTORIAL)
        result = shell(studio / "env.sh", f"{sys.executable} {script}", env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "configured: cloud, hq, la, vera@vfxvendor.example" in result.stdout
        assert "tutorial ok" in result.stdout

        accsyn = tmp_path / "accsyn_script.py"
        accsyn.write_text(ACCSYN_SCRIPT)
        result = shell(studio / "env.sh", f"{sys.executable} {accsyn}", env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "accsyn done 100" in result.stdout
        assert (studio / "storage" / "la" / "incoming" / "a.bin").read_bytes() == b"accsyn" * 50_000

        status = shell(
            studio / "env.sh",
            f"{sys.executable} -m ftrack_transfer.transfer.cli locations --check",
            env,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("reachable") == 4
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "sandbox stopped" in output
    assert "Traceback" not in output
