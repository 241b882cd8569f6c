"""Security review points, each a test: no shell, host keys verified, no secret leaked,
loopback-only sandbox servers that refuse wrong credentials, send permissions enforced."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import ftrack_api
import paramiko
import psutil
import pytest
import requests
from ftrack_transfer.sandbox.faultproxy import FaultProxy
from ftrack_transfer.sandbox.ftrack import FtrackServer
from ftrack_transfer.transfer import cli as cli_module
from ftrack_transfer.transfer.engine import submit
from ftrack_transfer.transfer.selection import EntityRef

from tests.fixtures.accsyn import open_session as accsyn_session
from tests.fixtures.studio import StudioCase

from .conftest import Auditor, Ledger, Recorder, sha, studio_secrets
from .helpers import cli, ftrack_job, run

PRODUCT = Path(__file__).resolve().parents[2]
PACKAGES = ("accessors", "actions", "bench", "sandbox", "structures", "transfer")
#: Names in file names a shell would act on.
METACHARACTERS = "$(touch PWNED);`touch PWNED`|&<>'\"*?[a] {x,y} ~!#"


# ---------------------------------------------------------------------------- no shell


class _ShellCall(ast.NodeVisitor):
    """Calls that hand a string to a shell, by name or by ``shell=True``."""

    NAMES = {"system", "popen", "exec_command", "invoke_shell", "getoutput", "getstatusoutput"}

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        # Exact names: subprocess.Popen with an argument list is how tools are run safely.
        if name in self.NAMES:
            self.found.append((node.lineno, name))
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is False
            ):
                self.found.append((node.lineno, "shell=..."))
        self.generic_visit(node)


def test_the_product_source_never_hands_a_string_to_a_shell() -> None:
    scanned = 0
    found = []
    for package in PACKAGES:
        for path in sorted((PRODUCT / package).rglob("*.py")):
            visitor = _ShellCall()
            visitor.visit(ast.parse(path.read_text(), str(path)))
            scanned += 1
            found += [f"{path.relative_to(PRODUCT)}:{line}: {what}" for line, what in visitor.found]
    assert scanned > 50
    assert found == []


class _Spawns:
    """Records process creation and shell events of this process while armed (audit hooks
    cannot be removed, so the hook is installed once and stays inert when disarmed)."""

    EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn",
              "os.fork", "os.forkpty")  # fmt: skip

    def __init__(self) -> None:
        self.armed = False
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.armed and event.startswith(self.EVENTS):
            with self._lock:
                self.events.append((event, args))


SPAWNS = _Spawns()


def test_no_process_or_shell_is_started_while_files_named_like_shell_commands_are_sent(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder
) -> None:
    # A shell reading these names would create PWNED in its working directory.
    names = METACHARACTERS
    # A component name and an additional file carrying shell syntax in their paths.
    published = ledger.publish(files={f"main {names}": 3000, "plain": 1_500_000})
    extra = f"notes/{names}.txt"
    path = studio.roots["hq"] / extra
    path.parent.mkdir(parents=True)
    path.write_bytes(b"shell-looking notes")
    ledger.sources.add(sha(path.read_bytes()))
    journal = studio.journal()
    job_id = submit(
        journal, source=studio.names["hq"],
        destinations=[studio.names["la"], studio.names["cloud"], studio.names["vendor"]],
        selection=[EntityRef("AssetVersion", published.version_id)], origin="test",
        username="pipeline", user_id=None, title="metacharacters", additional_files=[extra],
    )  # fmt: skip
    SPAWNS.events.clear()
    SPAWNS.armed = True
    try:
        status = run(studio, journal, job_id)
    finally:
        SPAWNS.armed = False
    assert status == "done", journal.job(job_id).message
    # The only processes started are OpenSSH's ssh client carrying the SFTP sessions: an
    # argument list (no shell), the sftp subsystem (no remote command), and no name of
    # a file being sent anywhere in it.
    assert SPAWNS.events, "the SFTP sessions run over ssh here"
    for event, (executable, argv, *_) in SPAWNS.events:
        assert event == "subprocess.Popen" and Path(executable).name == "ssh", (event, argv)
        assert isinstance(argv, list) and argv[-4:] == ["-s", "--", "127.0.0.1", "sftp"]
        assert not any("touch" in arg or "PWNED" in arg for arg in argv), argv
    assert not Path("PWNED").exists()
    # The hook does see a process being started (so the checks above mean something).
    SPAWNS.events.clear()
    SPAWNS.armed = True
    try:
        subprocess.run(["true"], check=True)
    finally:
        SPAWNS.armed = False
    assert [(event, args[1]) for event, args in SPAWNS.events] == [("subprocess.Popen", ["true"])]
    assert [p for p in studio.directory.rglob("PWNED")] == []
    ids = list(published.components.values())
    for role in ("la", "cloud", "vendor"):
        assert studio.availability(ids, role) == [100.0, 100.0], role
    # The additional file arrived under its own, unchanged name (not a shell's reading of it).
    assert (studio.roots["la"] / extra).read_bytes() == b"shell-looking notes"
    assert (studio.roots["vendor"] / extra).read_bytes() == b"shell-looking notes"
    recorder.figure(
        "processes started during the send with shell syntax in names, other than ssh", "0"
    )
    audit(ledger)


# ---------------------------------------------------------------------------- host keys


def test_an_sftp_location_without_a_known_hosts_entry_is_refused_by_default(
    studio: StudioCase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A sites config that does not name a known_hosts file uses ~/.ssh/known_hosts.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    known = str(studio.sftp.known_hosts_path)
    studio.edit_config(lambda text: text.replace(f'known_hosts = "{known}"\n', ""))
    before = set(os.listdir(studio.roots["la"]))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        assert cli_module.main(["locations", "--check"]) == 1
    row = next(line for line in output.getvalue().splitlines() if studio.names["la"] in line)
    port = studio.sftp.port
    assert (
        f"Unknown SSH host key for [127.0.0.1]:{port} (ssh-ed25519 {studio.sftp.host_key_fingerprint}), "
        f"not in {home}/.ssh/known_hosts; if that fingerprint is the server's, trust it with: "
        f"ssh-keyscan -p {port} 127.0.0.1 >> {home}/.ssh/known_hosts"
    ) in " ".join(cell.strip() for cell in row.split("│"))
    # Refused before logging in: nothing was added to known_hosts, nothing written there.
    assert not (home / ".ssh" / "known_hosts").exists()
    assert set(os.listdir(studio.roots["la"])) == before


# ---------------------------------------------------------------------------- secrets


def encrypted_key(studio: StudioCase, path: Path, passphrase: str) -> Path:
    """The sandbox's client key, protected by *passphrase* (the server knows its public half)."""
    path.write_bytes(studio.sftp.client_key_path.read_bytes())
    path.chmod(0o600)
    subprocess.run(
        ["ssh-keygen", "-p", "-q", "-f", str(path), "-P", "", "-N", passphrase],
        check=True, capture_output=True,
    )  # fmt: skip
    return path


def test_secrets_never_appear_in_logs_jobs_errors_or_dry_runs(
    studio: StudioCase, ledger: Ledger, audit: Auditor, recorder: Recorder, tmp_path: Path
) -> None:
    passphrase = "correct-horse-" + os.urandom(8).hex()
    key = encrypted_key(studio, tmp_path / "protected_ed25519", passphrase)
    studio.edit_config(
        lambda text: text.replace(
            f'key_file = "{studio.sftp.client_key_path}"',
            f'key_file = "{key}"\npassphrase_env = "LA_KEY_PASSPHRASE"',
        ),
    )
    env = {"LA_KEY_PASSPHRASE": passphrase}
    secrets = {**studio_secrets(studio), "SSH key passphrase": passphrase}
    wrong = {
        "a wrong S3 secret": "wrong-s3-secret-" + os.urandom(6).hex(),
        "a wrong passphrase": "wrong-passphrase-" + os.urandom(6).hex(),
        "a wrong accsyn key": "wrong-accsyn-" + os.urandom(6).hex(),
        "a wrong ftrack key": "wrong-ftrack-" + os.urandom(6).hex(),
    }
    published = ledger.publish(files={"main": 2 * 1024**2}, sequences={"plate": (3, 1000)})
    hq, la, cloud, vendor = (studio.names[r] for r in ("hq", "la", "cloud", "vendor"))
    version = published.version_id
    captured: dict[str, str] = {}

    def capture(label: str, *args: str, extra: dict[str, str] | None = None, code: int = 0) -> str:
        result = cli(studio, "-vv", *args, env={**env, **(extra or {})})
        assert result.returncode == code, (label, result.stdout[-2000:], result.stderr[-2000:])
        captured[label] = result.stdout + result.stderr
        return captured[label]

    capture("dry run", "send", "--from", hq, "--to", la, "--to", cloud, version, "--dry-run")
    debug = capture("send with debug logging", "send", "--from", hq, "--to", la, "--to", cloud,
                    "--to", vendor, version, "--wait")  # fmt: skip
    assert " DEBUG " in debug and "done: sent 2 components" in debug
    ids = list(published.components.values())
    for role in ("la", "cloud", "vendor"):
        assert studio.availability(ids, role) == [100.0, 100.0]
    other = ledger.publish(files={"main": 1000})
    failed_s3 = capture("send with a wrong S3 secret", "send", "--from", hq, "--to", cloud, other.version_id,
                        "--wait", extra={"AWS_SECRET_ACCESS_KEY": wrong["a wrong S3 secret"]}, code=1)  # fmt: skip
    assert "refused the AWS credentials (SignatureDoesNotMatch)" in failed_s3
    failed_ssh = capture("send with a wrong passphrase", "send", "--from", hq, "--to", la, other.version_id,
                         "--wait", extra={"LA_KEY_PASSPHRASE": wrong["a wrong passphrase"]}, code=1)  # fmt: skip
    assert "passphrase" in failed_ssh.lower()
    failed_accsyn = capture("send with a wrong accsyn key", "send", "--from", hq, "--to", vendor,
                            other.version_id, "--wait", extra={"ACCSYN_API_KEY": wrong["a wrong accsyn key"]},
                            code=1)  # fmt: skip
    assert "cannot log in to accsyn" in failed_accsyn
    failed_ftrack = capture("send with a wrong ftrack key", "send", "--from", hq, "--to", la, other.version_id,
                            extra={"FTRACK_API_KEY": wrong["a wrong ftrack key"]}, code=2)  # fmt: skip
    assert "refused the credentials of pipeline" in failed_ftrack
    capture("locations --check", "locations", "--check")

    journal = studio.journal()
    for job in journal.jobs():
        status, description = ftrack_job(studio, journal, job.id)
        captured[f"ftrack Job {job.id} ({status})"] = description
        captured[f"journal message of {job.id}"] = job.message
    database = sqlite3.connect(studio.config.journal_path())
    captured["journal"] = "\n".join(
        repr(row) for table in ("jobs", "files", "components") for row in database.execute(f"select * from {table}")
    )  # fmt: skip
    database.close()
    captured["sites config"] = studio.config_path.read_text()

    leaks = [
        f"{what} in {where}"
        for what, value in {**secrets, **wrong}.items()
        for where, text in captured.items()
        if value in text
    ]
    assert leaks == []
    recorder.figure(
        "secret scan",
        f"{len(secrets) + len(wrong)} secret values x {len(captured)} captures "
        f"({sum(len(t) for t in captured.values()) // 1024} KiB of logs, Jobs, errors and dry runs): 0 found",
    )
    # The failed sends left the data where it was: nothing registered at the wrong place.
    assert studio.availability(list(other.components.values()), "cloud") == [0.0]
    audit(ledger)


# ---------------------------------------------------------------------------- sandbox servers


def listening(port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_sandbox_servers_bind_loopback_only_and_refuse_wrong_credentials(
    studio: StudioCase,
) -> None:
    ports = {
        "ftrack": studio.server.port,
        "accsyn": studio.accsyn.port,
        "sshd": studio.sftp.port,
        "s3": studio.s3.port,
    }
    outside = outside_address()
    for name, port in ports.items():
        assert listening(port) == {"127.0.0.1"}, name
        if outside:
            with pytest.raises(OSError), socket.create_connection((outside, port), timeout=2):
                pass
    with pytest.raises(ValueError, match="loopback only"):
        FtrackServer(host="0.0.0.0")  # noqa: S104 - refused, which is the point

    # ftrack: a wrong key is refused for the API and for the event hub.
    with pytest.raises(ftrack_api.exception.ServerError, match=r"(?i)credentials|api key"):
        ftrack_api.Session(server_url=studio.server.url, api_user="pipeline", api_key="0" * 36,
                           auto_connect_event_hub=False, plugin_paths=[])  # fmt: skip
    reply = requests.get(
        f"{studio.server.url}/socket.io/1/",
        headers={"ftrack-user": "pipeline", "ftrack-api-key": "0" * 36}, timeout=5,
    )  # fmt: skip
    assert reply.status_code == 401
    # accsyn: a wrong key is refused at login.
    with pytest.raises(Exception, match="invalid API key"):
        accsyn_session(studio.accsyn, api_key="wrong")
    # SFTP: a key the server does not know is refused.
    with socket.create_connection(("127.0.0.1", studio.sftp.port), timeout=5) as sock:
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=5)
            with pytest.raises(paramiko.AuthenticationException):
                transport.auth_publickey(studio.sftp.username, paramiko.RSAKey.generate(2048))
            with pytest.raises(paramiko.SSHException):
                transport.auth_password(studio.sftp.username, "password")
        finally:
            transport.close()
    # S3: a wrong secret, an unknown key and an anonymous request are refused.
    for key, secret, code in (
        (studio.s3.access_key, "wrong", "SignatureDoesNotMatch"),
        ("AKIAUNKNOWN", studio.s3.secret_key, "InvalidAccessKeyId"),
    ):
        client = boto3.session.Session(
            aws_access_key_id=key, aws_secret_access_key=secret, region_name=studio.s3.region
        ).client("s3", endpoint_url=studio.s3.endpoint_url,
                 config=botocore.config.Config(s3={"addressing_style": "path"}))  # fmt: skip
        with pytest.raises(botocore.exceptions.ClientError, match=code):
            client.list_objects_v2(Bucket="studio-tests")
    anonymous = requests.get(f"{studio.s3.endpoint_url}/studio-tests", timeout=5)
    assert anonymous.status_code == 403 and b"AccessDenied" in anonymous.content
    # The S3 fault proxy the tests put in front of it listens on loopback too.
    with FaultProxy(studio.s3.endpoint_url) as proxy:
        assert listening(int(proxy.url.rsplit(":", 1)[1])) == {"127.0.0.1"}


# ---------------------------------------------------------------------------- permissions


def test_users_send_only_from_locations_they_read_to_locations_they_write(
    studio: StudioCase,
    ledger: Ledger,
    audit: Auditor,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = studio.names
    studio.edit_config(
        lambda text: text.replace(
            f'[locations."{names["la"]}"]\n', f'[locations."{names["la"]}"]\nreaders = ["pipeline"]\n'
        ).replace(
            f'[locations."{names["cloud"]}"]\n', f'[locations."{names["cloud"]}"]\nwriters = ["group:vendors"]\n'
        ),
    )  # fmt: skip
    published = ledger.publish(files={"main": 5000})
    # alice (coordinators) may send hq -> la, not from la, not to the cloud.
    monkeypatch.setenv("FTRACK_API_USER", "alice")
    monkeypatch.setenv("FTRACK_API_KEY", studio.server.user_key("alice"))
    cases = {
        (names["hq"], names["la"]): None,
        (names["la"], names["hq"]): f"alice may not send from {names['la']} (not among its readers in the sites config)",
        (names["hq"], names["cloud"]): f"alice may not send to {names['cloud']} (not among its writers in the sites config)",
    }  # fmt: skip
    for (source, destination), refusal in cases.items():
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = cli_module.main(
                ["send", "--from", source, "--to", destination, published.version_id, "--wait"]
            )
        recorder.bad_inputs_tried += refusal is not None
        if refusal is None:
            assert code == 0, stderr.getvalue()
        else:
            assert (code, stderr.getvalue().strip()) == (2, f"ftrack-transfer send: {refusal}")
            recorder.bad_inputs_refused += 1
    assert studio.availability([published.components["main"]], "la") == [100.0]
    assert studio.availability([published.components["main"]], "cloud") == [0.0]
    (job,) = studio.journal().jobs()
    assert (job.username, job.source, job.destinations) == ("alice", names["hq"], [names["la"]])
    assert json.loads(
        studio.server.query(f'select data from Job where id is "{job.ftrack_job_id}"')[0]["data"]
    )
    audit(ledger)
