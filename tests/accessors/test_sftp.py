"""SFTP accessor behaviour beyond the conformance suite: host keys, login, dropped
connections and retries, the pool, and the SFTP-only rule. Real OpenSSH sshd throughout."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import ftrack_transfer.accessors as accessors_package
import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from ftrack_transfer.accessors import sftp as sftp_module
from ftrack_transfer.accessors import sftp_io
from ftrack_transfer.accessors.base import WrittenChunk
from ftrack_transfer.accessors.disk import DiskAccessor
from ftrack_transfer.accessors.errors import (
    AccessorConfigurationError,
    OperationFailedError,
    TransientAccessorError,
    UnsupportedOperationError,
)
from ftrack_transfer.accessors.sftp import SftpAccessor
from ftrack_transfer.accessors.sftp_connect import Connector, HostKeyRefused, SftpConnection
from ftrack_transfer.accessors.sftp_openssh import SshProcess
from ftrack_transfer.accessors.sftp_pool import LOW_LATENCY, read_streams_for_link
from ftrack_transfer.accessors.writes import temporary_name
from ftrack_transfer.sandbox.sftp import SftpServer, generate_key
from ftrack_transfer.transfer.bandwidth import BandwidthLimiter
from ftrack_transfer.transfer.config import TransferSettings
from ftrack_transfer.transfer.direct import Endpoints
from ftrack_transfer.transfer.scheduler import copy_files

from bench.relay import Relay
from tests.fixtures.storage import StorageCase, sftp_accessor, tiny_filesystem

from .common import CHUNK, MiB, chunks_of, payload, read_file, upload, write_chunks, write_file


def _fresh_root(sshd: SftpServer) -> Path:
    root = Path(sshd.remote_root) / f"k-{os.urandom(6).hex()}"
    root.mkdir()
    return root


def _through(link: Relay, sshd: SftpServer, root: Path, tmp_path: Path) -> SftpAccessor:
    """An accessor reaching *sshd* through *link*, whose port known_hosts trusts."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_entry("127.0.0.1", link.port))
    return sftp_accessor(
        sshd, str(root), host="127.0.0.1", port=link.port, known_hosts=str(known_hosts)
    )


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        threading.Event().wait(0.002)


# -- construction --------------------------------------------------------------------------


def test_constructing_never_connects() -> None:
    started = time.monotonic()
    accessor = SftpAccessor(host="192.0.2.1", port=22, username="x", root="/srv")  # TEST-NET
    assert time.monotonic() - started < 0.5
    assert accessor.storage_key() == "sftp:x@192.0.2.1:22"
    assert accessor.describe() == "sftp x@192.0.2.1:22/srv"
    accessor.close()


def test_root_must_be_absolute() -> None:
    with pytest.raises(AccessorConfigurationError, match="absolute"):
        SftpAccessor(host="h", root="relative/path")


def test_urls_and_local_paths(sshd: SftpServer, tmp_path: Path) -> None:
    accessor = sftp_accessor(sshd, "/srv/projects", local_root=str(tmp_path))
    assert (
        accessor.get_url("shot 1/plate.exr")
        == f"sftp://{sshd.username}@127.0.0.1:{sshd.port}/srv/projects/shot%201/plate.exr"
    )
    assert accessor.get_filesystem_path("a/b.exr") == str(tmp_path / "a" / "b.exr")
    without = sftp_accessor(sshd, "/srv/projects")
    with pytest.raises(UnsupportedOperationError, match="local_root"):
        without.get_filesystem_path("a/b.exr")


def test_missing_root_is_a_configuration_error(sshd: SftpServer) -> None:
    accessor = sftp_accessor(sshd, f"{sshd.remote_root}/never-made")
    for call in (
        lambda: accessor.make_container("a/b"),
        lambda: write_file(accessor, "a/b.txt", b"x"),
        lambda: accessor.check(),
    ):
        with pytest.raises(AccessorConfigurationError, match="root directory"):
            call()
    assert not Path(sshd.remote_root, "never-made").exists()


# -- host keys -----------------------------------------------------------------------------


def test_unknown_host_key_refused_with_trust_instruction(sshd: SftpServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    accessor = sftp_accessor(sshd, sshd.remote_root, known_hosts=str(known_hosts))
    with pytest.raises(AccessorConfigurationError) as caught:
        accessor.list("")
    message = str(caught.value)
    assert "\n" not in message
    assert f"[127.0.0.1]:{sshd.port}" in message
    assert sshd.host_key_fingerprint in message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known_hosts}" in message

    # Following the instruction (without a shell) makes the next attempt succeed.
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", str(sshd.port), "127.0.0.1"], capture_output=True, check=True
    )
    known_hosts.write_bytes(scanned.stdout)
    assert accessor.list("") is not None
    accessor.close()


def refusal(server: SftpServer, known_hosts: Path, ssh_client: str = "auto") -> str:
    """The message a login to *server* checked against *known_hosts* is refused with; no
    connection is left open."""
    accessor = sftp_accessor(
        server, server.remote_root, known_hosts=str(known_hosts), ssh_client=ssh_client
    )
    with pytest.raises(AccessorConfigurationError) as caught:
        accessor.list("")
    assert accessor._pool.open_connections == 0
    return str(caught.value)


@pytest.mark.parametrize("ssh_client", ["auto", "paramiko"])
def test_a_revoked_host_key_is_refused_even_when_another_line_trusts_it(
    sshd: SftpServer, tmp_path: Path, ssh_client: str
) -> None:
    trusted = Path(sshd.known_hosts_path).read_text().strip().splitlines()[0]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{trusted}\n@revoked {trusted}\n")
    assert refusal(sshd, known_hosts, ssh_client) == (
        f"SSH host key for [127.0.0.1]:{sshd.port} (ssh-ed25519 {sshd.host_key_fingerprint}) "
        f"is marked @revoked in {known_hosts}; refusing the server: ask its administrator "
        "which key it should present"
    )


@pytest.mark.parametrize("ssh_client", ["auto", "paramiko"])
def test_known_hosts_read_as_openssh_reads_it(
    sshd: SftpServer, tmp_path: Path, ssh_client: str
) -> None:
    """Hashed names, comments, a CA line and lines OpenSSH skips do not stop the login."""
    name, kind, key = Path(sshd.known_hosts_path).read_text().split()[:3]
    hashed = paramiko.HostKeys.hash_host(name)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        "# studio hosts\n"
        "@cert-authority *.studio.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\n"
        "broken line\n"
        "other.example ssh-ed25519 not-base64!\n"
        f"{hashed} {kind} {key}\n"
    )
    accessor = sftp_accessor(
        sshd, sshd.remote_root, known_hosts=str(known_hosts), ssh_client=ssh_client
    )
    try:
        assert accessor.list("") is not None
        with accessor._pool.connection() as conn:  # read by ssh itself where it runs
            kind_used = SshProcess if ssh_client == "auto" else paramiko.Transport
            assert isinstance(conn.transport, kind_used)
    finally:
        accessor.close()


@pytest.mark.parametrize("ssh_client", ["auto", "paramiko"])
def test_known_hosts_wildcards_and_negations_apply_as_in_openssh(
    sshd: SftpServer, tmp_path: Path, ssh_client: str
) -> None:
    _, kind, key = Path(sshd.known_hosts_path).read_text().split()[:3]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"other.example,[127.0.0.?]:{sshd.port} {kind} {key}\n")
    accessor = sftp_accessor(
        sshd, sshd.remote_root, known_hosts=str(known_hosts), ssh_client=ssh_client
    )
    try:
        assert accessor.list("") is not None
    finally:
        accessor.close()

    # A negated name takes this host out of the line, even though the line names it too.
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port},![127.0.0.1]:{sshd.port} {kind} {key}\n")
    message = refusal(sshd, known_hosts, ssh_client)
    assert message.startswith(f"Unknown SSH host key for [127.0.0.1]:{sshd.port} ")
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known_hosts}" in message


def test_a_host_certificate_is_checked_by_ssh_and_explained_on_the_paramiko_path(
    tmp_path: Path,
) -> None:
    authority = tmp_path / "studio_host_ca"
    authority_public = generate_key(authority, "studio host CA")
    server = SftpServer(tmp_path / "files", tmp_path / "sshd", prefer="openssh").start()
    try:
        server.certify_host_key(authority)
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"@cert-authority [127.0.0.1]:{server.port} {authority_public}\n")

        # ssh checks the certificate against the authority: no host key is listed.
        accessor = sftp_accessor(server, server.remote_root, known_hosts=str(known_hosts))
        try:
            write_file(accessor, "cert.bin", b"signed host")
            assert (tmp_path / "files" / "cert.bin").read_bytes() == b"signed host"
            with accessor._pool.connection() as conn:
                assert isinstance(conn.transport, SshProcess)
        finally:
            accessor.close()

        # paramiko cannot check certificates: refused, with both ways out.
        assert refusal(server, known_hosts, "paramiko") == (
            f"SSH host key for [127.0.0.1]:{server.port} (ssh-ed25519 "
            f"{server.host_key_fingerprint}) is not in {known_hosts}, which trusts a "
            "certificate authority for this host instead, and paramiko cannot check host "
            'certificates; set the location\'s key_file with ssh_client = "auto" so '
            "OpenSSH's ssh checks it, or trust the host's own key with: ssh-keyscan -p "
            f"{server.port} 127.0.0.1 >> {known_hosts}"
        )

        # A certificate from another authority is refused by ssh, and never accepted.
        other_public = generate_key(tmp_path / "other_ca", "another CA")
        known_hosts.write_text(f"@cert-authority [127.0.0.1]:{server.port} {other_public}\n")
        assert "certificate authority" in refusal(server, known_hosts)
    finally:
        server.stop()


def test_missing_known_hosts_file_is_an_unknown_key(sshd: SftpServer, tmp_path: Path) -> None:
    accessor = sftp_accessor(sshd, sshd.remote_root, known_hosts=str(tmp_path / "absent"))
    with pytest.raises(AccessorConfigurationError, match="ssh-keyscan"):
        accessor.exists("x")


def test_changed_host_key_refused(sshd: SftpServer, tmp_path: Path) -> None:
    old_known_hosts = tmp_path / "known_hosts"
    shutil.copy(sshd.known_hosts_path, old_known_hosts)
    old_fingerprint = sshd.host_key_fingerprint
    new_fingerprint = sshd.rotate_host_key()
    accessor = sftp_accessor(sshd, sshd.remote_root, known_hosts=str(old_known_hosts))
    started = time.monotonic()
    with pytest.raises(AccessorConfigurationError) as caught:
        accessor.list("")
    assert time.monotonic() - started < 2, "a changed key must not be retried"
    message = str(caught.value)
    assert "CHANGED" in message
    assert new_fingerprint in message and old_fingerprint in message
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f {old_known_hosts}" in message
    # The server's own known_hosts file was updated: other clients still connect.
    fresh = sftp_accessor(sshd, sshd.remote_root)
    assert isinstance(fresh.list(""), list)
    fresh.close()


# -- login ---------------------------------------------------------------------------------


def _write_key(path: Path, passphrase: bytes | None = None) -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
        )
    )
    path.chmod(0o600)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def test_unauthorised_key_refused(sshd: SftpServer, tmp_path: Path) -> None:
    _write_key(tmp_path / "stranger")
    accessor = sftp_accessor(sshd, sshd.remote_root, key_file=str(tmp_path / "stranger"))
    with pytest.raises(AccessorConfigurationError, match="refused") as caught:
        accessor.list("")
    assert "authorized_keys" in str(caught.value)


class _DropsDuringLogin(paramiko.ServerInterface):
    """An SSH server that loses the connection while checking the client's key, as a
    server does when it restarts or its session process is killed mid-login."""

    def __init__(self) -> None:
        self.transport: paramiko.Transport | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        assert self.transport is not None
        self.transport.close()
        return paramiko.AUTH_FAILED


@pytest.mark.parametrize(("ssh_client", "logins_per_attempt"), [("auto", 2), ("paramiko", 1)])
def test_a_connection_lost_during_login_is_retried_not_reported_as_a_refused_key(
    sshd: SftpServer, tmp_path: Path, ssh_client: str, logins_per_attempt: int
) -> None:
    """With ``auto``, ssh tries first and paramiko then diagnoses: two logins per attempt."""
    host_key = paramiko.ECDSAKey.generate()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n")
    logins: list[paramiko.Transport] = []

    def serve() -> None:
        with contextlib.suppress(OSError):  # the listener is closed: the test is over
            while True:
                conn, _ = listener.accept()
                transport = paramiko.Transport(conn)
                transport.add_server_key(host_key)
                interface = _DropsDuringLogin()
                interface.transport = transport
                logins.append(transport)
                # The login is dropped on purpose; depending on timing paramiko reports
                # that here too, and the next attempt must still be answered.
                with contextlib.suppress(EOFError, paramiko.SSHException):
                    transport.start_server(server=interface)

    threading.Thread(target=serve, daemon=True).start()
    accessor = SftpAccessor(
        host="127.0.0.1",
        port=port,
        username=sshd.username,
        root="/srv",
        key_file=str(sshd.client_key_path),
        known_hosts=str(known_hosts),
        ssh_client=ssh_client,
    )
    accessor.retry = accessor.retry.__class__(3, 0.001, 0.01)
    try:
        with pytest.raises(TransientAccessorError) as caught:
            accessor.list("shots")
    finally:
        accessor.close()
        listener.close()
        for transport in logins:
            transport.close()
    message = str(caught.value)
    assert "the connection closed during SSH login" in message
    assert "gave up after 3 attempts" in message and "refused" not in message
    _wait_for(lambda: len(logins) == 3 * logins_per_attempt)


def test_encrypted_key_and_passphrase_env(
    sshd: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = os.urandom(12).hex()
    public = _write_key(tmp_path / "locked", secret.encode())
    authorized = sshd.state_dir / "authorized_keys"
    original = authorized.read_text()
    authorized.write_text(original + public + "\n")
    try:
        no_env = sftp_accessor(sshd, sshd.remote_root, key_file=str(tmp_path / "locked"))
        with pytest.raises(AccessorConfigurationError, match="passphrase_env"):
            no_env.list("")
        unset = sftp_accessor(
            sshd,
            sshd.remote_root,
            key_file=str(tmp_path / "locked"),
            passphrase_env="SANDBOX_KEY_PASSPHRASE",
        )
        with pytest.raises(AccessorConfigurationError, match="SANDBOX_KEY_PASSPHRASE"):
            unset.list("")
        monkeypatch.setenv("SANDBOX_KEY_PASSPHRASE", "wrong")
        with pytest.raises(AccessorConfigurationError) as caught:
            unset.list("")
        assert "wrong" not in str(caught.value)
        monkeypatch.setenv("SANDBOX_KEY_PASSPHRASE", secret)
        fixed = sftp_accessor(
            sshd,
            sshd.remote_root,
            key_file=str(tmp_path / "locked"),
            passphrase_env="SANDBOX_KEY_PASSPHRASE",
        )
        assert isinstance(fixed.list(""), list)
        fixed.close()
    finally:
        authorized.write_text(original)


def test_no_credentials_configured(sshd: SftpServer) -> None:
    accessor = sftp_accessor(sshd, sshd.remote_root, key_file=None)
    with pytest.raises(AccessorConfigurationError, match="key_file"):
        accessor.list("")


# -- which SSH client ------------------------------------------------------------------------


def test_ssh_client_option_is_checked(sshd: SftpServer) -> None:
    with pytest.raises(AccessorConfigurationError) as caught:
        sftp_accessor(sshd, sshd.remote_root, ssh_client="putty")
    assert str(caught.value) == (
        "sftp accessor for 127.0.0.1: option 'ssh_client' must be one of auto, openssh, "
        "paramiko, not 'putty'"
    )


def test_openssh_demanded_where_it_cannot_log_in(sshd: SftpServer) -> None:
    accessor = sftp_accessor(
        sshd, sshd.remote_root, key_file=None, use_agent=True, ssh_client="openssh"
    )
    with pytest.raises(AccessorConfigurationError) as caught:
        accessor.list("")
    assert 'has ssh_client = "openssh" but the location logs in with the SSH agent only' in str(
        caught.value
    )
    assert 'set ssh_client = "auto"' in str(caught.value)


def test_ssh_gets_a_second_try_when_its_first_login_was_dropped(
    sshd: SftpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One dropped login (a server restarting, or at MaxStartups) does not put the
    location on the slower paramiko path for minutes: once paramiko has got in, ssh is
    tried again and carries the session."""
    caplog.set_level(logging.WARNING, logger="ftrack_transfer.accessors.sftp_connect")
    forwarder = Relay(sshd.host, sshd.port, reset_first=1)
    root = _fresh_root(sshd)
    (root / "a.txt").write_bytes(b"through ssh")
    accessor = _through(forwarder, sshd, root, tmp_path)
    try:
        with accessor._pool.connection() as conn:
            assert isinstance(conn.transport, SshProcess)
        # ssh (reset), paramiko (in: so the server is up), ssh again (in).
        assert forwarder.accepted == 3
        assert read_file(accessor, "a.txt") == b"through ssh"
    finally:
        accessor.close()
        forwarder.close()
    assert "could not open SFTP" not in caplog.text


def test_falls_back_to_paramiko_where_ssh_refuses(
    sshd: SftpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ssh refuses a private key others can read; paramiko takes it. The location keeps
    working, on paramiko, and the log says why."""
    caplog.set_level(logging.WARNING, logger="ftrack_transfer.accessors.sftp_connect")
    key = tmp_path / "readable_key"
    shutil.copyfile(sshd.client_key_path, key)
    key.chmod(0o644)
    root = _fresh_root(sshd)
    (root / "a.txt").write_bytes(b"still works")
    accessor = sftp_accessor(sshd, str(root), key_file=str(key))
    try:
        assert read_file(accessor, "a.txt") == b"still works"
        with accessor._pool.connection() as conn:
            assert isinstance(conn.transport, paramiko.Transport)
    finally:
        accessor.close()
    assert "the ssh client could not open SFTP" in caplog.text
    assert "Permission denied (publickey)" in caplog.text
    assert "using paramiko, which is slower, for the next 5 minutes" in caplog.text


def test_a_host_key_ssh_refused_is_never_used_even_where_paramiko_accepts_it(
    sshd: SftpServer,
) -> None:
    """ssh's refusal stands even where paramiko's reading of known_hosts would let the
    login through (the two read the same file alike, so ssh's verdict is given here)."""
    opened: list[SftpConnection] = []

    class SshRefusesTheKey(Connector):
        def connect_openssh(self, ssh: str) -> SftpConnection:
            raise HostKeyRefused("Host key verification failed.")

        def connect_paramiko(self) -> SftpConnection:
            opened.append(super().connect_paramiko())
            return opened[-1]

    accessor = sftp_accessor(sshd, sshd.remote_root)
    connector = SshRefusesTheKey(accessor.endpoint)
    with pytest.raises(AccessorConfigurationError) as caught:
        connector.connect()
    assert str(caught.value) == (
        f"ssh refused the host key of sftp {sshd.username}@127.0.0.1:{sshd.port} (Host key "
        f"verification failed.); check {sshd.known_hosts_path} for @revoked or "
        "@cert-authority lines about this host"
    )
    # paramiko was asked only for its own verdict: its connection is closed, not used.
    assert len(opened) == 1 and not opened[0].alive()


def test_ssh_processes_end_with_the_accessor(sftp_case: StorageCase) -> None:
    accessor = sftp_case.new()
    data = payload(4 * CHUNK, 4)
    token = accessor.begin_write("p.bin", len(data), CHUNK)
    written = write_chunks(accessor, "p.bin", token, chunks_of(data, CHUNK), threads=4)
    accessor.commit_write("p.bin", token, len(data), written)
    processes = [conn.transport.process for conn in accessor._pool._idle]
    assert len(processes) == 4 and all(p.poll() is None for p in processes)
    accessor.close()
    assert all(p.poll() is not None for p in processes)


def test_a_killed_ssh_client_is_replaced(sftp_case: StorageCase) -> None:
    accessor = sftp_case.accessor
    write_file(accessor, "k.txt", b"before")
    with accessor._pool.connection() as conn:
        process = conn.transport.process
    process.kill()
    process.wait()
    assert read_file(accessor, "k.txt") == b"before"
    with accessor._pool.connection() as conn:
        assert conn.transport.process is not process and conn.alive()


# -- connections ---------------------------------------------------------------------------


def test_connection_settings_over_openssh(sftp_case: StorageCase) -> None:
    accessor = sftp_case.accessor
    accessor.list("")
    with accessor._pool.connection() as conn:
        assert isinstance(conn.transport, SshProcess)
        argv = conn.transport.process.args
        options = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
        assert options["Ciphers"].startswith("aes128-gcm@openssh.com,")
        # Only the location's known_hosts and key count; nothing is ever prompted for,
        # added to known_hosts, or read from the user's ssh config or agent.
        assert options["StrictHostKeyChecking"] == "yes" and options["BatchMode"] == "yes"
        assert options["IdentitiesOnly"] == "yes" and options["IdentityAgent"] == "none"
        assert options["UpdateHostKeys"] == "no" and argv[1:3] == ["-F", "none"]
        assert conn.read_limit and conn.write_limit and conn.write_limit > 32 * 1024
        assert accessor._writes(conn)[0] == min(255 * 1024, conn.write_limit)


def test_connection_settings_over_paramiko(sftp_paramiko_case: StorageCase) -> None:
    accessor = sftp_paramiko_case.accessor
    accessor.list("")
    with accessor._pool.connection() as conn:
        assert isinstance(conn.transport, paramiko.Transport)
        sock = conn.transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert conn.transport.local_cipher == "aes128-gcm@openssh.com"
        assert conn.transport.remote_cipher == "aes128-gcm@openssh.com"
        # OpenSSH announces its request limits; requests are sized within them.
        assert conn.read_limit and conn.write_limit and conn.write_limit > 32 * 1024
        assert accessor._writes(conn)[0] == min(255 * 1024, conn.write_limit)
        assert accessor._reads(conn)[0] == min(255 * 1024, conn.read_limit)


@pytest.mark.skipif(not Path("/proc/version").is_file(), reason="needs Linux's /proc")
@pytest.mark.parametrize("case", ["sftp_case", "sftp_paramiko_case"])
def test_a_read_is_whole_where_the_size_the_server_reports_is_short(
    case: str, request: pytest.FixtureRequest
) -> None:
    # A read sizes its buffer from an fstat sent ahead of the data; /proc files report
    # size 0 and still have content, as a file that grew after the fstat would.
    accessor = request.getfixturevalue(case).accessor
    with accessor._pool.connection() as conn:
        handle = sftp_io.open_file(conn.sftp, "/proc/version", sftp_io.READ)
        try:
            data = sftp_io.pread(conn.sftp, handle, 0, 8 * MiB, *accessor._reads(conn))
        finally:
            sftp_io.close_file(conn.sftp, handle)
    assert bytes(data) == Path("/proc/version").read_bytes()


def test_pool_is_bounded_and_reused(sftp_case: StorageCase) -> None:
    accessor = sftp_case.accessor
    assert accessor._pool.open_connections == 0  # lazy
    data = payload(4 * CHUNK, 1)
    token = accessor.begin_write("p.bin", len(data), CHUNK // 4)
    written = write_chunks(accessor, "p.bin", token, chunks_of(data, CHUNK // 4), threads=12)
    assert accessor._pool.open_connections == accessor.connections == 4
    accessor.commit_write("p.bin", token, len(data), written)
    assert accessor._pool.open_connections == 4
    accessor.close()
    assert accessor._pool.open_connections == 0
    assert accessor.read_range("p.bin", 0, 10) == data[:10]  # usable again after close


def test_dropped_idle_connections_reconnect(sshd: SftpServer, sftp_case: StorageCase) -> None:
    accessor = sftp_case.accessor
    write_file(accessor, "a.txt", b"before")
    assert sshd.kill_sessions() >= 1
    assert read_file(accessor, "a.txt") == b"before"


def test_connection_dropped_mid_chunk_is_retried(
    sshd: SftpServer, sftp_case: StorageCase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ftrack_transfer.accessors.retry")
    accessor = sftp_case.accessor
    data = payload(64 * MiB, 2)
    token = accessor.begin_write("dropped.bin", len(data), len(data))
    temporary = sftp_case.local_path(temporary_name("dropped.bin", token))
    result: dict[str, object] = {}

    def write() -> None:
        try:
            result["receipt"] = accessor.write_chunk(
                "dropped.bin", token, 0, data, accessor.digest_kind.of(data)
            )
        except BaseException as error:
            result["error"] = error

    writer = threading.Thread(target=write)
    writer.start()
    _wait_for(lambda: temporary.stat().st_size > 0 or not writer.is_alive())
    dropped_mid_chunk = writer.is_alive()
    killed = sshd.kill_sessions()
    writer.join(60)
    assert "error" not in result, result.get("error")
    assert killed >= 1
    if dropped_mid_chunk:
        assert "retrying write 'dropped.bin'" in caplog.text
    accessor.commit_write(
        "dropped.bin",
        token,
        len(data),
        [WrittenChunk(0, len(data), accessor.digest_kind.of(data))],
        "full",
    )
    assert sftp_case.local_path("dropped.bin").read_bytes() == data


def test_connection_dropped_mid_streamed_chunk_is_a_transient_error(
    sshd: SftpServer, sftp_case: StorageCase
) -> None:
    """A chunk streamed piece by piece cannot be retried inside the accessor (its pieces
    were handed on): the drop is reported as transient, for the engine to send the chunk
    again, and the accessor reconnects for it."""
    accessor = sftp_case.accessor
    data = payload(8 * MiB, 3)
    token = accessor.begin_write("streamed.bin", len(data), len(data))
    with (
        pytest.raises(TransientAccessorError, match=r"streamed\.bin") as caught,
        accessor.open_chunk("streamed.bin", token, 0, len(data)) as writer,
    ):
        writer.write(data[:MiB])
        assert sshd.kill_sessions() >= 1
        for start in range(MiB, len(data), MiB):
            writer.write(data[start : start + MiB])
        writer.finish()
    assert "gave up" not in str(caught.value)
    with accessor.open_chunk("streamed.bin", token, 0, len(data)) as writer:
        writer.write(data)
        receipt = writer.finish()
    chunk = WrittenChunk(0, len(data), accessor.digest_kind.of(data), receipt)
    accessor.commit_write("streamed.bin", token, len(data), [chunk], "full")
    assert sftp_case.local_path("streamed.bin").read_bytes() == data

    pieces = accessor.read_pieces("streamed.bin", 0, len(data))
    first = bytes(next(pieces))
    assert sshd.kill_sessions() >= 1
    with pytest.raises(TransientAccessorError, match=r"streamed\.bin"):
        b"".join([first, *(bytes(p) for p in pieces)])
    assert accessor.read_range("streamed.bin", 0, len(data)) == data


def test_a_small_file_refused_by_a_full_disk_leaves_no_temporary(sshd: SftpServer) -> None:
    root = _fresh_root(sshd)
    with tiny_filesystem(root, "1m"):
        accessor = sftp_accessor(sshd, str(root))
        try:
            accessor.put_small("filler.bin", payload(960 * 1024, 3), b"")
            data = payload(256 * 1024, 4)
            with pytest.raises(OperationFailedError) as refused:
                accessor.put_small("shot.bin", data, accessor.digest_kind.of(data))
            assert "Cannot write 'shot.bin'" in str(refused.value)
            assert "often a full disk or quota on the server" in str(refused.value)
            assert sorted(p.name for p in root.iterdir()) == ["filler.bin"]
        finally:
            accessor.close()


def test_server_restart_is_survived(sshd: SftpServer, sftp_case: StorageCase) -> None:
    accessor = sftp_case.accessor
    write_file(accessor, "r.txt", b"1")
    sshd.restart()
    assert read_file(accessor, "r.txt") == b"1"


def test_retries_exhausted_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    accessor = SftpAccessor(host="127.0.0.1", port=port, username="u", root="/srv", retries=3)
    accessor.retry = accessor.retry.__class__(3, 0.001, 0.01)
    with pytest.raises(TransientAccessorError) as caught:
        accessor.list("shots")
    message = str(caught.value)
    assert "gave up after 3 attempts" in message
    assert f"127.0.0.1:{port}" in message and "'shots'" in message


def test_an_unreachable_server_is_retried_over_ssh_without_asking_paramiko(
    sshd: SftpServer,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    accessor = sftp_accessor(sshd, "/srv", port=port, ssh_client="auto")
    accessor.retry = accessor.retry.__class__(3, 0.001, 0.01)
    with pytest.raises(TransientAccessorError) as caught:
        accessor.list("shots")
    message = str(caught.value)
    assert f"cannot reach sftp {sshd.username}@127.0.0.1:{port}: " in message
    assert "Connection refused" in message and "gave up after 3 attempts" in message


def test_parallel_streams_on_one_file(sftp_case: StorageCase) -> None:
    accessor = sftp_case.accessor
    data = payload(24 * MiB, 3)
    upload(accessor, "par.bin", data, chunk=2 * MiB, verify="full")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        pieces = pool.map(
            lambda o: accessor.read_range("par.bin", o, 2 * MiB), range(0, len(data), 2 * MiB)
        )
        assert b"".join(pieces) == data


def _copy_one_file(source: object, destination: object, name: str = "plate.bin") -> None:
    """One file through the direct backend, with the storages' own stream count."""
    endpoints = Endpoints(
        source,
        destination,
        TransferSettings(chunk_size=2 * MiB),
        BandwidthLimiter(None),
        threading.Event(),
    )
    copy_files([(name, name)], endpoints)


def _cores(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(sftp_module, "usable_cores", lambda: count)


def test_a_short_link_from_few_cores_reads_a_file_on_two_connections(
    sshd: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over loopback a connection reads as fast as its ssh process decrypts: from a
    2-core host, 2 connections carry a large download (4 would compete for the cores)."""
    _cores(monkeypatch, 2)
    root = _fresh_root(sshd)
    data = payload(24 * MiB, 5)
    (root / "plate.bin").write_bytes(data)
    accessor = sftp_accessor(sshd, str(root))
    try:
        assert accessor.round_trip is None
        assert accessor.read_streams == 4  # nothing measured yet
        _copy_one_file(accessor, DiskAccessor(str(tmp_path)))
        assert accessor.round_trip is not None and accessor.round_trip < LOW_LATENCY
        assert accessor.read_streams == 2
        assert accessor._pool.open_connections == 2
        assert (tmp_path / "plate.bin").read_bytes() == data
    finally:
        accessor.close()


def test_writes_keep_four_connections_on_a_short_link(
    sshd: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each written chunk ends with the server's fsync, which the other streams cover."""
    _cores(monkeypatch, 2)
    (tmp_path / "plate.bin").write_bytes(data := payload(24 * MiB, 6))
    accessor = sftp_accessor(sshd, str(_fresh_root(sshd)))
    try:
        _copy_one_file(DiskAccessor(str(tmp_path)), accessor)
        assert accessor.read_streams == 2
        assert accessor._pool.open_connections == 4
        assert read_file(accessor, "plate.bin") == data
    finally:
        accessor.close()


def test_a_short_link_from_many_cores_reads_on_four_connections(
    sshd: SftpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cores(monkeypatch, 16)
    accessor = sftp_accessor(sshd, str(_fresh_root(sshd)))
    try:
        accessor.exists("anything")
        assert accessor.read_streams == 4
    finally:
        accessor.close()


def test_a_long_link_reads_on_four_connections_whatever_the_cores(
    sshd: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over 20 ms each connection is held back by its SSH window: 4 fill the link."""
    _cores(monkeypatch, 2)
    root = _fresh_root(sshd)
    data = payload(24 * MiB, 7)
    (root / "plate.bin").write_bytes(data)
    link = Relay(sshd.host, sshd.port, delay=0.010)
    accessor = _through(link, sshd, root, tmp_path)
    destination = tmp_path / "destination"
    destination.mkdir()
    try:
        _copy_one_file(accessor, DiskAccessor(str(destination)))
        assert accessor.round_trip is not None and accessor.round_trip >= 0.020
        assert accessor.read_streams == 4
        assert accessor._pool.open_connections == 4
        assert (destination / "plate.bin").read_bytes() == data
    finally:
        accessor.close()
        link.close()


@pytest.mark.parametrize(
    ("round_trip", "cores", "streams"),
    [
        (None, 2, 4),  # not measured yet
        (0.0003, 1, 2),
        (0.0003, 2, 2),
        (0.0003, 3, 3),
        (0.0003, 16, 4),
        (0.020, 2, 4),
        (LOW_LATENCY, 2, 4),
    ],
)
def test_read_streams_for_link(round_trip: float | None, cores: int, streams: int) -> None:
    assert read_streams_for_link(round_trip, cores) == streams


# -- SFTP protocol only ----------------------------------------------------------------------

_FORBIDDEN = re.compile(
    r"exec_command|invoke_shell|get_pty|shell\s*=\s*True|os\.system|os\.popen|AutoAddPolicy|WarningPolicy"
)


def test_no_shell_or_remote_commands_in_accessors() -> None:
    folder = Path(accessors_package.__file__).parent
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(folder.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _FORBIDDEN.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


def test_only_the_sftp_subsystem_is_requested_by_paramiko(
    sftp_paramiko_case: StorageCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    requested: list[str] = []
    for name in ("exec_command", "invoke_shell", "get_pty", "invoke_subsystem"):
        original = getattr(paramiko.Channel, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            requested.append(_name if _name != "invoke_subsystem" else f"subsystem:{args[0]}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(paramiko.Channel, name, spy)
    accessor = sftp_paramiko_case.new()
    write_file(accessor, "x/y.txt", b"1")
    accessor.remove("x/y.txt")
    assert requested and set(requested) == {"subsystem:sftp"}


def test_only_the_sftp_subsystem_is_requested_by_ssh(sftp_case: StorageCase) -> None:
    accessor = sftp_case.accessor
    write_file(accessor, "x/y.txt", b"1")
    with accessor._pool.connection() as conn:
        argv = conn.transport.process.args
    # ssh runs without a shell, and -s makes "sftp" a subsystem name, not a command.
    assert isinstance(argv, list) and argv[-4:] == ["-s", "--", "127.0.0.1", "sftp"]
    assert "-T" in argv


def test_embedded_server_fallback(tmp_path: Path) -> None:
    """The asyncssh server used where sshd is missing serves the accessor the same way."""
    with SftpServer(tmp_path / "root", tmp_path / "state", prefer="embedded") as server:
        assert server.kind == "embedded"
        root = tmp_path / "root" / "loc"
        root.mkdir()
        accessor = sftp_accessor(server, str(root))
        data = payload(6 * MiB, 4)
        upload(accessor, "a/b.bin", data, chunk=2 * MiB, verify="full")
        write_file(accessor, "a/c.txt", b"small")
        assert accessor.list("a") == ["a/b.bin", "a/c.txt"]
        assert read_file(accessor, "a/b.bin") == data
        server.kill_sessions()
        assert read_file(accessor, "a/c.txt") == b"small"
        accessor.close()


def test_a_plain_sftp_v3_server_without_openssh_extensions_gets_every_file_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server with none of OpenSSH's extensions (posix-rename, fsync, limits), which
    words its refusals its own way: the status code tells, requests stay at the 32 KiB
    every server accepts, and files are committed, replacing older copies."""
    import asyncssh.sftp

    asked: list[object] = []

    async def refuse(handler: object, packet: object) -> None:
        asked.append(handler)
        raise asyncssh.SFTPOpUnsupported("Request not supported by this server")

    handlers = asyncssh.sftp.SFTPServerHandler._packet_handlers
    monkeypatch.setitem(handlers, b"posix-rename@openssh.com", refuse)
    for extension in (b"fsync@openssh.com", b"limits@openssh.com"):
        monkeypatch.delitem(handlers, extension)
    with SftpServer(tmp_path / "root", tmp_path / "state", prefer="embedded") as server:
        root = tmp_path / "root" / "loc"
        root.mkdir()
        accessor = sftp_accessor(server, str(root))
        data = payload(5 * MiB, 7)
        with caplog.at_level(logging.WARNING, logger="ftrack_transfer.accessors.sftp"):
            accessor.put_small("a/small.txt", b"first", accessor.digest_kind.of(b"first"))
            accessor.put_small("a/small.txt", b"second", accessor.digest_kind.of(b"second"))
            upload(accessor, "a/big.bin", payload(3 * MiB, 1), chunk=2 * MiB)
            upload(accessor, "a/big.bin", data, chunk=2 * MiB)
        with accessor._pool.connection() as conn:
            assert conn.write_limit is None
            assert accessor._writes(conn)[0] == accessor._reads(conn)[0] == 32 * 1024
        assert read_file(accessor, "a/small.txt") == b"second"
        assert read_file(accessor, "a/big.bin") == data
        assert sorted(os.listdir(root / "a")) == ["big.bin", "small.txt"]  # no temporaries
        warnings = [r.getMessage() for r in caplog.records if "posix-rename" in r.getMessage()]
        assert warnings == [
            f"the SFTP server of {accessor.describe()} lacks posix-rename@openssh.com: a file "
            "that already exists is replaced by removing it first (for a moment neither copy exists)"
        ]
        # Four commits, but each connection (one server handler each) asked only once.
        assert asked and len(asked) == len({id(handler) for handler in asked})
        accessor.close()
