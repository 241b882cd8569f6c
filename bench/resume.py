"""Resume: kill a large send half-way, restart it, count what was sent twice.

The send goes through a counting relay in front of the server (see ``relay.py``), with
its own sites config pointing ``la`` / ``cloud`` at the relay. First an uninterrupted
send gives the bytes a complete transfer puts on the wire. Then a second send of a new
version is killed with SIGKILL just past half-way (mid-chunk), and resumed with
``ftrack-transfer retry <job> --wait`` (the journal holds the write token and the
chunks that landed). Re-sent = (bytes up before the kill + bytes up after the restart
- bytes of the uninterrupted send) / bytes of the uninterrupted send. Finally the
destination's SHA-256 is compared with the source's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from . import data
from .catalog import FileEntry
from .context import Context
from .relay import Relay, host_port

log = logging.getLogger(__name__)

#: Where the send is killed, as a share of the uninterrupted send's bytes: past half-way,
#: at an arbitrary point. Exactly 50 % of a power-of-two file falls on a chunk boundary,
#: where nothing is in flight and a resume looks perfect; mid-chunk is the honest case.
KILL_AT = 0.5123


def _config(ctx: Context, folder: Path, relay: Relay, kind: str) -> Path:
    """A copy of the lab's sites config with the destination behind the relay."""
    lab = ctx.lab
    assert lab.sftp is not None and lab.s3 is not None
    text = lab.sites_config.read_text().replace(str(lab.journal), str(folder / "journal.sqlite"))
    if kind == "sftp":
        known = folder / "known_hosts"
        kind_name, blob = lab.sftp.known_hosts_path.read_text().split()[1:3]
        known.write_text(f"[127.0.0.1]:{relay.port} {kind_name} {blob}\n")
        text = text.replace(f"port = {lab.sftp.port}", f"port = {relay.port}")
        text = text.replace(str(lab.sftp.known_hosts_path), str(known))
    else:
        text = text.replace(lab.s3.url, f"http://127.0.0.1:{relay.port}")
    path = folder / "sites.toml"
    path.write_text(text)
    return path


def _destination_digest(ctx: Context, kind: str) -> str:
    lab = ctx.lab
    if kind == "sftp":
        files = [Path(d) / n for d, _, names in os.walk(lab.la_root) for n in names]
        if len(files) != 1:
            raise RuntimeError(f"expected one file at la, found {len(files)}")
        return data.sha256_file(files[0])
    assert lab.s3 is not None
    keys = [k for k in lab.s3.keys("cloud/") if not k.endswith("/")]
    if len(keys) != 1:
        raise RuntimeError(f"expected one object under cloud/, found {len(keys)}")
    body = lab.s3.client().get_object(Bucket=lab.s3.bucket, Key=keys[0])["Body"]
    digest = hashlib.sha256()
    for block in body.iter_chunks(8 * 1024 * 1024):
        digest.update(block)
    return digest.hexdigest()


def _clean(ctx: Context, kind: str) -> None:
    if kind == "sftp":
        ctx.lab.clean_la()
    else:
        assert ctx.lab.s3 is not None
        ctx.lab.s3.delete_prefix("cloud/")


def run(ctx: Context, kind: str) -> dict[str, Any]:
    lab = ctx.lab
    lab.start_ftrack()
    assert lab.sftp is not None and lab.s3 is not None
    dataset = ctx.single(ctx.profile.resume_size)
    name = dataset.names[0]
    source_digest = data.sha256_file(dataset.path / name)
    destination = "la" if kind == "sftp" else "cloud"
    target = (lab.sftp.host, lab.sftp.port) if kind == "sftp" else host_port(lab.s3.url)
    relay = Relay(*target, rate=ctx.profile.resume_rate)
    folder = lab.work / f"resume-{kind}"
    data.remove(folder)
    folder.mkdir(parents=True)
    config = _config(ctx, folder, relay, kind)
    previous = lab.extra_env
    lab.extra_env = {"FTRACK_TRANSFER_CONFIG": str(config)}
    try:

        def publish() -> str:
            _, _, asset_id = lab.catalog.project("resume")
            version_id = lab.catalog.version(asset_id)
            lab.catalog.add_files(
                version_id, [FileEntry("main", dataset.relative(name), dataset.size)]
            )
            return version_id

        def send(version_id: str, tag: str, monitor: Any = None) -> Any:
            argv = ["send", "--from", "hq", "--to", destination, version_id, "--wait"]
            return ctx.python_side(f"resume-{kind}-{tag}", {"operation": "ours-cli", "argv": argv},
                                   monitor=monitor, check=monitor is None)  # fmt: skip

        # 1. The bytes a whole send puts on the wire.
        _clean(ctx, kind)
        relay.reset()
        clean_sample = send(publish(), "clean")
        clean = relay.bytes_up
        _clean(ctx, kind)

        # 2. The same send of a new version, killed half-way.
        version_id = publish()
        relay.reset()
        killed_at: dict[str, float] = {}

        def kill_half_way(process: subprocess.Popen[bytes]) -> None:
            while process.poll() is None:
                if relay.bytes_up >= clean * KILL_AT:
                    killed_at["bytes"] = relay.bytes_up
                    killed_at["time"] = time.monotonic()
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    return
                time.sleep(0.005)

        first = send(version_id, "killed", monitor=kill_half_way)
        first_up = relay.bytes_up
        if "bytes" not in killed_at:
            raise RuntimeError(
                "the send finished before the kill point; use a larger file or a rate cap"
            )
        job = ctx.journal_info(folder / "journal.sqlite")
        journalled = job["bytes_done"]

        # 3. Restart from the journal.
        relay.reset()
        argv = ["retry", job["id"], "--wait"]
        second = ctx.python_side(f"resume-{kind}-restart", {"operation": "ours-cli", "argv": argv})
        second_up = relay.bytes_up
        digest = _destination_digest(ctx, kind)
        status = ctx.journal_info(folder / "journal.sqlite", job["id"])["status"]
        _clean(ctx, kind)
    finally:
        lab.extra_env = previous
        relay.close()
    resent = first_up + second_up - clean
    result = {
        "kind": kind,
        "size": dataset.size,
        "clean_bytes": clean,
        "clean_seconds": clean_sample.seconds,
        "killed_at_bytes": killed_at["bytes"],
        "killed_at_percent": 100.0 * killed_at["bytes"] / clean,
        "first_bytes": first_up,
        "first_returncode": first.returncode,
        "journalled_at_kill": journalled,
        "restart_bytes": second_up,
        "restart_seconds": second.seconds,
        "restart_rss": second.rss,
        "resent_bytes": resent,
        "resent_percent": 100.0 * resent / clean,
        "status": status,
        "hash_equal": digest == source_digest,
        "rate_cap": ctx.profile.resume_rate,
    }
    log.info(
        "resume %s: killed at %.0f %%, re-sent %.1f %%, hash %s, job %s",
        kind,
        result["killed_at_percent"],
        result["resent_percent"],
        "equal" if result["hash_equal"] else "DIFFERENT",
        status,
    )
    return result
