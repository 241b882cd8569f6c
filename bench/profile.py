"""Data sizes and repetitions: the full profile, and ``--quick`` to prove the harness.

The stock ftrack path over SFTP runs at about 1 MiB/s (one round trip per 32 KiB
write, see ``peers.py``), so its cases use a smaller file and a shorter sequence than
the others: a gigabyte would take a quarter of an hour per run. Both sides of those
cases move the same smaller data, and the stock path's speed does not depend on size.
"""

from __future__ import annotations

import dataclasses

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    repeat: int
    #: One large file (single-file cases, resume).
    single_size: int
    #: An image sequence: (frames, bytes per frame).
    sequence: tuple[int, int]
    #: Many small files: (files, bytes per file); also the files of the ftrack counts.
    small: tuple[int, int]
    #: The stock ftrack path over SFTP: a smaller file and the first frames of the sequence.
    stock_sftp_single: int
    stock_sftp_frames: int
    #: The stock path over S3 (whole objects in memory).
    stock_s3_single: int
    stock_s3_frames: int
    #: Components per send for the ftrack request counts, and files for the scaling curve.
    request_counts: tuple[int, ...]
    scaling_counts: tuple[int, ...]
    resume_size: int
    #: Upload rate cap (bytes/s) during the resume case, so the kill lands half-way on
    #: small files; None for no cap.
    resume_rate: float | None
    #: Seconds a single side may run before it is killed and the case fails.
    side_timeout: float
    #: The ``wan`` cases: one file of this size over a link of this round-trip time.
    wan_size: int = 256 * MiB
    wan_round_trip: float = 0.020


FULL = Profile(
    name="full",
    repeat=3,
    single_size=1 * GiB,
    sequence=(1000, 2 * MiB),
    small=(10_000, 64 * KiB),
    stock_sftp_single=64 * MiB,
    stock_sftp_frames=32,
    stock_s3_single=1 * GiB,
    stock_s3_frames=1000,
    request_counts=(1, 100, 10_000),
    scaling_counts=(10, 100, 1_000, 10_000),
    resume_size=1 * GiB,
    resume_rate=None,
    side_timeout=3600.0,
)

QUICK = Profile(
    name="quick",
    repeat=1,
    single_size=24 * MiB,
    sequence=(12, 512 * KiB),
    small=(60, 16 * KiB),
    stock_sftp_single=1 * MiB,
    stock_sftp_frames=2,
    stock_s3_single=8 * MiB,
    stock_s3_frames=12,
    request_counts=(1, 20),
    scaling_counts=(1, 20),
    resume_size=32 * MiB,
    resume_rate=32 * MiB,
    side_timeout=300.0,
    wan_size=16 * MiB,
)
