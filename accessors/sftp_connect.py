"""Opening one authenticated SFTP session: socket, SSH transport, host key, login.

The SSH layer is OpenSSH's ``ssh`` client where it can be used (see ``sftp_openssh``:
less CPU in this process), else paramiko. paramiko is also the diagnostician: when ``ssh``
cannot open the session, the same login is tried with paramiko, whose failure names the
problem precisely (unknown or changed host key, refused key); if paramiko gets in, ``ssh``
gets one more try (the first may have met a dropped session), and if that fails too the
paramiko connection is used and ``ssh`` is tried again a few minutes later.

The socket is created here (not by paramiko) so ``TCP_NODELAY`` is set: without it,
every request/response exchange waits on delayed ACKs. The host key is checked against
a known_hosts file before any credential is offered; an unknown or changed key is
refused with a message that says how to trust it. Only the SFTP subsystem is ever
requested: no shell, no remote command.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import logging
import os
import re
import shlex
import socket
import threading
import time
import typing

import paramiko
import paramiko.hostkeys

from . import sftp_io, sftp_openssh
from .errors import AccessorConfigurationError

log = logging.getLogger(__name__)

#: Cipher preference: AES-GCM needs no separate MAC and costs far less CPU per byte
#: (OpenSSH's sftp measured 1.6x faster with it than with its own default).
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
#: What OpenSSH's ``ssh`` offers: the same, then chacha20 so a server without AES connects.
OPENSSH_CIPHERS = (*PREFERRED_CIPHERS, "chacha20-poly1305@openssh.com")
#: Which SSH client carries the SFTP session (the location's ``ssh_client`` option).
SSH_CLIENTS = ("auto", "openssh", "paramiko")
#: After ``ssh`` failed where paramiko got in, paramiko is used this long before ``ssh``
#: is tried again (seconds).
OPENSSH_RETRY_AFTER = 300.0
# known_hosts stores RSA keys as "ssh-rsa"; the negotiated algorithms are these.
_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


#: How ssh says the server could not be reached at all (retried; nothing to diagnose).
_UNREACHABLE = (
    "Connection refused",
    "Connection timed out",
    "No route to host",
    "Network is unreachable",
)


class Unreachable(ConnectionError):
    """The SSH server did not answer (down, or a network between us)."""


class HostKeyRefused(ConnectionError):
    """ssh did not accept the server's host key."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where and how to log in; secret-free (the passphrase is read from the environment)."""

    host: str
    port: int
    username: str
    #: Local paths, with ``~`` expanded.
    key_file: str | None
    known_hosts: str
    passphrase_env: str | None
    use_agent: bool
    connect_timeout: float
    #: SSH channel window and packet size for the SFTP session (``None``: paramiko's).
    window_size: int | None = None
    max_packet_size: int | None = None
    #: One of :data:`SSH_CLIENTS`.
    ssh_client: str = "auto"

    @property
    def where(self) -> str:
        return f"sftp {self.username}@{self.host}:{self.port}"

    @property
    def host_key_name(self) -> str:
        """The name OpenSSH files this host's key under in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


class SftpConnection:
    """One SSH transport with one SFTP channel, used by one thread at a time.

    ``read_size`` and ``write_size`` are the largest requests this server takes
    (``None`` where it announced no limits). ``transport`` is the paramiko transport or
    the ``ssh`` process under the SFTP channel.
    """

    def __init__(
        self,
        transport: paramiko.Transport | sftp_openssh.SshProcess,
        sftp: paramiko.SFTPClient,
        limits: tuple[int, int] | None = None,
    ) -> None:
        self.transport = transport
        self.sftp = sftp
        self.read_limit, self.write_limit = limits or (None, None)

    def alive(self) -> bool:
        return self.transport.is_active() and not self.sftp.sock.closed

    def close(self) -> None:
        try:
            self.sftp.close()
        finally:
            self.transport.close()


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:...``, the form ``ssh-keygen -l`` and OpenSSH's own prompts show."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class Connector:
    """Opens :class:`SftpConnection` objects to one :class:`Endpoint`."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._key: paramiko.PKey | None = None
        self._key_lock = threading.Lock()
        self._paramiko_until = 0.0  # monotonic time before which ssh is not tried
        self._round_trip: float | None = None
        self._round_trip_lock = threading.Lock()

    @property
    def round_trip(self) -> float | None:
        """The shortest SFTP round trip a connection has measured, in seconds (``None``
        before the first has logged in): the link's latency, a request answered at once."""
        return self._round_trip

    def _limits(self, sftp: paramiko.SFTPClient) -> tuple[int, int] | None:
        """The server's request limits, timing the request: one small request answered
        straight away, the first after the login."""
        started = time.perf_counter()
        limits = sftp_io.server_limits(sftp)
        took = time.perf_counter() - started
        with self._round_trip_lock:
            if self._round_trip is None or took < self._round_trip:
                self._round_trip = took
        return limits

    def connect(self) -> SftpConnection:
        ep = self.endpoint
        if ep.ssh_client == "paramiko" or time.monotonic() < self._paramiko_until:
            return self.connect_paramiko()
        ssh = sftp_openssh.find_ssh()
        why_not = sftp_openssh.usable(ep, ssh)
        if ssh is None or why_not is not None:
            if ep.ssh_client == "openssh":
                raise AccessorConfigurationError(
                    f'{ep.where} has ssh_client = "openssh" but {why_not}; set '
                    'ssh_client = "auto" to use paramiko where ssh cannot be used'
                )
            return self.connect_paramiko()
        try:
            return self.connect_openssh(ssh)
        except Unreachable:
            raise  # paramiko could not get further; trying it would double the wait
        except HostKeyRefused as refused:
            # paramiko names an unknown or changed key precisely; but a key ssh refused
            # is never used, whatever paramiko makes of the file.
            self.connect_paramiko().close()
            raise AccessorConfigurationError(
                f"ssh refused the host key of {ep.where} ({refused}); check "
                f"{ep.known_hosts} for @revoked or @cert-authority "
                "lines about this host"
            ) from refused
        except (OSError, EOFError, paramiko.SSHException) as error:
            failure = str(error) or type(error).__name__
        # paramiko's own failure (refused key, server down) is the precise one.
        conn = self.connect_paramiko()
        if ep.ssh_client == "openssh":
            conn.close()
            raise ConnectionError(f"the ssh client could not open SFTP: {failure}")
        # A server dropping sessions (restarting, or at its MaxStartups) fails one login
        # and lets the next in: ssh gets a second try before minutes on the slower path.
        try:
            again = self.connect_openssh(ssh)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        else:
            conn.close()
            log.debug("%s: ssh got in at the second try (first: %s)", ep.where, failure)
            return again
        self._paramiko_until = time.monotonic() + OPENSSH_RETRY_AFTER
        log.warning(
            "%s: the ssh client could not open SFTP (%s), where paramiko could; using "
            "paramiko, which is slower, for the next %d minutes",
            ep.where,
            failure,
            OPENSSH_RETRY_AFTER // 60,
        )
        return conn

    def connect_openssh(self, ssh: str) -> SftpConnection:
        """An SFTP session over OpenSSH's ``ssh`` at *ssh* (see ``sftp_openssh``)."""
        process = sftp_openssh.SshProcess(self.endpoint, OPENSSH_CIPHERS, ssh)
        try:
            sftp = paramiko.SFTPClient(process)
            limits = self._limits(sftp)
        except (OSError, EOFError, paramiko.SSHException) as error:
            # Our end stays open until ssh has said why it stopped.
            said = process.failure()
            process.close()
            if any(reason in said for reason in _UNREACHABLE):
                raise Unreachable(f"cannot reach {self.endpoint.where}: {said}") from error
            if "Host key verification failed" in said:
                raise HostKeyRefused(said) from error
            raise ConnectionError(f"{error or type(error).__name__}: {said}") from error
        except BaseException:
            process.close()
            raise
        process.logged_in()
        return SftpConnection(process, sftp, limits)

    def connect_paramiko(self) -> SftpConnection:
        """An SFTP session over a paramiko transport."""
        ep = self.endpoint
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=ep.connect_timeout)
        except socket.gaierror as error:
            raise AccessorConfigurationError(
                f"Cannot resolve the host of {ep.where}: {error.strerror or error}; "
                "check the location's host option"
            ) from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = ep.connect_timeout
            transport.handshake_timeout = ep.connect_timeout
            transport.auth_timeout = ep.connect_timeout
            keys = self._known_keys()
            known = keys.known
            options = transport.get_security_options()
            options.ciphers = _prefer(options.ciphers, PREFERRED_CIPHERS)
            # Ask for the key type known_hosts has, as OpenSSH does; otherwise a server
            # with several host keys may show one we cannot check.
            wanted = [a for kind in known for a in _KEY_ALGORITHMS.get(kind, (kind,))]
            options.key_types = _prefer(options.key_types, wanted)
            transport.start_client(timeout=ep.connect_timeout)
            self._check_host_key(transport.get_remote_server_key(), keys)
            self._authenticate(transport)
            sftp = paramiko.SFTPClient.from_transport(
                transport, window_size=ep.window_size, max_packet_size=ep.max_packet_size
            )
            if sftp is None:
                raise paramiko.SSHException("the server refused the SFTP subsystem")
            return SftpConnection(transport, sftp, self._limits(sftp))
        except BaseException:
            transport.close()
            raise

    # -- host key ----------------------------------------------------------------------

    def _known_keys(self) -> KnownKeys:
        """Keys recorded for this host, read afresh so a newly trusted key takes effect.

        Read as OpenSSH reads the file: lines it would skip (comments, malformed or
        unsupported keys) are skipped, ``@revoked`` keys are kept apart so they are
        refused even if another line lists them, and a ``@cert-authority`` line is only
        noted (this client cannot check host certificates; ssh can).
        """
        path = self.endpoint.known_hosts
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            return KnownKeys({}, [])
        except OSError as error:
            raise AccessorConfigurationError(
                f"Cannot read known_hosts file {path} for {self.endpoint.where}: "
                f"{error.strerror or error}"
            ) from error
        name = self.endpoint.host_key_name
        known: dict[str, paramiko.PKey] = {}
        revoked: list[paramiko.PKey] = []
        authority = False
        for line in lines:
            marker, _, rest = (
                line.strip().partition(" ") if line.startswith("@") else ("", "", line)
            )
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(rest.strip())
            except Exception:  # noqa: S112 - a line OpenSSH would skip too
                continue
            if entry is None or not _names_match(entry.hostnames, name):
                continue
            if marker == "@revoked":
                revoked.append(entry.key)
            elif marker == "@cert-authority":
                authority = True
            elif not marker:
                known.setdefault(entry.key.get_name(), entry.key)
        return KnownKeys(known, revoked, authority)

    def _check_host_key(self, key: paramiko.PKey, keys: KnownKeys) -> None:
        ep = self.endpoint
        path = ep.known_hosts
        name, presented = ep.host_key_name, f"{key.get_name()} {fingerprint(key)}"
        if key in keys.revoked:
            raise AccessorConfigurationError(
                f"SSH host key for {name} ({presented}) is marked @revoked in {path}; "
                "refusing the server: ask its administrator which key it should present"
            )
        known = keys.known
        if known.get(key.get_name()) == key:
            return
        scan = f"ssh-keyscan -p {ep.port} {shlex.quote(ep.host)} >> {shlex.quote(path)}"
        if not known and keys.authority:
            raise AccessorConfigurationError(
                f"SSH host key for {name} ({presented}) is not in {path}, which trusts a "
                "certificate authority for this host instead, and paramiko cannot check host "
                'certificates; set the location\'s key_file with ssh_client = "auto" so '
                f"OpenSSH's ssh checks it, or trust the host's own key with: {scan}"
            )
        if not known:
            raise AccessorConfigurationError(
                f"Unknown SSH host key for {name} ({presented}), not in {path}; if that "
                f"fingerprint is the server's, trust it with: {scan}"
            )
        expected = ", ".join(f"{k.get_name()} {fingerprint(k)}" for k in known.values())
        raise AccessorConfigurationError(
            f"SSH host key for {name} has CHANGED: the server presents {presented}, {path} "
            f"has {expected}; if the change is expected, replace the old key with: "
            f"ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(path)} && {scan}"
        )

    # -- login -------------------------------------------------------------------------

    def _authenticate(self, transport: paramiko.Transport) -> None:
        ep = self.endpoint
        tried: list[str] = []
        if ep.key_file:
            key = self._load_key()
            if _try_key(transport, ep.username, key):
                return
            tried.append(f"key {ep.key_file}")
        if ep.use_agent:
            agent_keys = paramiko.Agent().get_keys()
            for key in agent_keys:
                if _try_key(transport, ep.username, key):
                    return
            tried.append(
                f"{len(agent_keys)} key(s) of the SSH agent"
                if agent_keys
                else "the SSH agent (no keys; is SSH_AUTH_SOCK set?)"
            )
        if not tried:
            raise AccessorConfigurationError(
                f"No SSH credentials for {ep.where}: set the location's key_file, or "
                "use_agent = true"
            )
        raise AccessorConfigurationError(
            f"SSH login to {ep.where} refused with {' and '.join(tried)}; add the public "
            f"key to ~{ep.username}/.ssh/authorized_keys on the server"
        )

    def _load_key(self) -> paramiko.PKey:
        with self._key_lock:
            if self._key is None:
                self._key = self._read_key()
            return self._key

    def _read_key(self) -> paramiko.PKey:
        ep = self.endpoint
        path = ep.key_file or ""
        passphrase = None
        if ep.passphrase_env:
            passphrase = os.environ.get(ep.passphrase_env)
            if passphrase is None:
                raise AccessorConfigurationError(
                    f"Environment variable {ep.passphrase_env} (passphrase_env of {ep.where}) "
                    f"is not set; set it to the passphrase of {path}"
                )
        try:
            return paramiko.PKey.from_path(path, passphrase.encode() if passphrase else None)
        except (paramiko.PasswordRequiredException, TypeError) as error:
            # cryptography raises TypeError for an encrypted key loaded without a password.
            raise AccessorConfigurationError(
                f"SSH key {path} for {ep.where} is encrypted; set the location's "
                "passphrase_env to the name of an environment variable holding its passphrase"
            ) from error
        except (paramiko.SSHException, ValueError) as error:
            hint = f" (is ${ep.passphrase_env} the right passphrase?)" if ep.passphrase_env else ""
            raise AccessorConfigurationError(
                f"Cannot load SSH key {path} for {ep.where}: {error}{hint}"
            ) from error
        except OSError as error:
            raise AccessorConfigurationError(
                f"Cannot read SSH key {path} for {ep.where}: {error.strerror or error}"
            ) from error


class KnownKeys(typing.NamedTuple):
    """A host's keys in a known_hosts file: trusted ones by type, revoked ones, and
    whether a ``@cert-authority`` line covers the host (OpenSSH checks host certificates
    against it; paramiko cannot)."""

    known: dict[str, paramiko.PKey]
    revoked: list[paramiko.PKey]
    authority: bool = False


def _names_match(hostnames: list[str], name: str) -> bool:
    """Whether a known_hosts line applies to *name*, matched as OpenSSH matches it: names
    with ``*`` and ``?`` wildcards (letter case ignored), hashed names, and ``!``
    negations, which take the host out of the whole line."""
    name = name.lower()
    matched = False
    for entry in hostnames:
        negated = entry.startswith("!")
        pattern = entry[1:] if negated else entry
        if pattern.startswith("|1|"):
            salt = pattern.split("|")[2]
            hit = hmac.compare_digest(paramiko.HostKeys.hash_host(name, salt), pattern)
        else:
            hit = _wildcard(pattern).fullmatch(name) is not None
        if hit and negated:
            return False
        matched = matched or hit
    return matched


@functools.lru_cache(maxsize=256)
def _wildcard(pattern: str) -> re.Pattern[str]:
    """A known_hosts name pattern as a regular expression (only ``*`` and ``?`` are special;
    brackets, as in ``[host]:port``, are literal)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.compile("".join(parts), re.DOTALL)


def _try_key(transport: paramiko.Transport, username: str, key: paramiko.PKey) -> bool:
    try:
        transport.auth_publickey(username, key)
    except paramiko.AuthenticationException:
        if not transport.is_active():
            # paramiko reports a connection lost during login (server restarting,
            # session killed) as a failed login; that is transient, not a refused key.
            raise paramiko.SSHException("the connection closed during SSH login") from None
        return False
    return transport.is_authenticated()


def _prefer(available: tuple[str, ...], wanted: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    first = [name for name in wanted if name in available]
    return tuple(dict.fromkeys([*first, *available]))
