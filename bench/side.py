"""One measured side, run in its own process: ``python -m bench.side SPEC.json``.

The spec names an operation and its arguments; the process times the transfer itself
(imports excluded, connection set-up included) and prints one result line. Operations:

``ours-copy``      the product's direct backend (``copy_files``) between two accessors
``boto3-upload``   boto3 ``upload_file`` with the default TransferConfig
``boto3-download`` boto3 ``download_file`` with the default TransferConfig
``boto3-copy``     boto3 managed ``copy`` (server-side) with the default TransferConfig
``ftrack-add``     the stock ftrack path: ``Location.add_component`` through a peer
                   accessor reproduction (see ``peers.py``)
``ours-cli``       the product's command line (``ftrack-transfer send ... --wait``,
                   ``sync``, ``retry``) in this process
``journal-info``   the latest job of a journal (not measured: read here rather than in the
                   harness so the journal is always read by the code that wrote it)
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .measure import emit


def _accessor_factory(spec: dict[str, Any]) -> Any:
    """Import the accessor's module now (before the clock), build it later."""
    from ftrack_transfer.accessors import accessor_class

    options = dict(spec)
    cls = accessor_class(options.pop("kind"))
    return lambda: cls(**options)


def ours_copy(spec: dict[str, Any]) -> None:
    from ftrack_transfer.transfer.bandwidth import BandwidthLimiter
    from ftrack_transfer.transfer.config import TransferSettings
    from ftrack_transfer.transfer.direct import Endpoints
    from ftrack_transfer.transfer.scheduler import copy_files

    if "manifest" in spec:
        pairs = [tuple(p) for p in json.loads(Path(spec["manifest"]).read_text())]
    else:
        pairs = [tuple(p) for p in spec["pairs"]]
    from ftrack_transfer.transfer.heap import share_one_heap

    share_one_heap()  # as the command line does
    make_source = _accessor_factory(spec["source"])
    make_destination = _accessor_factory(spec["destination"])
    started = time.perf_counter()
    source = make_source()
    destination = make_destination()
    endpoints = Endpoints(
        source,
        destination,
        TransferSettings(**spec.get("settings", {})),
        BandwidthLimiter(None),
        threading.Event(),
    )
    digests = copy_files(pairs, endpoints)
    seconds = time.perf_counter() - started
    source.close()
    destination.close()
    emit(seconds=seconds, files=len(digests))


def _s3_client(spec: dict[str, Any]) -> Any:
    import boto3  # imported by main() before the clock starts
    import botocore.config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=spec["endpoint_url"],
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )


def boto3_transfer(operation: str, spec: dict[str, Any]) -> None:
    started = time.perf_counter()
    client = _s3_client(spec)
    bucket = spec["bucket"]
    if operation == "boto3-upload":
        client.upload_file(spec["path"], bucket, spec["key"])
    elif operation == "boto3-download":
        client.download_file(bucket, spec["key"], spec["path"])
    else:
        client.copy({"Bucket": bucket, "Key": spec["source_key"]}, bucket, spec["key"])
    emit(seconds=time.perf_counter() - started)


def ftrack_add(spec: dict[str, Any]) -> None:
    import ftrack_api
    import ftrack_api.accessor.disk
    import ftrack_api.structure.standard

    from . import peers

    started = time.perf_counter()
    session = ftrack_api.Session(plugin_paths=[])
    # Connected like a Connect action's session (and like ours): add_component publishes
    # component-added events.
    session.event_hub.connect()
    source = session.query(f'Location where name is "{spec["source"]}"').one()
    source.accessor = ftrack_api.accessor.disk.DiskAccessor(prefix=spec["source_root"])
    source.structure = ftrack_api.structure.standard.StandardStructure()
    target = session.query(f'Location where name is "{spec["target"]}"').one()
    peer = spec["peer"]
    options = {k: v for k, v in peer.items() if k != "kind"}
    if peer["kind"] == "sftp":
        target.accessor = peers.PlainSftpAccessor(**options)
    else:
        target.accessor = peers.WholeObjectS3Accessor(**options)
    target.structure = ftrack_api.structure.standard.StandardStructure()
    components = session.query(
        f'Component where version_id is "{spec["version_id"]}" and container_id is none'
    ).all()
    # One component at a time, as the ftrack recipes' "Transfer components" action does.
    for component in components:
        target.add_component(component, source)
    seconds = time.perf_counter() - started
    session.close()
    emit(seconds=seconds, components=len(components))


def ours_cli(spec: dict[str, Any]) -> None:
    # Imported before the clock starts, as the other sides' libraries are: the command
    # line imports them lazily, which would otherwise count as transfer time.
    import ftrack_transfer.accessors.disk
    import ftrack_transfer.accessors.s3
    import ftrack_transfer.accessors.sftp
    import ftrack_transfer.transfer.commands.jobs
    import ftrack_transfer.transfer.commands.send
    import ftrack_transfer.transfer.commands.sync
    import ftrack_transfer.transfer.engine  # noqa: F401
    from ftrack_transfer.transfer.cli import main

    started = time.perf_counter()
    code = main(spec["argv"])
    seconds = time.perf_counter() - started
    emit(seconds=seconds, exit_code=code)
    if code:
        sys.exit(code)


def journal_info(spec: dict[str, Any]) -> None:
    from ftrack_transfer.transfer.journal import Journal

    journal = Journal(spec["journal"])
    try:
        job = journal.job(spec["job"]) if spec.get("job") else journal.jobs(limit=1)[0]
        progress = journal.progress(job.id)
        emit(
            id=job.id,
            status=job.status,
            created=job.created,
            started=job.started,
            finished=job.finished,
            bytes_done=progress.bytes_done,
        )
    finally:
        journal.close()


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text())
    operation = spec.pop("operation")
    if operation == "ours-copy":
        ours_copy(spec)
    elif operation.startswith("boto3-"):
        import boto3  # noqa: F401 - before the clock starts, as ours imports its modules

        boto3_transfer(operation, spec)
    elif operation == "ftrack-add":
        ftrack_add(spec)
    elif operation == "ours-cli":
        ours_cli(spec)
    elif operation == "journal-info":
        journal_info(spec)
    else:
        raise SystemExit(f"unknown operation {operation!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
