"""A journal written by an earlier version opens in this one (no server needed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ftrack_transfer.transfer.journal import Journal


def test_chunks_journalled_as_sha256_keep_their_digest_and_kind(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    # The chunks table as it was before the digest's hash was a choice.
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE chunks DROP COLUMN digest_kind")
        db.execute("ALTER TABLE chunks RENAME COLUMN digest TO sha256")
        db.execute(
            "INSERT INTO chunks (file_id, offset, length, sha256, receipt) VALUES (?,?,?,?,?)",
            (1, 0, 10, b"\x01" * 32, "etag-1"),
        )
    db.close()

    journal = Journal(path)
    assert journal.chunks(1) == [(0, 10, b"\x01" * 32, "sha256", "etag-1")]
    journal.record_chunk(1, 10, 5, b"\x02" * 16, "xxh128", None)
    assert journal.chunks(1)[1] == (10, 5, b"\x02" * 16, "xxh128", None)
    journal.close()
    # Opening it again finds nothing left to migrate.
    journal = Journal(path)
    assert [kind for *_, kind, _ in journal.chunks(1)] == ["sha256", "xxh128"]
    journal.close()
