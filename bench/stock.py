"""The stock ftrack path against ours, both through the sandbox ftrack server.

The stock path is what a studio has without this product: ``Location.add_component``
(ftrack_api), which copies through ``Location._add_data`` into a peer accessor - the
reproductions in ``peers.py`` of ftrack's SFTP accessor (plain paramiko file objects)
and of the community S3 accessor (whole objects in memory). Ours is a real send:
``ftrack-transfer send --from hq --to <la|cloud> <version> --wait``, planning,
journal, verification and registration included. Both start their own ftrack session
and move a freshly published version; the ftrack requests each side makes are counted
at the server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import data
from .catalog import FileEntry
from .compare import Comparison, Side
from .context import Context
from .data import FRAME_START
from .measure import Sample
from .transfers import TransferFailed, check_s3

SFTP_PEER = "stock-sftp"
S3_PEER = "stock-s3"


def _publish(ctx: Context, shape: str, dest_kind: str) -> tuple[str, int, int]:
    """A fresh version at hq: ``(version id, files, bytes)``."""
    profile = ctx.profile
    catalog = ctx.lab.catalog
    _, _, asset_id = catalog.project("stock")
    version_id = catalog.version(asset_id)
    if shape == "file":
        size = profile.stock_sftp_single if dest_kind == "sftp" else profile.stock_s3_single
        dataset = ctx.single(size)
        name = dataset.names[0]
        catalog.add_files(version_id, [FileEntry("main", dataset.relative(name), size)])
        return version_id, 1, size
    count = profile.stock_sftp_frames if dest_kind == "sftp" else profile.stock_s3_frames
    dataset = ctx.sequence()
    names = dataset.names[:count]
    frames = [
        FileEntry(str(FRAME_START + i), dataset.relative(n), dataset.size, ".exr")
        for i, n in enumerate(names)
    ]
    catalog.add_sequence(version_id, "plate", f"{dataset.folder}/plate.%04d.exr", frames, 4, ".exr")
    return version_id, count, count * dataset.size


def _ftrack_side(
    ctx: Context,
    label: str,
    role: str,
    shape: str,
    dest_kind: str,
    execute: Callable[[str], Sample],
    where: Callable[[], Any],
    detail: str,
) -> Side:
    """A side that moves a fresh version; *where* names its destination (a local
    folder for SFTP, a key prefix for S3) to check and clean."""

    def clean() -> None:
        target = where()
        if dest_kind == "s3":
            assert ctx.lab.s3 is not None
            ctx.lab.s3.delete_prefix(target + "/")
        else:
            data.remove(target)
            target.mkdir(parents=True)

    def run(_: int) -> Sample:
        version_id, files, size = _publish(ctx, shape, dest_kind)
        clean()
        ctx.flush_disk()
        before = ctx.lab.ftrack.stats
        sample = execute(version_id)
        requests = ctx.lab.ftrack.stats - before
        sample.result["ftrack_requests"] = requests.requests
        try:
            target = where()
            if dest_kind == "s3":
                check_s3(ctx, target + "/", files, size, label)
            else:
                found = data.tree_bytes(target)
                if found != (files, size):
                    raise TransferFailed(
                        f"{label}: {target} holds {found}, expected {(files, size)}"
                    )
        finally:
            clean()
        return sample

    return Side(label, role, run, detail)


def stock_case(ctx: Context, case: str) -> Comparison:
    """``stock/<sftp|s3>-<file|sequence>``."""
    lab = ctx.lab
    lab.start_ftrack()
    assert lab.sftp is not None and lab.s3 is not None
    dest_kind, shape = case.split("/")[1].split("-")
    destination = "la" if dest_kind == "sftp" else "cloud"

    def ours(version_id: str) -> Sample:
        argv = ["send", "--from", "hq", "--to", destination, version_id, "--wait"]
        return ctx.python_side(f"{case}-ours", {"operation": "ours-cli", "argv": argv})

    if dest_kind == "sftp":
        peer_root = lab.sftp_dir("stock")
        peer: dict[str, Any] = {
            "kind": "sftp",
            "host": lab.sftp.host,
            "port": lab.sftp.port,
            "username": lab.sftp.username,
            "key_file": str(lab.sftp.client_key_path),
            "known_hosts": str(lab.sftp.known_hosts_path),
            "root": str(peer_root),
        }
        target, detail = (
            SFTP_PEER,
            "add_component through plain paramiko files (ftrack's SFTP accessor)",
        )

        def ours_where() -> Any:
            return lab.la_root

        def peer_where() -> Any:
            return peer_root
    else:
        peer = {
            "kind": "s3",
            "bucket": lab.s3.bucket,
            "prefix": "stock",
            "endpoint_url": lab.s3.url,
        }
        target, detail = (
            S3_PEER,
            "add_component through whole-object BytesIO + boto3 (community S3 accessor)",
        )

        def ours_where() -> Any:
            return "cloud"

        def peer_where() -> Any:
            return "stock"

    def stock(version_id: str) -> Sample:
        spec = {
            "operation": "ftrack-add",
            "source": "hq",
            "source_root": str(lab.data_root),
            "target": target,
            "version_id": version_id,
            "peer": peer,
        }
        return ctx.python_side(f"{case}-stock", spec)

    probe_files, probe_bytes = _shape_size(ctx, shape, dest_kind)
    sides = [
        _ftrack_side(ctx, "ours", "ours", shape, dest_kind, ours, ours_where,
                     f"ftrack-transfer send --to {destination} --wait"),
        _ftrack_side(ctx, "stock ftrack", "reference", shape, dest_kind, stock, peer_where, detail),
    ]  # fmt: skip
    what = "1 file" if shape == "file" else f"{probe_files} frames"
    to = "SFTP" if dest_kind == "sftp" else "S3"
    note = ""
    if (dest_kind, shape) == ("s3", "file"):
        note = (
            "the stock S3 accessor holds the whole object in memory (see its peak RSS) and "
            "uploads it with boto3's managed transfer on close: for one large file its speed "
            "is boto3's, so this ratio measures ours against boto3 plus a RAM-sized buffer"
        )
    return Comparison(
        case,
        "stock",
        f"ftrack send of {what} ({_mib(probe_bytes)}), disk to {to}",
        probe_bytes,
        probe_files,
        sides,
        target=20.0,
        note=note,
    )


def _shape_size(ctx: Context, shape: str, dest_kind: str) -> tuple[int, int]:
    profile = ctx.profile
    if shape == "file":
        return 1, profile.stock_sftp_single if dest_kind == "sftp" else profile.stock_s3_single
    count = profile.stock_sftp_frames if dest_kind == "sftp" else profile.stock_s3_frames
    return count, count * profile.sequence[1]


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n / 1024:,.0f} KiB"
