"""The reliability suite: what each scenario observed, and the table printed at the end.

Every test reports into one :class:`Recorder`: the faults it injected (as the fault
machinery says it fired them, not as asked), the bad inputs it tried and whether each was
refused. After each scenario :func:`audit` looks at the studio itself and records what it
finds:

* every visible file in every location's storage is byte-identical to a published source
  (a partial file under a final name would not be), and hidden temporaries are counted;
* every ComponentLocation ftrack holds for the test's locations is read back from storage
  and compared with the bytes that were published (an unverified registration would not
  match, or would have no file), and a registered sequence has every member registered;
* every job in the journal and every ftrack Job the test created has ended: none left
  ``running`` or ``queued``; each failed one carries a reason that is not an internal error.

``pytest_terminal_summary`` prints the totals, so the table is made of observations.
``FTRACK_TRANSFER_PROFILE=full`` (``scripts/reliability``) runs the long variants; tests
marked ``full`` are deselected in the fast profile rather than skipped.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ftrack_transfer.transfer.journal import FINISHED

from tests.actions.conftest import serve, web_ui  # noqa: F401 - fixtures reused here
from tests.conftest import profile
from tests.fixtures.studio import BUCKET, Published, StudioCase, files_under

FULL = profile() == "full"


# ---------------------------------------------------------------------------- recorder


@dataclasses.dataclass
class Recorder:
    """Totals of the run, filled by the tests and the audits."""

    faults: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    jobs_completed: int = 0
    jobs_failed_with_reason: int = 0
    jobs_failed_without_reason: int = 0
    partial_files: int = 0
    temporaries_left: int = 0
    unverified_registrations: int = 0
    registrations_checked: int = 0
    files_scanned: int = 0
    jobs_left_running: int = 0
    bad_inputs_tried: int = 0
    bad_inputs_refused: int = 0
    audits: int = 0
    figures: dict[str, str] = dataclasses.field(default_factory=dict)

    def fault(self, kind: str, fired: int) -> int:
        """*fired* faults of *kind* really happened (as the injector reports)."""
        self.faults[kind] += fired
        return fired

    def figure(self, name: str, value: str) -> None:
        self.figures[name] = value

    def rows(self) -> list[tuple[str, str]]:
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items()))
        return [
            ("faults injected", f"{sum(self.faults.values())} ({faults or 'none'})"),
            ("jobs completed", str(self.jobs_completed)),
            ("jobs failed with a reason", str(self.jobs_failed_with_reason)),
            ("jobs failed without a clear reason", str(self.jobs_failed_without_reason)),
            (
                "partial files found under final names",
                f"{self.partial_files} (of {self.files_scanned} files scanned)",
            ),
            (
                "unverified registrations",
                f"{self.unverified_registrations} (of {self.registrations_checked} read back)",
            ),
            ("Jobs left running", str(self.jobs_left_running)),
            ("hidden temporaries left", str(self.temporaries_left)),
            (
                "bad inputs tried / refused",
                f"{self.bad_inputs_tried} / {self.bad_inputs_refused}",
            ),
            ("audits run", str(self.audits)),
        ]


RECORDER = Recorder()


@pytest.fixture(scope="session")
def recorder() -> Recorder:
    return RECORDER


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Long variants run in the full profile only; deselected (not skipped) in the fast one.
    if FULL:
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("full") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not (RECORDER.audits or RECORDER.bad_inputs_tried or RECORDER.faults):
        return
    terminalreporter.section(f"reliability ({profile()} profile)")
    width = max(len(name) for name, _ in RECORDER.rows())
    for name, value in RECORDER.rows():
        terminalreporter.write_line(f"{name:<{width}}  {value}")
    if RECORDER.figures:
        terminalreporter.write_line("")
        width = max(len(name) for name in RECORDER.figures)
        for name, value in RECORDER.figures.items():
            terminalreporter.write_line(f"{name:<{width}}  {value}")


# ---------------------------------------------------------------------------- sources


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Ledger:
    """What the test published: the expected bytes (as a digest) of every component
    and sequence member, so the audit can check what ftrack says is where."""

    def __init__(self, studio: StudioCase) -> None:
        self.studio = studio
        self.expected: dict[str, str] = {}
        self.containers: dict[str, list[str]] = {}
        #: Digests of every file the test put in any storage on purpose.
        self.sources: set[str] = set()

    def publish(self, **options: Any) -> Published:
        published = self.studio.publish(**options)
        sequences = options.get("sequences") or {}
        session = self.studio.session()
        for name, component_id in published.components.items():
            files = published.files[name]
            if name in sequences:
                members = sorted(
                    session.query(
                        f'select id, name from Component where container_id is "{component_id}"'
                    ).all(),
                    key=lambda m: m["name"],
                )
                assert len(members) == len(files)
                self.containers[component_id] = [m["id"] for m in members]
                for member, path in zip(members, files, strict=True):
                    self.add(member["id"], path.read_bytes())
            else:
                self.add(component_id, files[0].read_bytes())
        return published

    def add(self, component_id: str, data: bytes) -> None:
        digest = sha(data)
        self.expected[component_id] = digest
        self.sources.add(digest)

    def bulk(
        self,
        frames: int,
        *,
        size: int = 1024,
        per_sequence: int = 500,
        shot: str = "sq010/sh0010",
    ) -> str:
        """A version with *frames* files in sequences of *per_sequence*, at hq.

        The stock ``create_component`` path costs ftrack_api tens of milliseconds per file
        (10,000 files would take many minutes), so the files are written at hq and the
        components and their ComponentLocations are created in large batches through the
        same client (``session.call``): what ftrack then holds is what a publish leaves.
        """
        studio = self.studio
        session = studio.session()
        plate = session.query('AssetType where name is "Plate"').one()
        asset = session.create(
            "Asset",
            {
                "name": f"bulk-{uuid.uuid4().hex[:6]}",
                "context_id": studio.server.seed_info.shots[shot],
                "type": plate,
            },
        )
        version = session.create("AssetVersion", {"asset": asset})
        session.commit()
        hq = studio.location(session, "hq")
        root = studio.roots["hq"]
        operations: list[dict[str, Any]] = []

        def create(entity_type: str, data: dict[str, Any]) -> str:
            entity_id = str(uuid.uuid4())
            operations.append(
                {
                    "action": "create",
                    "entity_type": entity_type,
                    "entity_key": [entity_id],
                    "entity_data": {"__entity_type__": entity_type, "id": entity_id, **data},
                }
            )
            return entity_id

        for first in range(0, frames, per_sequence):
            count = min(per_sequence, frames - first)
            name = f"plate{first // per_sequence:03d}"
            folder = f"bulk/{version['id']}/{name}"
            (root / folder).mkdir(parents=True, exist_ok=True)
            sequence_id = create(
                "SequenceComponent",
                {"name": name, "file_type": ".exr", "padding": 4, "size": count * size,
                 "version_id": version["id"]},
            )  # fmt: skip
            create(
                "ComponentLocation",
                {"component_id": sequence_id, "location_id": hq["id"],
                 "resource_identifier": f"{folder}/{name}.%04d.exr"},
            )  # fmt: skip
            members = []
            for frame in range(1001, 1001 + count):
                ri = f"{folder}/{name}.{frame}.exr"
                data = hashlib.sha256(f"{version['id']}/{ri}".encode()).digest() * (size // 32 + 1)
                data = data[:size]
                (root / ri).write_bytes(data)
                member_id = create(
                    "FileComponent",
                    {"name": str(frame), "file_type": ".exr", "size": size,
                     "container_id": sequence_id},
                )  # fmt: skip
                create(
                    "ComponentLocation",
                    {"component_id": member_id, "location_id": hq["id"], "resource_identifier": ri},
                )
                self.add(member_id, data)
                members.append(member_id)
            self.containers[sequence_id] = members
        for start in range(0, len(operations), 2000):
            session.call(operations[start : start + 2000])
        return version["id"]


@pytest.fixture
def ledger(studio: StudioCase) -> Ledger:
    return Ledger(studio)


def studio_secrets(studio: StudioCase) -> dict[str, str]:
    """The secret values of the studio's servers, to look for where none may appear."""
    return {
        "ftrack API key": studio.server.api_key,
        "ftrack key of pipeline": studio.server.user_key("pipeline"),
        "ftrack key of alice": studio.server.user_key("alice"),
        "S3 secret key": studio.s3.secret_key,
        "accsyn API key": studio.accsyn.api_key,
    }


# ---------------------------------------------------------------------------- storage


def s3_objects(studio: StudioCase, prefix: str) -> dict[str, bytes]:
    """Objects under *prefix* in the studio bucket (directory markers left out)."""
    client = studio.s3.client()
    found: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix + "/"
    ):
        for entry in page.get("Contents", []):
            if not entry["Key"].endswith("/"):
                found[entry["Key"]] = client.get_object(Bucket=BUCKET, Key=entry["Key"])[
                    "Body"
                ].read()
    return found


def s3_uploads(studio: StudioCase, prefix: str) -> list[str]:
    """Multipart uploads still open under *prefix*: S3's temporaries."""
    reply = studio.s3.client().list_multipart_uploads(Bucket=BUCKET, Prefix=prefix + "/")
    return [upload["Key"] for upload in reply.get("Uploads", [])]


def snapshot(studio: StudioCase, extra: dict[str, Path] | None = None) -> dict[str, str]:
    """Every file of every location (hidden ones too) -> digest: storage as it stands."""
    state: dict[str, str] = {}
    for role, root in {**studio.roots, **(extra or {})}.items():
        for path in files_under(root):
            state[f"{role}:{path.relative_to(root)}"] = sha(path.read_bytes())
    for key, data in s3_objects(studio, studio.names["cloud"]).items():
        state[f"cloud:{key}"] = sha(data)
    for key in s3_uploads(studio, studio.names["cloud"]):
        state[f"cloud-upload:{key}"] = "open"
    return state


# ---------------------------------------------------------------------------- audit


@dataclasses.dataclass
class Findings:
    partial_files: list[str]
    temporaries: list[str]
    unverified: list[str]
    running: list[str]
    unclear: list[str]
    completed: int
    failed: int
    registrations: int


class Auditor:
    """Looks at a studio after a scenario; see the module docstring."""

    def __init__(self, studio: StudioCase, recorder: Recorder) -> None:
        self.studio = studio
        self.recorder = recorder
        # ftrack Jobs that existed before the test: anything newer is the test's.
        self.jobs_before = {row["id"] for row in studio.server.query("select id from Job")}

    def __call__(
        self,
        ledger: Ledger,
        *,
        extra_roots: dict[str, Path] | None = None,
        temporaries_allowed: bool = False,
        journals: Iterable[Any] = (),
    ) -> Findings:
        partial, temporaries, scanned = self.storage(ledger, extra_roots)
        roots = {**self.studio.roots, **(extra_roots or {})}
        unverified, registrations = self._registrations(ledger, roots, dict(self.studio.names))
        running, unclear, completed, failed = self._jobs(journals)

        findings = Findings(
            partial, temporaries, unverified, running, unclear, completed, failed, registrations
        )
        recorder = self.recorder
        recorder.audits += 1
        recorder.files_scanned += scanned
        recorder.partial_files += len(partial)
        recorder.temporaries_left += len(temporaries)
        recorder.unverified_registrations += len(unverified)
        recorder.registrations_checked += registrations
        recorder.jobs_left_running += len(running)
        recorder.jobs_completed += completed
        recorder.jobs_failed_with_reason += failed - len(unclear)
        recorder.jobs_failed_without_reason += len(unclear)
        assert partial == [], f"partial or foreign files under final names: {partial[:10]}"
        assert unverified == [], (
            f"registrations not backed by the published bytes: {unverified[:10]}"
        )
        assert running == [], f"jobs left unfinished: {running[:10]}"
        assert unclear == [], f"jobs failed without a clear reason: {unclear[:10]}"
        if not temporaries_allowed:
            assert temporaries == [], f"temporaries left behind: {temporaries[:10]}"
        return findings

    def interim(self, ledger: Ledger) -> None:
        """The storage and registration checks alone, at any instant of a scenario (a
        job may be half done): what is under a final name, or registered, is whole."""
        partial, _, scanned = self.storage(ledger)
        unverified, registrations = self._registrations(
            ledger, dict(self.studio.roots), dict(self.studio.names)
        )
        recorder = self.recorder
        recorder.files_scanned += scanned
        recorder.partial_files += len(partial)
        recorder.unverified_registrations += len(unverified)
        recorder.registrations_checked += registrations
        assert partial == [], f"partial or foreign files under final names: {partial[:10]}"
        assert unverified == [], (
            f"registrations not backed by the published bytes: {unverified[:10]}"
        )

    def storage(
        self, ledger: Ledger, extra_roots: dict[str, Path] | None = None
    ) -> tuple[list[str], list[str], int]:
        """(visible files that match no source, hidden temporaries, files scanned)."""
        studio = self.studio
        roots = {**studio.roots, **(extra_roots or {})}
        partial: list[str] = []
        temporaries: list[str] = []
        scanned = 0
        for role, root in roots.items():
            for path in files_under(root):
                if path.name.startswith("."):
                    temporaries.append(str(path))
                    continue
                scanned += 1
                if sha(path.read_bytes()) not in ledger.sources:
                    partial.append(f"{role}: {path.relative_to(root)}")
        cloud = studio.names["cloud"]
        for key, data in s3_objects(studio, cloud).items():
            scanned += 1
            if sha(data) not in ledger.sources:
                partial.append(f"cloud: {key}")
        temporaries += [f"cloud upload: {key}" for key in s3_uploads(studio, cloud)]
        return partial, temporaries, scanned

    def _registrations(
        self, ledger: Ledger, roots: dict[str, Path], names: dict[str, str]
    ) -> tuple[list[str], int]:
        studio = self.studio
        by_id = {}
        for role, name in names.items():
            rows = studio.server.query(f'select id from Location where name is "{name}"')
            if rows:
                by_id[rows[0]["id"]] = role
        if not by_id:
            return [], 0
        ids = ", ".join(f'"{i}"' for i in by_id)
        rows = studio.server.query(
            "select component_id, location_id, resource_identifier from ComponentLocation "
            f"where location_id in ({ids})"
        )
        registered = {(row["component_id"], by_id[row["location_id"]]) for row in rows}
        unverified: list[str] = []
        for row in rows:
            role = by_id[row["location_id"]]
            component_id, ri = row["component_id"], row["resource_identifier"]
            where = f"{component_id} at {role} ({ri})"
            if component_id in ledger.containers:
                missing = [
                    m for m in ledger.containers[component_id] if (m, role) not in registered
                ]
                if missing:
                    unverified.append(f"{where}: {len(missing)} members not registered")
                continue
            expected = ledger.expected.get(component_id)
            if expected is None:
                unverified.append(f"{where}: not a component the test published")
                continue
            data = self._read(role, ri, roots, names)
            if data is None:
                unverified.append(f"{where}: no file")
            elif sha(data) != expected:
                unverified.append(f"{where}: {len(data)} bytes that differ from the source")
        return unverified, len(rows)

    def _read(
        self, role: str, ri: str, roots: dict[str, Path], names: dict[str, str]
    ) -> bytes | None:
        # Read straight from storage, not through the product's accessors: the audit
        # must not trust the code it checks.
        if role == "cloud":
            client = self.studio.s3.client()
            try:
                return client.get_object(Bucket=BUCKET, Key=f"{names['cloud']}/{ri}")["Body"].read()
            except client.exceptions.NoSuchKey:
                return None
        path = roots[role].joinpath(*ri.split("/"))
        return path.read_bytes() if path.is_file() else None

    def _jobs(self, journals: Iterable[Any]) -> tuple[list[str], list[str], int, int]:
        studio = self.studio
        running: list[str] = []
        unclear: list[str] = []
        completed = failed = 0
        seen: set[str] = set()
        for journal in [studio.journal(), *journals]:
            for job in journal.jobs(limit=10_000):
                if job.id in seen:
                    continue
                seen.add(job.id)
                if job.status not in FINISHED:
                    running.append(f"journal job {job.id} {job.status}: {job.message}")
                elif job.status == "done":
                    completed += 1
                else:
                    failed += 1
                    if not job.message or job.message.startswith("internal error"):
                        unclear.append(f"job {job.id}: {job.message!r}")
        for row in studio.server.query("select id, status, data from Job"):
            if row["id"] in self.jobs_before:
                continue
            if row["status"] in ("running", "queued"):
                description = json.loads(row["data"] or "{}").get("description", "")
                running.append(f"ftrack Job {row['id']} {row['status']}: {description}")
        return running, unclear, completed, failed


@pytest.fixture
def audit(studio: StudioCase, recorder: Recorder) -> Iterator[Auditor]:
    auditor = Auditor(studio, recorder)
    yield auditor
    # Faults left armed would hit the next test on the shared servers.
    studio.server.faults.clear()
    studio.accsyn.faults.clear()
