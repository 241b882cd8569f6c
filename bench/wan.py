"""``wan/<src>-<dst>``: one file between two sites, over a link with a round-trip time.

Loopback has no latency, so the single-file cases measure CPU: on a small machine every
extra SSH connection or S3 stream costs cycles the transfer needs, and the single
stream of ``sftp`` is at its best. Between a studio's sites (and to a cloud bucket) the
round trip decides instead: one SSH connection carries at most its channel window per
round trip, and one HTTP stream waits a round trip per request. These cases put a relay
holding every byte back for half the round trip (``relay.py``) in front of the same
servers, in both directions, and run the single-file comparison through it: ours and
the reference tool through the same relay, on a smaller file. The relay runs in the
harness, so its CPU is nobody's side; its own ceiling (a Python delay line, about a few
hundred MiB/s here) is shared by both sides and understates the faster one.

The references are for context: the targets of the product are measured on loopback.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from . import transfers
from .compare import Comparison
from .context import Context
from .relay import HOST, Relay, host_port


class _LinkedS3:
    """The S3 server as the far end of the link: its URL is the relay's (set-up and
    checks still use the server directly through ``client()``)."""

    def __init__(self, s3: Any, url: str) -> None:
        self._s3 = s3
        self.url = url

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


class _LinkedLab:
    """The lab seen from the other site: SFTP and S3 reached through relays."""

    def __init__(self, lab: Any, sftp: Relay, s3: Relay, known_hosts: Path) -> None:
        self._lab = lab
        self._sftp_port = sftp.port
        self._known_hosts = known_hosts
        self.s3 = _LinkedS3(lab.s3, f"http://{HOST}:{s3.port}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lab, name)

    def sftp_spec(self, root: str) -> dict[str, Any]:
        spec = self._lab.sftp_spec(root)
        spec.update(host=HOST, port=self._sftp_port, known_hosts=str(self._known_hosts))
        return spec

    def s3_spec(self, prefix: str) -> dict[str, Any]:
        spec = self._lab.s3_spec(prefix)
        spec["endpoint_url"] = self.s3.url
        return spec

    def sftp_command(self, batch: Path) -> list[str]:
        argv = list(self._lab.sftp_command(batch))
        argv[argv.index("-P") + 1] = str(self._sftp_port)
        at = next(i for i, a in enumerate(argv) if a.startswith("UserKnownHostsFile="))
        argv[at] = f"UserKnownHostsFile={self._known_hosts}"
        return [*argv[:-1], f"{self._lab.sftp.username}@{HOST}"]


def _relay_known_hosts(lab: Any, port: int) -> Path:
    """A known_hosts file trusting the server's key at the relay's address."""
    path = Path(lab.work) / f"known_hosts-relay-{port}"
    path.write_text(lab.sftp.known_hosts_entry(HOST, port))
    return path


def wan_file(ctx: Context, case: str) -> Comparison:
    lab = ctx.lab
    assert lab.sftp is not None and lab.s3 is not None
    one_way = ctx.profile.wan_round_trip / 2
    sftp = Relay(lab.sftp.host, lab.sftp.port, delay=one_way)
    s3 = Relay(*host_port(lab.s3.url), delay=one_way)

    def close_relays() -> None:
        sftp.close()
        s3.close()

    try:
        linked = copy.copy(ctx)
        linked.lab = _LinkedLab(lab, sftp, s3, _relay_known_hosts(lab, sftp.port))  # type: ignore[assignment]
        linked.profile = dataclasses.replace(ctx.profile, single_size=ctx.profile.wan_size)
        comparison = transfers.single_file(linked, case)
    except BaseException:
        close_relays()
        raise
    milliseconds = round(ctx.profile.wan_round_trip * 1000)
    comparison.group = "wan"
    comparison.title = comparison.title.replace("1 file,", f"1 file over a {milliseconds} ms link,")
    for side in comparison.sides:
        if side.role == "reference":
            side.targeted = False
    comparison.cleanup = close_relays
    return comparison
