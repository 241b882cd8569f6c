"""The journal: every send's plan and progress, persisted before any byte moves.

One SQLite file per service (WAL mode, so ``ftrack-transfer status`` can read while
``serve`` writes). It holds jobs, their components, their files and, per file, the
chunks already written with their SHA-256, so any process can resume a job after a
crash without re-sending a finished chunk.

Ownership: a process running a job holds a *lease* on it (owner id + heartbeat). A lease
whose process is gone (same host: the pid is dead or now belongs to a process started
later; other hosts: no heartbeat for :data:`LEASE_TIMEOUT` seconds) can be taken over,
which is how a restarted ``serve`` resumes work. One ``serve`` per journal is enforced
with an OS file lock that the kernel releases when the process dies, whatever the way.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import JobError, UserError

#: Seconds without a heartbeat after which another host may take a job over.
LEASE_TIMEOUT = 60.0

JOB_STATES = ("queued", "planning", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    origin TEXT NOT NULL,
    username TEXT,
    user_id TEXT,
    source TEXT NOT NULL,
    destinations TEXT NOT NULL,
    request TEXT NOT NULL,
    ftrack_job_id TEXT,
    message TEXT NOT NULL DEFAULT '',
    priority INTEGER NOT NULL DEFAULT 500,
    owner TEXT,
    heartbeat REAL,
    cancel_requested_by TEXT,
    files_total INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    ftrack_unreported INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE TABLE IF NOT EXISTS components (
    job_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    component_id TEXT NOT NULL,
    container_id TEXT,
    name TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    resource_identifier TEXT NOT NULL,
    members INTEGER NOT NULL DEFAULT 0,
    registered INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, destination, component_id)
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    component_id TEXT,
    source_ri TEXT NOT NULL,
    dest_ri TEXT NOT NULL,
    size INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    backend TEXT NOT NULL DEFAULT 'direct',
    token TEXT,
    chunk_size INTEGER,
    source_mtime REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    bytes_sent INTEGER NOT NULL DEFAULT 0,
    digest TEXT,
    remote_ref TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS files_job ON files(job_id, status);
CREATE TABLE IF NOT EXISTS chunks (
    file_id INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    digest BLOB NOT NULL,
    -- the digest's hash (accessors.digests); chunks journalled before there was a
    -- choice were SHA-256
    digest_kind TEXT NOT NULL DEFAULT 'sha256',
    receipt TEXT,
    PRIMARY KEY (file_id, offset)
);
CREATE TABLE IF NOT EXISTS schedule_runs (
    name TEXT PRIMARY KEY,
    started REAL,
    finished REAL,
    status TEXT,
    summary TEXT,
    job_id TEXT,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS seen_events (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL
);
"""


@dataclasses.dataclass
class Job:
    id: str
    status: str
    origin: str
    username: str | None
    user_id: str | None
    source: str
    destinations: list[str]
    request: dict[str, Any]
    ftrack_job_id: str | None
    message: str
    priority: int
    owner: str | None
    heartbeat: float | None
    cancel_requested_by: str | None
    files_total: int
    bytes_total: int
    created: float
    updated: float
    started: float | None
    finished: float | None
    ftrack_unreported: int = 0

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


@dataclasses.dataclass
class FileRow:
    id: int
    job_id: str
    destination: str
    component_id: str | None
    source_ri: str
    dest_ri: str
    size: int
    status: str
    backend: str
    token: str | None
    chunk_size: int | None
    source_mtime: float | None
    attempts: int
    bytes_sent: int
    digest: str | None
    remote_ref: str | None
    error: str | None


@dataclasses.dataclass
class ComponentRow:
    job_id: str
    destination: str
    component_id: str
    container_id: str | None
    name: str
    label: str
    kind: str
    resource_identifier: str
    members: int
    registered: bool


@dataclasses.dataclass
class Progress:
    files_total: int
    files_done: int
    files_failed: int
    bytes_total: int
    bytes_done: int
    components_total: int
    components_registered: int


def owner_id() -> str:
    """This process as a lease owner: ``host:pid:random[:start]``.

    ``start`` is when the process started (Linux), so a dead owner's pid that a new
    process has taken since is not mistaken for the owner; elsewhere the heartbeat's age
    decides.
    """
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    start = process_start(os.getpid())
    return f"{owner}:{start}" if start else owner


def process_start(pid: int) -> str | None:
    """When process *pid* started, in clock ticks since boot (``/proc``), else ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count after the last ")".
    fields = stat.rpartition(b")")[2].split()
    return fields[19].decode() if len(fields) > 19 else None


def owner_alive(owner: str | None, heartbeat: float | None, now: float | None = None) -> bool:
    """Whether the process holding a lease is still running."""
    if not owner:
        return False
    host, pid, _, start = [*owner.split(":"), "", "", ""][:4]
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        if start:
            running_since = process_start(int(pid))
            if running_since is not None:
                return running_since == start  # else the pid was reused by another process
        return heartbeat is None or (now or time.time()) - heartbeat < LEASE_TIMEOUT * 10
    return heartbeat is not None and (now or time.time()) - heartbeat < LEASE_TIMEOUT


class Journal:
    """Thread-safe access to one journal file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, timeout=30, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process; only a power loss can lose the
            # last transaction, which resume then simply redoes.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._migrate()
        except sqlite3.Error as error:
            raise UserError(f"cannot open the journal {self.path}: {error}") from None
        self._db.row_factory = sqlite3.Row
        self._serve_lock_file: Any = None

    def _migrate(self) -> None:
        """Bring a journal written by an earlier version up to this schema (columns
        added since are appended with their defaults)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "ftrack_unreported" not in columns:
            self._db.execute(
                "ALTER TABLE jobs ADD COLUMN ftrack_unreported INTEGER NOT NULL DEFAULT 0"
            )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(chunks)")}
        if "sha256" in columns:
            self._db.execute("ALTER TABLE chunks RENAME COLUMN sha256 TO digest")
        if "digest_kind" not in columns:
            self._db.execute(
                "ALTER TABLE chunks ADD COLUMN digest_kind TEXT NOT NULL DEFAULT 'sha256'"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._serve_lock_file is not None:
                self._serve_lock_file.close()
                self._serve_lock_file = None

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock:
            self._db.execute(sql, params)

    # ------------------------------------------------------------------ serve lock

    def acquire_serve_lock(self) -> None:
        """Hold the journal's serve lock for this process's life, or raise with who has it."""
        lock_path = self.path.with_name(self.path.name + ".serve.lock")
        handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(
                f"another serve is already running on journal {self.path} ({holder}); "
                "stop it first, or give this one its own journal in the sites config"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._serve_lock_file = handle

    def serve_running(self) -> bool:
        """Whether some process holds the serve lock of this journal."""
        lock_path = self.path.with_name(self.path.name + ".serve.lock")
        if not lock_path.exists() or self._serve_lock_file is not None:
            return self._serve_lock_file is not None
        with open(lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    # ------------------------------------------------------------------ jobs

    def create_job(
        self,
        *,
        source: str,
        destinations: Sequence[str],
        request: dict[str, Any],
        origin: str,
        username: str | None,
        user_id: str | None,
        priority: int = 500,
        status: str = "queued",
        job_id: str | None = None,
        owner: str | None = None,
    ) -> str:
        """A new job; with *owner*, leased to that runner from the start, so no other
        (a serve's housekeeping) picks it up before its creator runs it."""
        job_id = job_id or uuid.uuid4().hex[:12]
        now = time.time()
        self._execute(
            "INSERT INTO jobs (id, created, updated, status, origin, username, user_id, source,"
            " destinations, request, priority, owner, heartbeat) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (job_id, now, now, status, origin, username, user_id, source,
             json.dumps(list(destinations)), json.dumps(request), priority,
             owner, now if owner else None),
        )  # fmt: skip
        return job_id

    def _job(self, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["destinations"] = json.loads(data["destinations"])
        data["request"] = json.loads(data["request"])
        return Job(**data)

    def job(self, job_id: str) -> Job:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            rows = self._query(
                "SELECT * FROM jobs WHERE id LIKE ? ORDER BY created DESC", (job_id + "%",)
            )
            if len(rows) > 1:
                raise JobError(f'job id "{job_id}" is ambiguous; give more characters')
        if not rows:
            raise JobError(
                f'no job "{job_id}" in journal {self.path}; `ftrack-transfer status` lists jobs'
            )
        return self._job(rows[0])

    def jobs(self, statuses: Iterable[str] | None = None, limit: int = 50) -> list[Job]:
        if statuses:
            statuses = list(statuses)
            marks = ",".join("?" * len(statuses))
            rows = self._query(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created DESC LIMIT ?",
                (*statuses, limit),
            )
        else:
            rows = self._query("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,))
        return [self._job(r) for r in rows]

    def update_job(self, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        fields["updated"] = time.time()
        for key in ("destinations", "request"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        assignments = ", ".join(f"{key} = ?" for key in fields)
        self._execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*fields.values(), job_id))

    def claim(self, job_id: str, owner: str) -> bool:
        """Take the lease of an unfinished job whose owner is gone; True if this process has it."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT status, owner, heartbeat FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None or row["status"] in FINISHED:
                return False
            if (
                row["owner"]
                and row["owner"] != owner
                and owner_alive(row["owner"], row["heartbeat"])
            ):
                return False
            db.execute(
                "UPDATE jobs SET owner = ?, heartbeat = ?, updated = ? WHERE id = ?",
                (owner, time.time(), time.time(), job_id),
            )
            return True

    def heartbeat(self, job_id: str, owner: str) -> None:
        self._execute(
            "UPDATE jobs SET heartbeat = ? WHERE id = ? AND owner = ?", (time.time(), job_id, owner)
        )

    def release(self, job_id: str, owner: str) -> None:
        self._execute("UPDATE jobs SET owner = NULL WHERE id = ? AND owner = ?", (job_id, owner))

    def resumable_jobs(self) -> list[Job]:
        """Unfinished jobs nobody alive is running, oldest first."""
        rows = self._query(
            "SELECT * FROM jobs WHERE status IN ('queued', 'planning', 'running') ORDER BY priority DESC, created"
        )
        return [j for j in map(self._job, rows) if not owner_alive(j.owner, j.heartbeat)]

    def unreported_jobs(self) -> list[Job]:
        """Finished jobs whose final status did not reach their ftrack Job (ftrack was
        down when they ended); ``serve`` reports them again."""
        rows = self._query("SELECT * FROM jobs WHERE ftrack_unreported = 1 ORDER BY finished")
        return [self._job(r) for r in rows]

    def request_cancel(self, job_id: str, username: str) -> None:
        self._execute(
            "UPDATE jobs SET cancel_requested_by = ?, updated = ? WHERE id = ?",
            (username, time.time(), job_id),
        )

    # ------------------------------------------------------------------ plan

    def add_plan(
        self,
        job_id: str,
        components: Iterable[ComponentRow],
        files: Iterable[dict[str, Any]],
    ) -> None:
        """Persist a job's plan (components to register, files to move) in one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO components (job_id, destination, component_id, container_id,"
                " name, label, kind, resource_identifier, members) VALUES (?,?,?,?,?,?,?,?,?)",
                [(job_id, c.destination, c.component_id, c.container_id, c.name, c.label, c.kind,
                  c.resource_identifier, c.members) for c in components],
            )  # fmt: skip
            db.executemany(
                "INSERT INTO files (job_id, destination, component_id, source_ri, dest_ri, size, backend)"
                " VALUES (?,?,?,?,?,?,?)",
                [(job_id, f["destination"], f.get("component_id"), f["source_ri"], f["dest_ri"],
                  f["size"], f.get("backend", "direct")) for f in files],
            )  # fmt: skip
            totals = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files WHERE job_id = ?", (job_id,)
            ).fetchone()
            db.execute(
                "UPDATE jobs SET files_total = ?, bytes_total = ?, updated = ? WHERE id = ?",
                (totals[0], totals[1], time.time(), job_id),
            )

    def components(self, job_id: str) -> list[ComponentRow]:
        rows = self._query("SELECT * FROM components WHERE job_id = ? ORDER BY rowid", (job_id,))
        return [ComponentRow(**{**dict(r), "registered": bool(r["registered"])}) for r in rows]

    def mark_registered(self, job_id: str, destination: str, component_ids: Iterable[str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE components SET registered = 1 WHERE job_id = ? AND destination = ? AND component_id = ?",
                [(job_id, destination, cid) for cid in component_ids],
            )

    # ------------------------------------------------------------------ files

    def _file(self, row: sqlite3.Row) -> FileRow:
        return FileRow(**dict(row))

    def files(self, job_id: str, statuses: Iterable[str] | None = None) -> list[FileRow]:
        if statuses:
            statuses = list(statuses)
            marks = ",".join("?" * len(statuses))
            rows = self._query(
                f"SELECT * FROM files WHERE job_id = ? AND status IN ({marks}) ORDER BY id",
                (job_id, *statuses),
            )
        else:
            rows = self._query("SELECT * FROM files WHERE job_id = ? ORDER BY id", (job_id,))
        return [self._file(r) for r in rows]

    def file(self, file_id: int) -> FileRow:
        return self._file(self._query("SELECT * FROM files WHERE id = ?", (file_id,))[0])

    def update_file(self, file_id: int, **fields: Any) -> None:
        assignments = ", ".join(f"{key} = ?" for key in fields)
        self._execute(f"UPDATE files SET {assignments} WHERE id = ?", (*fields.values(), file_id))

    def update_files(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Several file updates in one transaction (many small files finishing together)."""
        with self.transaction() as db:
            for file_id, fields in updates:
                assignments = ", ".join(f"{key} = ?" for key in fields)
                db.execute(
                    f"UPDATE files SET {assignments} WHERE id = ?", (*fields.values(), file_id)
                )

    def reset_files(self, job_id: str, statuses: Sequence[str]) -> int:
        """Put files back to pending (retry); their finished chunks stay, so they resume."""
        marks = ",".join("?" * len(statuses))
        with self.transaction() as db:
            cursor = db.execute(
                f"UPDATE files SET status = 'pending', error = NULL, attempts = 0"
                f" WHERE job_id = ? AND status IN ({marks})",
                (job_id, *statuses),
            )
            return cursor.rowcount

    # ------------------------------------------------------------------ chunks

    def record_chunk(
        self,
        file_id: int,
        offset: int,
        length: int,
        digest: bytes,
        digest_kind: str,
        receipt: str | None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO chunks (file_id, offset, length, digest, digest_kind,"
                " receipt) VALUES (?,?,?,?,?,?)",
                (file_id, offset, length, digest, digest_kind, receipt),
            )
            db.execute(
                "UPDATE files SET bytes_sent = bytes_sent + ? WHERE id = ?", (length, file_id)
            )

    def mark_done(self, landed: Sequence[tuple[int, str | None, int]]) -> None:
        """Files that landed and verified: ``(file id, digest, bytes sent whole)``, in
        one transaction (bytes sent in chunks were counted as the chunks were)."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE files SET status = 'done', digest = ?, error = NULL,"
                " bytes_sent = bytes_sent + ? WHERE id = ?",
                [(digest, nbytes, file_id) for file_id, digest, nbytes in landed],
            )

    def chunks(self, file_id: int) -> list[tuple[int, int, bytes, str, str | None]]:
        """``(offset, length, digest, digest kind, receipt)`` of a file's written chunks."""
        rows = self._query(
            "SELECT offset, length, digest, digest_kind, receipt FROM chunks WHERE file_id = ?"
            " ORDER BY offset",
            (file_id,),
        )
        return [
            (r["offset"], r["length"], bytes(r["digest"]), r["digest_kind"], r["receipt"])
            for r in rows
        ]

    def clear_chunks(self, file_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
            db.execute("UPDATE files SET bytes_sent = 0, token = NULL WHERE id = ?", (file_id,))

    # ------------------------------------------------------------------ progress

    def progress(self, job_id: str) -> Progress:
        files = self._query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS total,"
            " COALESCE(SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END), 0) AS done,"
            " COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS failed,"
            " COALESCE(SUM(CASE WHEN status = 'done' THEN size ELSE MIN(bytes_sent, size) END), 0) AS sent"
            " FROM files WHERE job_id = ?",
            (job_id,),
        )[0]
        comps = self._query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(registered), 0) AS registered FROM components"
            " WHERE job_id = ? AND container_id IS NULL",
            (job_id,),
        )[0]
        return Progress(
            files_total=files["n"],
            files_done=files["done"],
            files_failed=files["failed"],
            bytes_total=files["total"],
            bytes_done=files["sent"],
            components_total=comps["n"],
            components_registered=comps["registered"],
        )

    # ------------------------------------------------------------------ schedules / events

    def schedule_run(self, name: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM schedule_runs WHERE name = ?", (name,))
        return dict(rows[0]) if rows else None

    def schedule_runs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM schedule_runs ORDER BY name")]

    def start_schedule_run(self, name: str, owner: str) -> bool:
        """Mark a schedule as running for *owner*; False if a live run already holds it."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT owner, status FROM schedule_runs WHERE name = ?", (name,)
            ).fetchone()
            if (
                row
                and row["status"] == "running"
                and row["owner"] != owner
                and owner_alive(row["owner"], None)
            ):
                return False
            db.execute(
                "INSERT INTO schedule_runs (name, started, status, owner) VALUES (?, ?, 'running', ?)"
                " ON CONFLICT(name) DO UPDATE SET started = excluded.started, status = 'running',"
                " owner = excluded.owner",
                (name, time.time(), owner),
            )
            return True

    def finish_schedule_run(self, name: str, status: str, summary: str, job_id: str | None) -> None:
        self._execute(
            "UPDATE schedule_runs SET finished = ?, status = ?, summary = ?, job_id = ?, owner = NULL WHERE name = ?",
            (time.time(), status, summary, job_id, name),
        )

    def remember_event(self, key: str) -> bool:
        """Record an event key; False if it was seen before (events can arrive twice)."""
        try:
            self._execute(
                "INSERT INTO seen_events (key, created) VALUES (?, ?)", (key, time.time())
            )
        except sqlite3.IntegrityError:
            return False
        return True
