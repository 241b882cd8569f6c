"""The bad input catalogue: what a user may get wrong, and the exact message they see.

One table, one row per case, each through the surface a user touches - the command line
(``ftrack-transfer ...``), the **accsyn Send** form in the web UI, or the Python API - and
each checked to leave ftrack without a single write, storage as it was and the journal
without a job. ``{hq}``, ``{la}``, ``{config}`` and the like in a message stand for this
run's location names and paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ftrack_transfer.sandbox.sftp import fingerprint, generate_key
from ftrack_transfer.transfer import cli as cli_module
from ftrack_transfer.transfer.accsyn_backend import open_accsyn_session
from ftrack_transfer.transfer.config import load_config
from ftrack_transfer.transfer.engine import submit
from ftrack_transfer.transfer.errors import UserError
from ftrack_transfer.transfer.ftrack_session import open_session
from ftrack_transfer.transfer.journal import Journal
from ftrack_transfer.transfer.selection import EntityRef, resolve

from tests.fixtures.studio import StudioCase

from .conftest import Ledger, Recorder, snapshot

SEND = "ftrack-transfer.send"
AWS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
    "credentials), or AWS_PROFILE / the location's profile option naming a profile in the AWS "
    "config, or run where an instance role applies"
)
VENDOR = "vera@vfxvendor.example"


@dataclasses.dataclass
class Context:
    """What a case may use: the studio, a published version and its names."""

    studio: StudioCase
    ledger: Ledger
    monkeypatch: pytest.MonkeyPatch
    request: pytest.FixtureRequest
    tmp: Path
    version_id: str = ""
    #: Values a case learns while it sets itself up (the fingerprint of an old host key).
    learned: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def values(self) -> dict[str, str]:
        """What ``{name}`` stands for in the expected messages (read before the case runs:
        some cases break the sites config on purpose)."""
        studio = self.studio
        return {
            **studio.names,
            "config": str(studio.config_path),
            "journal": str(load_config(studio.config_path, cached=False).journal_path()),
            "url": studio.server.url,
            "tmp": str(self.tmp),
            "port": str(studio.sftp.port),
            "user": studio.sftp.username,
            "fingerprint": studio.sftp.host_key_fingerprint,
            "s3": studio.s3.endpoint_url,
            "accsyn_user": studio.accsyn.api_user,
            "compositing": studio.server.seed_info.tasks["sq010/sh0010/compositing"],
            "configured": ", ".join(sorted(studio.names.values())),
            "form_locations": ", ".join(studio.names.values()),
        }

    def as_user(self, username: str) -> None:
        self.monkeypatch.setenv("FTRACK_API_USER", username)
        self.monkeypatch.setenv("FTRACK_API_KEY", self.studio.server.user_key(username))


# ---------------------------------------------------------------------------- surfaces


def cli(context: Context, *args: str) -> str:
    """``ftrack-transfer ARGS`` as typed; returns what it printed on stderr (one line)."""
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            code = cli_module.main(list(args))
        except SystemExit as exit_:  # argparse's own refusals
            code = int(exit_.code or 0)
    lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
    assert code == 2, (code, stdout.getvalue(), stderr.getvalue())
    assert "Traceback" not in stderr.getvalue()
    return lines[-1]


def check(context: Context, *args: str) -> str:
    """``ftrack-transfer locations --check``: the reason the one failing location gives."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        code = cli_module.main(["locations", "--check", *args])
    assert code == 1, stdout.getvalue()
    rows = [line for line in stdout.getvalue().splitlines() if "not reachable" in line]
    assert len(rows) == 1, stdout.getvalue()
    cells = [cell.strip() for cell in rows[0].split("│")]
    return cells[cells.index("not reachable") + 1]


def form(context: Context, username: str, values: dict[str, Any] | None, selection=None) -> str:
    """The accsyn Send form submitted in the web UI; returns the message shown."""
    context.request.getfixturevalue("serve")
    ui = context.request.getfixturevalue("web_ui")(username)
    if selection is None:
        selection = [{"entityId": context.version_id, "entityType": "assetversion"}]
    reply = ui.launch(SEND, selection, values)
    if "items" in reply:
        label = reply["items"][0]
        assert label["type"] == "label" and label["value"].startswith("**Cannot send:** "), reply
        return label["value"].removeprefix("**Cannot send:** ")
    assert reply["success"] is False, reply
    return reply["message"]


def api(call: Callable[[], Any]) -> str:
    """A Python API call; returns the message of the UserError it raises."""
    with pytest.raises(UserError) as caught:
        call()
    return str(caught.value)


def send_values(context: Context, **extra: Any) -> dict[str, Any]:
    names = context.studio.names
    values = {
        "source": names["hq"],
        f"to:{names['la']}": True,
        "components": "all",
        "additional_files": "",
        "priority": "normal",
        "preview": False,
    }
    values.update(extra)
    return values


# ---------------------------------------------------------------------------- set-ups


def write_config(context: Context, text: str) -> str:
    path = context.tmp / "bad-sites.toml"
    path.write_text(text)
    return str(path)


def restrict(context: Context, role: str, field: str, principals: str) -> None:
    name = context.studio.names[role]
    context.studio.edit_config(
        lambda text: text.replace(
            f'[locations."{name}"]\n', f'[locations."{name}"]\n{field} = {principals}\n'
        ),
    )


def other_key(context: Context) -> str:
    """A key the server does not know."""
    path = context.tmp / "stranger_ed25519"
    generate_key(path, "stranger")
    return str(path)


def changed_host_key(context: Context) -> str:
    """A known_hosts that records another key for the server (as after a rebuild)."""
    key_path = context.tmp / "old_host_key"
    public = generate_key(key_path, "old-host")
    host = f"[127.0.0.1]:{context.studio.sftp.port}"
    known = context.tmp / "known_hosts_changed"
    known.write_text(f"{host} {public.split()[0]} {public.split()[1]}\n")
    context.learned["old_fingerprint"] = fingerprint(public)
    return str(known)


# ---------------------------------------------------------------------------- the table


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    surface: str  # "cli", "form" or "api"
    run: Callable[[Context], str]
    message: str
    needs_version: bool = False


CASES = [
    # -- locations and selections
    Case("unknown location", "cli",
         lambda c: cli(c, "send", "--from", "nowhere", "--to", c.studio.names["la"], "demo/sq010/sh0010"),
         'ftrack-transfer send: unknown location "nowhere"; configured locations: {configured} (see {config})'),
    Case("source equals destination", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["hq"], "demo/sq010/sh0010"),
         "ftrack-transfer send: source and destination are the same location ({hq}); choose another destination"),
    Case("source equals destination in the form", "form",
         lambda c: form(c, "alice", send_values(c, **{f"to:{c.studio.names['hq']}": True})),
         "source and destination are the same location ({hq}); untick {hq}", needs_version=True),
    Case("empty selection in the web UI", "form",
         lambda c: form(c, "alice", send_values(c), selection=[]),
         "nothing selected; select versions, tasks, shots, lists or a project"),
    Case("empty selection through the API", "api",
         lambda c: api(lambda: resolve(open_session(), [])),
         "nothing selected; name at least one entity by id or path (e.g. demo/sq010/sh0010)"),
    Case("no destination through the API", "api",
         lambda c: api(lambda: submit(c.studio.journal(), source=c.studio.names["hq"], destinations=[],
                                      selection=[EntityRef("AssetVersion", c.version_id)], origin="api",
                                      username="pipeline", user_id=None)),
         "no destination location; choose at least one", needs_version=True),
    Case("a destination listed twice through the API", "api",
         lambda c: api(lambda: submit(c.studio.journal(), source=c.studio.names["hq"],
                                      destinations=[c.studio.names["la"]] * 2,
                                      selection=[EntityRef("AssetVersion", c.version_id)], origin="api",
                                      username="pipeline", user_id=None)),
         "a destination location is listed twice", needs_version=True),
    Case("no destination ticked in the form", "form",
         lambda c: form(c, "alice", send_values(c, **{f"to:{c.studio.names['la']}": False})),
         "choose at least one destination location", needs_version=True),
    Case("component not at the source", "form",
         lambda c: form(c, "alice", send_values(c, source=c.studio.names["la"])),
         "none of the selected components is available at {la}; choose another source", needs_version=True),
    Case("unknown source in the form", "form",
         lambda c: form(c, "alice", send_values(c, source="nowhere")),
         "unknown source location 'nowhere'; choose one of {form_locations}", needs_version=True),
    Case("unknown entity path", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], "demo/sq010/sh9999"),
         "ftrack-transfer send: unknown entity 'demo/sq010/sh9999': no project, context or asset has that path; "
         "use an id or a path like demo/sq010/sh0010/compositing, demo/sq010/sh0010/plate or demo/sq010/sh0010/plate/v002"),
    Case("unknown entity id", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"],
                       "12345678-1234-1234-1234-123456789abc"),
         "ftrack-transfer send: unknown entity id 12345678-1234-1234-1234-123456789abc: no project, context, "
         "version, component, list or asset has it in ftrack"),
    Case("an entity path with ..", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], "demo/../../etc"),
         "ftrack-transfer send: 'demo/../../etc' is not an entity path; use an id or a path like demo/sq010/sh0010"),
    Case("an empty entity", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], ""),
         "ftrack-transfer send: '' is not an entity path; use an id or a path like demo/sq010/sh0010"),
    Case("a unicode entity path", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], "demo/sq010/ショット"),
         "ftrack-transfer send: unknown entity 'demo/sq010/ショット': no project, context or asset has that path; "
         "use an id or a path like demo/sq010/sh0010/compositing, demo/sq010/sh0010/plate or demo/sq010/sh0010/plate/v002"),
    Case("a very long entity path", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], "demo/" + "x" * 5000),
         "ftrack-transfer send: unknown entity 'demo/" + "x" * 5000 + "': no project, context or asset has that path; "
         "use an id or a path like demo/sq010/sh0010/compositing, demo/sq010/sh0010/plate or demo/sq010/sh0010/plate/v002"),
    Case("shell metacharacters in a location name", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", "la; rm -rf ~", "demo/sq010/sh0010"),
         'ftrack-transfer send: unknown location "la; rm -rf ~"; configured locations: {configured} (see {config})'),
    # -- additional files
    Case("additional file escaping the root", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], c.version_id,
                       "--additional", "../../etc/passwd"),
         "ftrack-transfer send: additional file '../../etc/passwd' is outside {hq}: escapes the location root with '..'",
         needs_version=True),
    Case("additional file with an absolute path", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], c.version_id,
                       "--additional", "/etc/passwd"),
         "ftrack-transfer send: additional file '/etc/passwd' is outside {hq}: is absolute", needs_version=True),
    Case("additional file with a NUL byte", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], c.version_id,
                       "--additional", "notes\x00.txt"),
         "ftrack-transfer send: additional file 'notes\\x00.txt' is outside {hq}: contains a NUL byte",
         needs_version=True),
    Case("additional file with shell metacharacters", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], c.version_id,
                       "--additional", f"notes/$(touch {c.tmp}/pwned); `touch {c.tmp}/pwned`|x&.txt"),
         "ftrack-transfer send: additional file 'notes/$(touch {tmp}/pwned); `touch {tmp}/pwned`|x&.txt' "
         "does not exist at {hq}", needs_version=True),
    Case("additional file with a very long name", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], c.version_id,
                       "--additional", "notes/" + "n" * 300 + ".txt"),
         "ftrack-transfer send: additional file 'notes/" + "n" * 300 + ".txt' does not exist at {hq}",
         needs_version=True),
    Case("additional file with a unicode name that does not exist", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], c.version_id,
                       "--additional", "notes/résumé ノート.txt"),
         "ftrack-transfer send: additional file 'notes/résumé ノート.txt' does not exist at {hq}", needs_version=True),
    Case("additional file escaping the root in the form", "form",
         lambda c: form(c, "alice", send_values(c, additional_files="../../etc/passwd")),
         "additional file '../../etc/passwd' is not inside {hq}: it escapes the location root with '..'",
         needs_version=True),
    Case("additional file with an absolute path in the form", "form",
         lambda c: form(c, "alice", send_values(c, additional_files="/etc/shadow")),
         "additional file '/etc/shadow' is not inside {hq}: it is absolute", needs_version=True),
    Case("additional file with a NUL byte in the form", "form",
         lambda c: form(c, "alice", send_values(c, additional_files="a\x00b")),
         "additional file 'a\\x00b' is not inside {hq}: it contains a NUL byte", needs_version=True),
    # -- forms
    Case("form submitted without a source", "form",
         lambda c: form(c, "alice", {k: v for k, v in send_values(c).items() if k != "source"}),
         "choose a source location", needs_version=True),
    Case("form submitted with an extra value", "form",
         lambda c: form(c, "alice", send_values(c, surprise="1")),
         "the form sent an unexpected field 'surprise'; reopen the action and try again", needs_version=True),
    Case("form naming a destination that is not configured", "form",
         lambda c: form(c, "alice", send_values(c, **{"to:nowhere": True})),
         "the form sent an unexpected field 'to:nowhere'; reopen the action and try again", needs_version=True),
    Case("form with an unknown priority", "form",
         lambda c: form(c, "alice", send_values(c, priority="urgent")),
         "unknown priority 'urgent'; choose low, normal or high", needs_version=True),
    # -- permissions
    Case("a user without the send permission, in the web UI", "form",
         lambda c: form(c, "carol", send_values(c)),
         "carol may not use accsyn Send", needs_version=True),
    Case("a user without the send permission, on the command line", "cli",
         lambda c: (c.as_user("carol"),
                    cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], "demo/sq010/sh0010"))[1],
         "ftrack-transfer send: carol may not send; the sites config allows: group:coordinators, pipeline"),
    Case("a user who may not read the source", "cli",
         lambda c: (restrict(c, "hq", "readers", '["pipeline"]'), c.as_user("alice"),
                    cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], "demo/sq010/sh0010"))[2],
         "ftrack-transfer send: alice may not send from {hq} (not among its readers in the sites config)"),
    Case("a user who may not write the destination, in the web UI", "form",
         lambda c: (restrict(c, "la", "writers", '["group:vendors"]'), form(c, "alice", send_values(c)))[1],
         "alice may not send to {la} (not among its writers in the sites config)", needs_version=True),
    Case("a vendor publishing into a task not theirs", "cli",
         lambda c: (c.as_user(VENDOR), (c.tmp / "comp.1001.exr").write_bytes(b"frame"),
                    cli(c, "publish", "--location", c.studio.names["vendor"], "--task",
                        "demo/sq010/sh0010/compositing", "--asset", "comp", str(c.tmp / "comp.1001.exr")))[2],
         "ftrack-transfer publish: task compositing ({compositing}) is not assigned to " + VENDOR
         + "; vendors can only publish into their own tasks - ask the coordinator to assign it"),
    # -- configuration and credentials
    Case("malformed config", "cli",
         lambda c: cli(c, "--config", write_config(c, '[locations."hq"\naccessor = "disk"\n'), "send",
                       "--from", "hq", "--to", "la", "demo/sq010/sh0010"),
         "ftrack-transfer send: {tmp}/bad-sites.toml: not valid TOML: Expected ']' at the end of a table "
         "declaration (at line 1, column 16)"),
    Case("a secret written into the config", "cli",
         lambda c: cli(c, "--config", write_config(c, '[locations."la"]\naccessor = "sftp"\nhost = "h"\n'
                                                      'username = "u"\nroot = "/r"\npassword = "hunter2"\n'),
                       "send", "--from", "la", "--to", "hq", "demo/sq010/sh0010"),
         'ftrack-transfer send: {tmp}/bad-sites.toml: location "la": field "password": secrets are never read '
         "from the sites config; put the secret in an environment variable or a key file and name that instead "
         "(see docs/configuration.md)"),
    Case("missing config", "cli",
         lambda c: cli(c, "--config", str(c.tmp / "missing.toml"), "status"),
         "ftrack-transfer status: {tmp}/missing.toml: sites config not found; pass --config, set "
         "FTRACK_TRANSFER_CONFIG, or create it (see docs/configuration.md)"),
    Case("missing ftrack server", "cli",
         lambda c: (c.monkeypatch.delenv("FTRACK_SERVER"),
                    cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], "demo/sq010/sh0010"))[1],
         "ftrack-transfer send: FTRACK_SERVER is not set; point it at your ftrack server (or source a sandbox env.sh)"),
    Case("missing ftrack API key", "cli",
         lambda c: (c.monkeypatch.delenv("FTRACK_API_KEY"),
                    cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], "demo/sq010/sh0010"))[1],
         "ftrack-transfer send: FTRACK_API_KEY is not set; set it to the API key of FTRACK_API_USER "
         "(or source a sandbox env.sh)"),
    Case("wrong ftrack API key", "cli",
         lambda c: (c.monkeypatch.setenv("FTRACK_API_KEY", "0" * 36),
                    cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], "demo/sq010/sh0010"))[1],
         "ftrack-transfer send: ftrack at {url} refused the credentials of pipeline; check FTRACK_API_USER and FTRACK_API_KEY"),
    Case("wrong SSH key for SFTP", "cli",
         lambda c: (c.studio.edit_config(lambda t: t.replace(str(c.studio.sftp.client_key_path), other_key(c))),
                    check(c))[1],
         "SSH login to sftp {user}@127.0.0.1:{port} refused with key {tmp}/stranger_ed25519; add the public key "
         "to ~{user}/.ssh/authorized_keys on the server"),
    Case("missing SSH key file for SFTP", "cli",
         lambda c: (c.studio.edit_config(lambda t: t.replace(str(c.studio.sftp.client_key_path), f"{c.tmp}/no_key")),
                    cli(c, "locations", "--check"))[1],
         'ftrack-transfer locations: {config}: location "{la}": field "key_file": cannot read "{tmp}/no_key": '
         "No such file or directory"),
    Case("unknown SSH host (no known_hosts entry)", "cli",
         lambda c: ((c.tmp / "known_hosts_empty").write_text(""),
                    c.studio.edit_config(lambda t: t.replace(str(c.studio.sftp.known_hosts_path), f"{c.tmp}/known_hosts_empty")),
                    check(c))[2],
         "Unknown SSH host key for [127.0.0.1]:{port} (ssh-ed25519 {fingerprint}), not in {tmp}/known_hosts_empty; "
         "if that fingerprint is the server's, trust it with: ssh-keyscan -p {port} 127.0.0.1 >> "
         "{tmp}/known_hosts_empty"),
    Case("changed SSH host key", "cli",
         lambda c: (c.studio.edit_config(lambda t: t.replace(str(c.studio.sftp.known_hosts_path), changed_host_key(c))),
                    check(c))[1],
         "SSH host key for [127.0.0.1]:{port} has CHANGED: the server presents ssh-ed25519 {fingerprint}, "
         "{tmp}/known_hosts_changed has ssh-ed25519 {old_fingerprint}; if the change is expected, replace the old "
         "key with: ssh-keygen -R '[127.0.0.1]:{port}' -f {tmp}/known_hosts_changed && ssh-keyscan -p {port} "
         "127.0.0.1 >> {tmp}/known_hosts_changed"),
    Case("wrong S3 secret key", "cli",
         lambda c: (c.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret"), check(c))[1],
         "s3://studio-tests/{cloud} at {s3} refused the AWS credentials (SignatureDoesNotMatch): " + AWS_HINT),
    Case("missing S3 credentials", "cli",
         lambda c: (c.monkeypatch.delenv("AWS_ACCESS_KEY_ID"), c.monkeypatch.delenv("AWS_SECRET_ACCESS_KEY"), check(c))[2],
         "No AWS credentials for s3://studio-tests/{cloud} at {s3}: " + AWS_HINT),
    Case("wrong accsyn API key", "api",
         lambda c: (c.monkeypatch.setenv("ACCSYN_API_KEY", "not-the-key"), api(open_accsyn_session))[1],
         "cannot log in to accsyn: Authentication failed: invalid API key for {accsyn_user} in workspace sandbox, "
         "check ACCSYN_API_USER and ACCSYN_API_KEY; check ACCSYN_WORKSPACE, ACCSYN_API_USER and ACCSYN_API_KEY"),
    Case("missing accsyn API key", "api",
         lambda c: (c.monkeypatch.delenv("ACCSYN_API_KEY"), api(open_accsyn_session))[1],
         "cannot log in to accsyn: Please supply your accsyn API KEY or set ACCSYN_API_KEY environment!; check "
         "ACCSYN_WORKSPACE, ACCSYN_API_USER and ACCSYN_API_KEY"),
    # -- jobs
    Case("an unknown job", "cli",
         lambda c: cli(c, "status", "0000nosuchjob"),
         'ftrack-transfer status: no job "0000nosuchjob" in journal {journal}; `ftrack-transfer status` lists jobs'),
    Case("a priority that is not a number", "cli",
         lambda c: cli(c, "send", "--from", c.studio.names["hq"], "--to", c.studio.names["la"], "demo/sq010/sh0010",
                       "--priority", "high"),
         "ftrack-transfer send: error: argument --priority: invalid int value: 'high'"),
    Case("a sync filter that does not exist", "cli",
         lambda c: cli(c, "sync", "--from", c.studio.names["hq"], "--to", c.studio.names["cloud"], "--project", "demo",
                       "--filter", "colour=red"),
         "ftrack-transfer sync: bad filter 'colour=red'; use KEY=VALUE with KEY one of asset_type, task_type, "
         "status, component, asset, max_age"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_bad_input_is_refused_with_its_message_and_changes_nothing(
    case: Case,
    studio: StudioCase,
    ledger: Ledger,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    context = Context(studio, ledger, monkeypatch, request, tmp_path / "case")
    context.tmp.mkdir()
    if case.needs_version:
        context.version_id = ledger.publish(files={"main": 2000}).version_id
    studio.session()  # the studio's locations exist in ftrack, as in any studio
    names = context.values
    before_storage = snapshot(studio)
    before = studio.server.stats
    recorder.bad_inputs_tried += 1

    message = case.run(context)

    names.update(context.learned)
    assert message == case.message.format(**names)
    assert (studio.server.stats - before).write_requests == 0, "ftrack was written to"
    assert snapshot(studio) == before_storage, "storage changed"
    assert Journal(Path(names["journal"])).jobs() == [], "a job was queued"
    assert not (context.tmp / "pwned").exists(), "a shell ran"
    recorder.bad_inputs_refused += 1


def test_the_catalogue_has_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert {case.surface for case in CASES} == {"cli", "form", "api"}
    assert len({case.name for case in CASES}) == len(CASES)
