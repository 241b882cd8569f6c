"""A real SFTP server on loopback for tests, benchmarks and the demo.

:class:`SftpServer` runs OpenSSH's ``sshd`` in the foreground with its own config, host
key and authorized key, on a free port of 127.0.0.1, serving the SFTP subsystem only
(``internal-sftp``: no shell, no commands). Where ``sshd`` is not installed (a demo on a
machine without root), ``prefer="auto"`` falls back to asyncssh's in-process SFTP
server, with the same attributes.

Everything it needs (keys, config, known_hosts, pid file, log) lives in *state_dir*;
keys are generated at start, never stored in the repository.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import getpass
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

HOST = "127.0.0.1"
_START_TIMEOUT = 10.0
_SSHD_SEARCH = "/usr/sbin:/usr/local/sbin:/sbin:/usr/bin:/usr/local/bin"


def find_sshd() -> str | None:
    """Absolute path of OpenSSH's ``sshd`` (it refuses to run from a relative one)."""
    found = shutil.which("sshd", path=_SSHD_SEARCH + os.pathsep + os.environ.get("PATH", ""))
    return os.path.abspath(found) if found else None


def generate_key(path: Path, comment: str) -> str:
    """Write a new ed25519 key pair at *path* (+ ``.pub``); return the public key line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.touch(mode=0o600)
    path.write_bytes(private)
    Path(f"{path}.pub").write_text(f"{public} {comment}\n")
    return public


def fingerprint(public_line: str) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a public key line."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class SftpServer:
    """An SFTP server on ``127.0.0.1`` serving *root*, with its state in *state_dir*.

    Attributes after :meth:`start`: ``host``, ``port``, ``username``, ``client_key_path``
    (private key accepted by the server), ``known_hosts_path`` (a known_hosts file with
    the server's host key), ``remote_root`` (the path of *root* as SFTP clients see it),
    ``kind`` (``"openssh"`` or ``"embedded"``).
    """

    def __init__(self, root: Path, state_dir: Path, prefer: str = "auto") -> None:
        if prefer not in ("auto", "openssh", "embedded"):
            raise ValueError(f"prefer must be auto, openssh or embedded, not {prefer!r}")
        self.root = Path(root).resolve()
        self.state_dir = Path(state_dir).resolve()
        self.sshd_path = find_sshd() if prefer != "embedded" else None
        if prefer == "openssh" and self.sshd_path is None:
            raise RuntimeError(
                "OpenSSH sshd is not installed; install openssh-server (scripts/test does)"
            )
        self.kind = "openssh" if self.sshd_path else "embedded"
        self.host = HOST
        self.port = 0
        self.username = "root" if os.geteuid() == 0 else getpass.getuser()
        self.remote_root = str(self.root)
        self.client_key_path = self.state_dir / "client_ed25519"
        self.known_hosts_path = self.state_dir / "known_hosts"
        self.host_key_path = self.state_dir / "ssh_host_ed25519_key"
        self.host_key_fingerprint = ""
        #: The host key's certificate, once :meth:`certify_host_key` made one.
        self.host_certificate_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._embedded: _EmbeddedServer | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> SftpServer:
        if self.running:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.client_key_path.exists():
            public = generate_key(self.client_key_path, "ftrack-transfer-sandbox-client")
            (self.state_dir / "authorized_keys").write_text(public + "\n")
        if not self.host_key_path.exists():
            self._new_host_key()
        if self.kind == "openssh":
            self._start_openssh()
        else:
            self._embedded = _EmbeddedServer(self)
            self.port = self._embedded.start(self.port)
        self._write_known_hosts()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self.kill_sessions()
            _stop_process(self._process)
            self._process = None
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    def restart(self) -> None:
        """Stop and start again on the same port (clients see their connections drop)."""
        self.stop()
        self.start()

    def __enter__(self) -> SftpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self._embedded is not None

    # -- faults ------------------------------------------------------------------------

    def kill_sessions(self) -> int:
        """Kill the processes (or connections) serving current clients; return how many.

        The listener keeps running, so clients can reconnect at once.
        """
        if self._embedded is not None:
            return self._embedded.abort_connections()
        if self._process is None:
            return 0
        victims = _descendants(self._process.pid)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # The kill is asynchronous; wait until the kernel has torn the processes down so
        # a client cannot sneak one more request through a dying session.
        deadline = time.monotonic() + 5
        remaining = victims
        while remaining and time.monotonic() < deadline:
            remaining = [p for p in remaining if _alive(p)]
            if remaining:
                threading.Event().wait(0.002)
        return len(victims)

    def rotate_host_key(self) -> str:
        """Give the server a new host key and restart it; return the new fingerprint.

        ``known_hosts_path`` is rewritten with the new key: a test that wants a client to
        see a *changed* key keeps a copy of the file from before.
        """
        self.stop()
        self._new_host_key()
        self.start()
        return self.host_key_fingerprint

    def certify_host_key(self, authority_key: Path) -> None:
        """Sign the host key with the certificate authority *authority_key* (valid for a
        day, for this host's address) and restart, so the server presents the certificate.
        """
        if self.kind != "openssh":
            raise RuntimeError("host certificates need OpenSSH sshd")
        subprocess.run(
            ["ssh-keygen", "-q", "-s", str(authority_key), "-I", "ftrack-transfer-sandbox-host",
             "-h", "-n", self.host, "-V", "-5m:+1d", f"{self.host_key_path}.pub"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.host_certificate_path = Path(f"{self.host_key_path}-cert.pub")
        self.restart()

    # -- internals ---------------------------------------------------------------------

    def _new_host_key(self) -> None:
        public = generate_key(self.host_key_path, "ftrack-transfer-sandbox-host")
        self.host_key_fingerprint = fingerprint(public)

    def _host_public(self) -> tuple[str, str]:
        kind, blob = Path(f"{self.host_key_path}.pub").read_text().split()[:2]
        return kind, blob

    def known_hosts_entry(self, host: str, port: int) -> str:
        """The known_hosts line trusting this server's host key at *host*:*port* (its own
        address, or a relay's in front of it: ssh checks the address it connects to)."""
        kind, blob = self._host_public()
        return f"[{host}]:{port} {kind} {blob}\n"

    def _write_known_hosts(self) -> None:
        kind, blob = self._host_public()
        self.host_key_fingerprint = fingerprint(f"{kind} {blob}")
        self.known_hosts_path.write_text(self.known_hosts_entry(self.host, self.port))

    def _config(self, port: int, extra: list[str]) -> str:
        lines = [
            f"Port {port}",
            f"ListenAddress {self.host}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.state_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.state_dir / 'authorized_keys'}",
            f"AllowUsers {self.username}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "Subsystem sftp internal-sftp",
            # SFTP only, whatever the client asks for: no shell, no commands, no tunnels.
            "ForceCommand internal-sftp",
            "PermitTTY no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "PermitUserEnvironment no",
            # Parallel chunk connections of several tests at once.
            "MaxStartups 200",
            "MaxSessions 64",
            "LogLevel ERROR",
        ]
        if os.geteuid() == 0:
            lines.append("PermitRootLogin prohibit-password")
        if self.host_certificate_path is not None:
            lines.append(f"HostCertificate {self.host_certificate_path}")
        return "\n".join(lines + extra) + "\n"

    def _start_openssh(self) -> None:
        assert self.sshd_path is not None
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        config_path = self.state_dir / "sshd_config"
        extra = self._supported_extras(config_path)
        fixed_port = self.port  # a restart keeps its port so clients can reconnect
        for _attempt in range(5):
            port = fixed_port or _free_port()
            config_path.write_text(self._config(port, extra))
            log_path = self.state_dir / "sshd.log"
            with open(log_path, "ab") as log:
                process = subprocess.Popen(
                    [self.sshd_path, "-D", "-e", "-f", str(config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            if _await_banner(self.host, port, process):
                self._process, self.port = process, port
                # Stops the server at interpreter exit if the owner never called stop().
                weakref.finalize(self, _stop_process, process)
                return
            process.wait()
            text = log_path.read_text(errors="replace")
            if "Address already in use" not in text or fixed_port:
                raise RuntimeError(f"sshd did not start; its log ({log_path}):\n{text[-2000:]}")
        raise RuntimeError("sshd did not find a free port on 127.0.0.1 in 5 attempts")

    def _supported_extras(self, config_path: Path) -> list[str]:
        """Options that newer OpenSSH needs for tests and older versions do not know."""
        # OpenSSH 9.8+ penalises a source address whose sessions crash or fail to log in,
        # which is exactly what fault tests do on purpose.
        candidate = ["PerSourcePenalties no"]
        config_path.write_text(self._config(_free_port(), candidate))
        result = subprocess.run(
            [self.sshd_path or "sshd", "-t", "-f", str(config_path)],
            capture_output=True,
            check=False,
        )
        return candidate if result.returncode == 0 else []


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        for pid in _descendants(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _await_banner(host: str, port: int, process: subprocess.Popen[bytes]) -> bool:
    """Wait until the server sends its SSH banner; ``False`` if the process exited."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=2) as probe:
                if probe.recv(4).startswith(b"SSH-"):
                    return True
        except OSError as error:
            if error.errno not in (errno.ECONNREFUSED, errno.ECONNRESET, None):
                raise
        # Not listening yet: pause briefly while watching for an early exit.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.005)
    raise RuntimeError(f"sshd did not answer on {host}:{port} within {_START_TIMEOUT:.0f} s")


def _descendants(root_pid: int) -> list[int]:
    """Every process below *root_pid*, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    pending = [root_pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().decode(errors="replace").rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


class _EmbeddedServer:
    """asyncssh's SFTP server on its own event loop thread (the no-sshd fallback)."""

    def __init__(self, owner: SftpServer) -> None:
        self._owner = owner
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sandbox-sftp", daemon=True
        )
        self._acceptor: Any = None
        self._connections: set[Any] = set()

    def start(self, port: int) -> int:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._listen(port), self._loop).result(
            _START_TIMEOUT
        )

    async def _listen(self, port: int) -> int:
        import asyncssh

        owner = self._owner
        connections = self._connections

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: Any) -> None:
                connections.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                connections.difference_update(c for c in list(connections) if c.is_closed())

        self._acceptor = await asyncssh.listen(
            owner.host,
            port,
            server_factory=Server,
            server_host_keys=[asyncssh.read_private_key(str(owner.host_key_path))],
            authorized_client_keys=asyncssh.read_authorized_keys(
                str(owner.state_dir / "authorized_keys")
            ),
            sftp_factory=True,
            allow_scp=False,
            reuse_address=True,
        )
        return self._acceptor.sockets[0].getsockname()[1]

    def abort_connections(self) -> int:
        connections = list(self._connections)

        def abort() -> None:
            for conn in connections:
                conn.abort()

        self._loop.call_soon_threadsafe(abort)
        return len(connections)

    def stop(self) -> None:
        async def close() -> None:
            for conn in list(self._connections):
                conn.abort()
            if self._acceptor is not None:
                self._acceptor.close()
                await self._acceptor.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(_START_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_START_TIMEOUT)
        self._loop.close()
