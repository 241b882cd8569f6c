"""Cases without ftrack: one large file, an image sequence and many small files.

Ours runs the product's direct backend (``copy_files``, the engine's scheduler and the
accessors with their default settings) between two accessors; the references are what
a studio would run instead: ``cp``, OpenSSH ``sftp`` in batch mode with the same cipher
against the same sshd, boto3's managed transfers with the default TransferConfig, and
``rclone copy`` with its defaults and with ``--transfers 16``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import data
from .compare import Comparison, Side
from .context import Context
from .lab import SSH_CIPHER
from .measure import Sample


class TransferFailed(RuntimeError):
    """A side's destination did not receive every byte."""


def _check_local(where: Path, files: int, size: int, label: str) -> None:
    found = data.tree_bytes(where)
    if found != (files, size):
        raise TransferFailed(f"{label}: {where} holds {found[0]} files / {found[1]} bytes, "
                             f"expected {files} / {size}")  # fmt: skip


def check_s3(ctx: Context, prefix: str, files: int, size: int, label: str) -> None:
    assert ctx.lab.s3 is not None
    client = ctx.lab.s3.client()
    count = total = 0
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=ctx.lab.s3.bucket, Prefix=prefix
    ):
        for entry in page.get("Contents", []):
            if not entry["Key"].endswith("/"):  # container markers
                count += 1
                total += entry["Size"]
    if (count, total) != (files, size):
        raise TransferFailed(f"{label}: s3://{ctx.lab.s3.bucket}/{prefix} holds {count} objects "
                             f"/ {total} bytes, expected {files} / {size}")  # fmt: skip


# --------------------------------------------------------------------------- destinations


class Destination:
    """Where one side writes in one round: prepared empty, checked, then removed."""

    def __init__(self, ctx: Context, kind: str, name: str) -> None:
        self.ctx, self.kind, self.name = ctx, kind, name

    @property
    def local(self) -> Path:
        if self.kind == "sftp":
            return self.ctx.lab.sftp_dir(self.name)
        return self.ctx.lab.out / self.name

    @property
    def prefix(self) -> str:
        return self.name

    def prepare(self) -> None:
        self.remove()
        if self.kind != "s3":
            self.local.mkdir(parents=True)
        self.ctx.flush_disk()

    def check(self, files: int, size: int, label: str) -> None:
        if self.kind == "s3":
            check_s3(self.ctx, self.prefix + "/", files, size, label)
        else:
            _check_local(self.local, files, size, label)

    def remove(self) -> None:
        if self.kind == "s3":
            assert self.ctx.lab.s3 is not None
            self.ctx.lab.s3.delete_prefix(self.prefix + "/")
        else:
            data.remove(self.local)

    def spec(self) -> dict[str, Any]:
        lab = self.ctx.lab
        if self.kind == "s3":
            return lab.s3_spec(self.prefix)
        if self.kind == "sftp":
            return lab.sftp_spec(str(self.local))
        return lab.disk_spec(self.local)


def _on_sftp_server(ctx: Context, folder: str, source: Path, names: Iterable[str]) -> Path:
    """A folder of the SFTP server holding *names* of *source*: hard links into the
    server's tree, which is on this machine, so they cost nothing."""
    remote_dir = ctx.lab.sftp_dir(folder)
    remote_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (remote_dir / name).exists():
            os.link(source / name, remote_dir / name)
    return remote_dir


def _side(
    ctx: Context,
    label: str,
    role: str,
    kind: str,
    files: int,
    size: int,
    execute: Callable[[Destination, int], Sample],
    detail: str = "",
    targeted: bool = True,
) -> Side:
    def run(round_number: int) -> Sample:
        tag = re.sub(r"\W+", "-", label.lower()).strip("-")
        destination = Destination(ctx, kind, f"{tag}-{round_number}")
        destination.prepare()
        try:
            sample = execute(destination, round_number)
            destination.check(files, size, label)
        finally:
            destination.remove()
        return sample

    return Side(label, role, run, detail, targeted)


def _ours(
    ctx: Context, name: str, source: dict[str, Any], pairs: list[tuple[str, str]]
) -> Callable[[Destination, int], Sample]:
    """The execute function of ours: copy_files from *source* into the destination."""
    manifest = ctx.specs / f"{name.replace('/', '_')}.pairs.json"
    manifest.write_text(json.dumps(pairs))

    def execute(destination: Destination, _: int) -> Sample:
        spec = {
            "operation": "ours-copy",
            "source": source,
            "destination": destination.spec(),
            "manifest": str(manifest),
        }
        return ctx.python_side(f"{name}-ours", spec)

    return execute


OURS_DETAIL = "ftrack-transfer direct backend (copy_files), default settings"
BOTO3_DETAIL = "boto3 managed transfer, default TransferConfig"


# --------------------------------------------------------------------------- one file


def single_file(ctx: Context, case: str) -> Comparison:
    """``single/<src>-<dst>``: one large file."""
    lab = ctx.lab
    assert lab.s3 is not None
    dataset = ctx.single(ctx.profile.single_size)
    name = dataset.names[0]
    size = dataset.size
    path = dataset.path / name
    route = case.split("/", 1)[1]
    source_kind, dest_kind = route.split("-")
    ours_source: dict[str, Any] = lab.disk_spec(lab.data_root)
    ours_pair = [(dataset.relative(name), name)]

    if source_kind == "sftp":
        remote_dir = _on_sftp_server(ctx, "source", dataset.path, [name])
        ours_source = lab.sftp_spec(str(remote_dir))
        ours_pair = [(name, name)]
    elif source_kind == "s3":
        key = f"source/{name}"
        client = lab.s3.client()
        try:
            client.head_object(Bucket=lab.s3.bucket, Key=key)
        except client.exceptions.ClientError:
            client.upload_file(str(path), lab.s3.bucket, key)
        ours_source = lab.s3_spec("source")
        ours_pair = [(name, name)]

    ours = _side(ctx, "ours", "ours", dest_kind, 1, size, _ours(ctx, case, ours_source, ours_pair),
                 OURS_DETAIL)  # fmt: skip
    if route == "disk-disk":
        reference = [_side(
            ctx, "cp", "reference", "disk", 1, size,
            lambda d, _: ctx.command_side(f"{case}-cp", ["cp", str(path), str(d.local / name)]),
            "coreutils cp",
        )]  # fmt: skip
        title = "1 file, local disk to local disk"
    elif "sftp" in route:
        if source_kind == "disk":
            command = f'put "{path}" "{{dest}}/{name}"\n'
        else:
            command = f'get "{lab.sftp_dir("source") / name}" "{{dest}}/{name}"\n'

        def openssh(then_sync: bool) -> Callable[[Destination, int], Sample]:
            def execute(destination: Destination, _: int) -> Sample:
                batch = ctx.specs / f"{route}.sftp"
                batch.write_text(command.format(dest=destination.local))
                argv = lab.sftp_command(batch)
                if not then_sync:
                    return ctx.command_side(f"{case}-openssh", argv)
                # The file is on this machine either way (the server's tree is local).
                target = str(destination.local / name)
                script = 'target=$1; shift; "$@"; exec sync -- "$target"'
                return ctx.command_side(f"{case}-openssh-sync",
                                        ["sh", "-ec", script, "sh", target, *argv])  # fmt: skip

            return execute

        reference = [
            _side(ctx, "OpenSSH sftp", "reference", dest_kind, 1, size, openssh(False),
                  f"sftp -b (batch) -c {SSH_CIPHER}, default buffer and requests"),
            # Ours returns once the file is on disk (fsync before the rename); sftp
            # returns with it in the page cache. This reference is timed to the same
            # point, for context: the target stays against plain sftp.
            _side(ctx, "OpenSSH sftp, then sync", "reference", dest_kind, 1, size,
                  openssh(True),
                  "the same sftp run, then coreutils sync FILE (an fsync of the file)",
                  targeted=False),
        ]  # fmt: skip
        title = (
            "1 file, disk to SFTP (put)" if source_kind == "disk" else "1 file, SFTP to disk (get)"
        )
    else:
        operation = {"disk-s3": "boto3-upload", "s3-disk": "boto3-download", "s3-s3": "boto3-copy"}[
            route
        ]

        def boto3(destination: Destination, _: int) -> Sample:
            spec: dict[str, Any] = {
                "operation": operation,
                "endpoint_url": lab.s3.url,  # type: ignore[union-attr]
                "bucket": lab.s3.bucket,  # type: ignore[union-attr]
            }
            if route == "disk-s3":
                spec.update(path=str(path), key=f"{destination.prefix}/{name}")
            elif route == "s3-disk":
                spec.update(key=f"source/{name}", path=str(destination.local / name))
            else:
                spec.update(source_key=f"source/{name}", key=f"{destination.prefix}/{name}")
            return ctx.python_side(f"{case}-boto3", spec)

        reference = [_side(ctx, "boto3", "reference", dest_kind, 1, size, boto3,
                           BOTO3_DETAIL + (" (copy: multipart UploadPartCopy)" if route == "s3-s3" else ""))]  # fmt: skip
        title = {
            "disk-s3": "1 file, disk to S3 (upload)",
            "s3-disk": "1 file, S3 to disk (download)",
            "s3-s3": "1 file, S3 to S3 (server-side copy)",
        }[route]
    return Comparison(
        case,
        "single",
        f"{title}, {_size(size)}",
        size,
        1,
        [ours, *reference],
        # cp is the machine's ceiling, not a competitor: ours also hashes and verifies.
        target=None if route == "disk-disk" else 1.0,
        note="moto copies the whole object on every GET: download figures are not meaningful"
        if route == "s3-disk" and lab.s3.kind == "moto"
        else "",
    )


# --------------------------------------------------------------------------- many files


def many_files(ctx: Context, case: str) -> Comparison:
    """``sequence/disk-<dst>``, ``small/disk-<dst>``: a folder of files sent from disk;
    ``sequence/sftp-disk``: the same frames fetched from an SFTP server (a vendor's
    delivery pulled home)."""
    group, route = case.split("/")
    dataset = ctx.sequence() if group == "sequence" else ctx.small()
    source_kind, dest_kind = route.split("-")
    count, size = len(dataset.names), dataset.total
    pairs = [(dataset.relative(n), n) for n in dataset.names]
    ours_source = ctx.lab.disk_spec(ctx.lab.data_root)
    rclone_source = str(dataset.path)
    if source_kind == "sftp":
        remote_dir = _on_sftp_server(ctx, f"source-{group}", dataset.path, dataset.names)
        ours_source = ctx.lab.sftp_spec(str(remote_dir))
        pairs = [(n, n) for n in dataset.names]
        rclone_source = f"sftp:{remote_dir}"
    ours = _side(ctx, "ours", "ours", dest_kind, count, size,
                 _ours(ctx, case, ours_source, pairs), OURS_DETAIL)  # fmt: skip

    def rclone(extra: list[str]) -> Callable[[Destination, int], Sample]:
        def execute(destination: Destination, _: int) -> Sample:
            if dest_kind == "sftp":
                target = f"sftp:{destination.local}"
            elif dest_kind == "disk":
                target = str(destination.local)
            else:
                target = f"s3:{ctx.lab.s3.bucket}/{destination.prefix}"  # type: ignore[union-attr]
            argv = ["rclone", "copy", rclone_source, target, *extra]
            return ctx.command_side(f"{case}-rclone", argv)

        return execute

    sides = [
        ours,
        _side(ctx, "rclone", "reference", dest_kind, count, size, rclone([]),
              "rclone copy, default settings (--transfers 4)"),
        _side(ctx, "rclone --transfers 16", "reference", dest_kind, count, size,
              rclone(["--transfers", "16"]), "rclone copy --transfers 16"),
    ]  # fmt: skip
    what = (
        f"{count:,} frames x {_size(dataset.size)}"
        if group == "sequence"
        else f"{count:,} files x {_size(dataset.size)}"
    )
    names = {"disk": "disk", "sftp": "SFTP", "s3": "S3"}
    route_text = f"{names[source_kind]} to {names[dest_kind]}"
    return Comparison(case, group, f"{what}, {route_text}", size, count, sides)


def _size(n: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} B"
