"""Ceph's S3 gateway (radosgw) on a throwaway single-node cluster on loopback.

A production S3 implementation to measure against: moto, the test suite's S3 server,
copies the whole object on every GET, so download figures against it say nothing about
the client. The cluster is one monitor and one OSD on ``memstore`` (objects in RAM, no
disk to prepare), pool size 1, cephx off (which then requires the ``crc secure``
messenger modes) and a fast garbage collector, so deleted benchmark objects free their
memory within seconds. Everything lives in *state_dir*; it runs as root and binds
127.0.0.1 only. Debian packages: ``radosgw ceph-mon ceph-osd`` (installed on demand when
running as root).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
import weakref
from pathlib import Path

PACKAGES = ("radosgw", "ceph-mon", "ceph-osd")
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
HOST = "127.0.0.1"
_CLIENT = "client.rgw.bench"


class RadosgwUnavailable(RuntimeError):
    """radosgw cannot run here; the message says why (and what was tried)."""


def installed() -> bool:
    return all(shutil.which(b) for b in BINARIES)


def ensure_installed(log: Path) -> None:
    """Install the Ceph packages with apt-get when they are missing (root only)."""
    if installed():
        return
    if os.geteuid() != 0:
        raise RadosgwUnavailable(
            f"Ceph's radosgw is not installed and installing it needs root: run "
            f"`apt-get install {' '.join(PACKAGES)}` as root, or run the benchmark as root"
        )
    if not shutil.which("apt-get"):
        raise RadosgwUnavailable("Ceph's radosgw is not installed and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(log, "ab") as out:
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
        ):
            if subprocess.run(command, stdout=out, stderr=out, env=env, check=False).returncode:
                raise RadosgwUnavailable(f"`{' '.join(command)}` failed; see {log}")
    if not installed():
        raise RadosgwUnavailable(f"{', '.join(PACKAGES)} installed but binaries are missing")


def version() -> str:
    try:
        text = subprocess.run(
            ["radosgw", "--version"], capture_output=True, text=True, check=False, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    # "ceph version 16.2.15 (<sha>) pacific (stable)"
    parts = text.split()
    return f"{parts[2]} {parts[4]}" if len(parts) > 4 else text.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Radosgw:
    """One monitor, one memstore OSD and a radosgw with an S3 user and its keys.

    Attributes after :meth:`start`: ``endpoint_url``, ``access_key``, ``secret_key``.
    """

    def __init__(self, state_dir: Path, memory_bytes: int = 8 * 1024**3) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.memory_bytes = memory_bytes
        self.endpoint_url = ""
        self.access_key = ""
        self.secret_key = ""
        self._processes: list[subprocess.Popen[bytes]] = []
        self._finalizer: weakref.finalize | None = None

    @property
    def conf(self) -> Path:
        return self.state_dir / "ceph.conf"

    def start(self, timeout: float = 90.0) -> Radosgw:
        if os.geteuid() != 0:
            raise RadosgwUnavailable("radosgw's cluster daemons run as root here; not root")
        shutil.rmtree(self.state_dir, ignore_errors=True)
        for sub in ("run", "log", "mon", "osd/ceph-0", "rgw"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        mon_port, rgw_port = _free_port(), _free_port()
        fsid = str(uuid.uuid4())
        self.conf.write_text(self._config(fsid, mon_port, rgw_port))
        self._finalizer = weakref.finalize(self, _stop_all, self._processes)
        try:
            self._run(
                "monmaptool", "--create", "--add", "a", f"v2:{HOST}:{mon_port}",
                "--fsid", fsid, str(self.state_dir / "monmap"),
            )  # fmt: skip
            self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(self.state_dir / "monmap"))
            self._daemon("mon", ["ceph-mon", "-i", "a"])
            osd_id = self._ceph("osd", "create").strip()
            if osd_id != "0":
                raise RadosgwUnavailable(f"expected OSD id 0 on a new cluster, got {osd_id!r}")
            self._run("ceph-osd", "-i", "0", "--mkfs")
            self._daemon("osd", ["ceph-osd", "-i", "0"])
            self._wait(lambda: json.loads(self._ceph("osd", "stat", "-f", "json"))["num_up_osds"] == 1,
                       timeout, "the OSD to come up")  # fmt: skip
            self._daemon("rgw", ["radosgw", "-n", _CLIENT])
            self.endpoint_url = f"http://{HOST}:{rgw_port}"
            self._wait(self._answers, timeout, "radosgw to answer HTTP")
            self.access_key = "BENCH" + secrets.token_hex(8).upper()
            self.secret_key = secrets.token_urlsafe(30)
            self._run(
                "radosgw-admin", "-n", _CLIENT, "user", "create", "--uid=bench",
                "--display-name=benchmarks", f"--access-key={self.access_key}",
                f"--secret={self.secret_key}",
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        _stop_all(self._processes)

    def wait_until_collected(self, timeout: float = 120.0) -> None:
        """Until the garbage collector has freed every deleted object (it runs every
        second and takes CPU from whatever runs meanwhile)."""

        def collected() -> bool:
            pending = self._run("radosgw-admin", "-n", _CLIENT, "gc", "list", "--include-all")
            return json.loads(pending) == []

        self._wait(collected, timeout, "deleted objects to be collected")

    # -- internals ---------------------------------------------------------------------

    def _config(self, fsid: str, mon_port: int, rgw_port: int) -> str:
        d = self.state_dir
        return f"""[global]
fsid = {fsid}
mon host = v2:{HOST}:{mon_port}
mon initial members = a
public addr = {HOST}
ms bind msgr1 = false
# No cephx on a throwaway loopback cluster; without it the messenger needs these modes.
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms client mode = crc secure
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
mon data = {d}/mon/$cluster-$id
osd data = {d}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = {self.memory_bytes}
keyring = {d}/keyring

[{_CLIENT}]
rgw frontends = beast endpoint={HOST}:{rgw_port}
rgw data = {d}/rgw
# Deleted objects are collected at once: memstore is RAM, and a full one stalls writes;
# the harness waits for the collection between runs, so the collector never competes.
rgw gc obj min wait = 0
rgw gc processor period = 1
"""

    def _run(self, *argv: str, timeout: float = 60.0) -> str:
        command = [argv[0], "-c", str(self.conf), *argv[1:]]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise RadosgwUnavailable(f"`{' '.join(argv[:3])}` timed out") from None
        if done.returncode:
            raise RadosgwUnavailable(
                f"`{' '.join(argv[:3])}` failed ({done.returncode}): {done.stderr.strip()[-800:]}"
            )
        return done.stdout

    def _ceph(self, *argv: str) -> str:
        return self._run("ceph", "--connect-timeout", "20", *argv, timeout=30)

    def _daemon(self, name: str, argv: list[str]) -> None:
        with open(self.state_dir / "log" / f"{name}.out", "ab") as log:
            process = subprocess.Popen(
                [*argv, "-c", str(self.conf), "-f"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._processes.append(process)
        time.sleep(0.2)
        if process.poll() is not None:
            raise RadosgwUnavailable(
                f"{argv[0]} exited at once ({process.returncode}); see {log.name} in "
                f"{self.state_dir / 'log'}"
            )

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint_url, timeout=2) as response:  # noqa: S310 - loopback http
                return response.status == 200
        except OSError:
            return False

    def _wait(self, condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self._processes:
                if process.poll() is not None:
                    raise RadosgwUnavailable(
                        f"{process.args[0]} exited ({process.returncode}) while waiting for "
                        f"{what}; logs in {self.state_dir / 'log'}"
                    )
            with contextlib.suppress(RadosgwUnavailable, ValueError, KeyError):
                if condition():
                    return
            time.sleep(0.25)
        raise RadosgwUnavailable(f"timed out after {timeout:.0f} s waiting for {what}")


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    # The gateway first, the monitor last: daemons talk to the monitor while stopping.
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    for process in reversed(processes):
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    processes.clear()
