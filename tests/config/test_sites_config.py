"""The sites config: every mistake a user can make is one line naming the file, the
location (or rule) and the field, with the fix; valid configs give the values the rest
of the product reads. Pure logic: no server, no storage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ftrack_transfer.accessors import ACCESSORS, accessor_class
from ftrack_transfer.transfer import units
from ftrack_transfer.transfer.config import (
    CONFIG_ENV,
    SCOPE_ENV,
    TransferSettings,
    config_path,
    default_config_path,
    load_config,
    resolve_root,
)
from ftrack_transfer.transfer.errors import ConfigError

from .helpers import Sites

HQ = """
[locations.hq]
accessor = "disk"
root = "/mnt/hq"
"""

LA = """
[locations.la]
accessor = "sftp"
host = "la.example.com"
root = "/srv/projects"
"""

SECRETS_REFUSED = (
    "secrets are never read from the sites config; put the secret in an environment "
    "variable or a key file and name that instead (see docs/configuration.md)"
)

# (case, config text, the exact message with <config> for the file's path)
BAD_CONFIGS = [
    (
        "unknown accessor",
        '[locations.hq]\naccessor = "ftp"\nroot = "/mnt/hq"\n',
        '<config>: location "hq": field "accessor": unknown accessor "ftp"; '
        "known accessors: accsyn, disk, s3, sftp",
    ),
    (
        "accessor missing",
        '[locations.hq]\nroot = "/mnt/hq"\n',
        '<config>: location "hq": missing required field "accessor"',
    ),
    (
        "sftp host missing",
        '[locations.la]\naccessor = "sftp"\nroot = "/srv/projects"\n',
        '<config>: location "la": missing required field "host"',
    ),
    (
        "s3 bucket missing",
        '[locations.cloud]\naccessor = "s3"\nprefix = "projects"\n',
        '<config>: location "cloud": missing required field "bucket"',
    ),
    (
        "accsyn party missing",
        '[locations.vendor]\naccessor = "accsyn"\n',
        '<config>: location "vendor": missing required field "party"',
    ),
    (
        "disk root missing",
        '[locations.hq]\naccessor = "disk"\n',
        '<config>: location "hq": missing required field "root"',
    ),
    (
        "bad size",
        '[transfer]\nchunk_size = "8 MiBs"\n' + HQ,
        "<config>: field \"transfer.chunk_size\": bad size '8 MiBs'; use a number with a "
        'unit such as "8MiB" or "512KB"',
    ),
    (
        "chunk size too small",
        '[transfer]\nchunk_size = "4KiB"\n' + HQ,
        "<config>: field \"transfer.chunk_size\": chunk size '4KiB' is too small; use at "
        "least 64KiB",
    ),
    (
        "bad size of one location",
        HQ + '[locations.hq.transfer]\nchunk_size = "lots"\n',
        '<config>: location "hq": field "transfer.chunk_size": bad size \'lots\'; use a '
        'number with a unit such as "8MiB" or "512KB"',
    ),
    (
        "bad duration",
        '[transfer]\nretry_wait = "5 minutes"\n' + HQ,
        "<config>: field \"transfer.retry_wait\": bad duration '5 minutes'; use a number "
        'with a unit such as "30s", "15m" or "1h30m"',
    ),
    (
        "bad duration of an accessor field",
        LA + 'connect_timeout = "soon"\n',
        '<config>: location "la": field "connect_timeout": bad duration \'soon\'; use a '
        'number with a unit such as "30s", "15m" or "1h30m"',
    ),
    (
        "bad bandwidth",
        '[transfer]\nbandwidth = "fast"\n' + HQ,
        "<config>: field \"transfer.bandwidth\": bad bandwidth 'fast'; use a rate such as "
        '"50MB/s", or "off"',
    ),
    (
        "bad verification level",
        '[transfer]\nverify = "md5"\n' + HQ,
        "<config>: field \"transfer.verify\": expected one of size, checksum, full, got 'md5'",
    ),
    (
        "no parallel streams",
        "[transfer]\nstreams = 0\n" + HQ,
        '<config>: field "transfer.streams": expected a number from 1 to 256, got 0',
    ),
    (
        "negative retries",
        "[transfer]\nretries = -1\n" + HQ,
        '<config>: field "transfer.retries": expected zero or more, got -1',
    ),
    (
        "unknown transfer setting",
        "[transfer]\nthreads = 4\n" + HQ,
        '<config>: field "transfer.threads": unknown transfer setting; allowed: bandwidth, '
        "chunk_size, files_in_flight, job_update_interval, retries, retry_max_wait, "
        "retry_wait, streams, verify",
    ),
    (
        "job update interval per location",
        HQ + '[locations.hq.transfer]\njob_update_interval = "1s"\n',
        '<config>: location "hq": field "transfer.job_update_interval": set it in [transfer]: '
        "it applies to every job, not per location",
    ),
    (
        "duplicate location",
        HQ + HQ,
        '<config>: duplicate location "hq" (line 6); each location must appear once',
    ),
    (
        "duplicate location apart from case",
        HQ + '[locations.HQ]\naccessor = "disk"\nroot = "/mnt/hq2"\n',
        '<config>: location "HQ": duplicate location (same name as "hq" apart from case; '
        "ftrack location names are unique regardless of case)",
    ),
    (
        "name reserved by ftrack",
        '[locations."ftrack.server"]\naccessor = "disk"\nroot = "/mnt/hq"\n',
        '<config>: location "ftrack.server": the name is reserved by ftrack (ftrack.*); '
        "choose another name",
    ),
    (
        "name reserved by ftrack, other case",
        '[locations."Ftrack.Studio"]\naccessor = "disk"\nroot = "/mnt/hq"\n',
        '<config>: location "Ftrack.Studio": the name is reserved by ftrack (ftrack.*); '
        "choose another name",
    ),
    (
        "unknown field",
        '[locations.hq]\naccessor = "disk"\nrooot = "/mnt/hq"\n',
        '<config>: location "hq": field "rooot": unknown field for a disk location; allowed: '
        "accessor, accsyn, backend, description, label, priority, readers, return_to, root, "
        "structure, transfer, writers",
    ),
    (
        "password",
        LA + 'password = "hunter2"\n',
        f'<config>: location "la": field "password": {SECRETS_REFUSED}',
    ),
    (
        "S3 secret key",
        '[locations.cloud]\naccessor = "s3"\nbucket = "b"\naws_secret_access_key = "x"\n',
        f'<config>: location "cloud": field "aws_secret_access_key": {SECRETS_REFUSED}',
    ),
    (
        "accsyn API key",
        '[accsyn]\napi_key = "x"\n' + HQ,
        f'<config>: field "accsyn.api_key": {SECRETS_REFUSED}',
    ),
    (
        "token among the transfer settings",
        '[transfer]\ntoken = "x"\n' + HQ,
        f'<config>: field "transfer.token": {SECRETS_REFUSED}',
    ),
    (
        "Python 2 platform key",
        '[locations.hq]\naccessor = "disk"\nroot = { linux2 = "/mnt/hq" }\n',
        '<config>: location "hq": field "root": unknown platform "linux2"; use linux, '
        "windows or macos",
    ),
    (
        "ftrack's osx platform key",
        '[locations.hq]\naccessor = "disk"\nroot = { osx = "/Volumes/hq" }\n',
        '<config>: location "hq": field "root": unknown platform "osx"; use linux, windows '
        "or macos",
    ),
    (
        "relative linux root",
        '[locations.hq]\naccessor = "disk"\nroot = { linux = "mnt/hq" }\n',
        '<config>: location "hq": field "root": linux root \'mnt/hq\' must be an absolute path',
    ),
    (
        "relative macos root",
        '[locations.hq]\naccessor = "disk"\nroot = { macos = "Volumes/hq" }\n',
        '<config>: location "hq": field "root": macos root \'Volumes/hq\' must be an absolute path',
    ),
    (
        "relative root for every platform",
        '[locations.hq]\naccessor = "disk"\nroot = "projects/hq"\n',
        '<config>: location "hq": field "root": root \'projects/hq\' must be an absolute '
        "path (/mnt/projects, P:\\projects or \\\\server\\share), or a per-OS table",
    ),
    (
        "windows root without a backslash after the drive",
        '[locations.hq]\naccessor = "disk"\nroot = { windows = "P:projects" }\n',
        '<config>: location "hq": field "root": windows root \'P:projects\' must start with '
        "a drive letter (P:\\) or be a UNC path (\\\\server\\share)",
    ),
    (
        "windows root as a linux path",
        '[locations.hq]\naccessor = "disk"\nroot = { windows = "/mnt/hq" }\n',
        '<config>: location "hq": field "root": windows root \'/mnt/hq\' must start with a '
        "drive letter (P:\\) or be a UNC path (\\\\server\\share)",
    ),
    (
        "empty root table",
        '[locations.hq]\naccessor = "disk"\nroot = {}\n',
        '<config>: location "hq": field "root": expected a path, or a table such as '
        '{ linux = "/mnt/projects", windows = "P:\\\\projects" }',
    ),
    (
        "bad accsyn party",
        HQ + 'accsyn = "hq"\n',
        '<config>: location "hq": field "accsyn": bad accsyn party \'hq\'; use '
        '"site=<code>" or a user e-mail',
    ),
    (
        "location named after no valid e-mail",
        '[locations."vera@vendor@example"]\naccessor = "disk"\nroot = "/mnt/v"\n',
        '<config>: location "vera@vendor@example": field "accsyn": bad accsyn party '
        "'vera@vendor@example'; use \"site=<code>\" or a user e-mail",
    ),
    (
        "accsyn backend without a party",
        HQ + 'backend = "accsyn"\n',
        '<config>: location "hq": field "backend": backend "accsyn" needs an accsyn party; '
        'set accsyn = "site=<code>"',
    ),
    (
        "unknown backend",
        HQ + 'backend = "aspera"\n',
        '<config>: location "hq": field "backend": expected "direct" or "accsyn", got \'aspera\'',
    ),
    (
        "priority as text",
        HQ + 'priority = "high"\n',
        '<config>: location "hq": field "priority": expected an integer, got \'high\'',
    ),
    (
        "port as text",
        LA + 'port = "2222"\n',
        '<config>: location "la": field "port": expected an integer, got \'2222\'',
    ),
    (
        "flag as text",
        LA + 'use_agent = "yes"\n',
        '<config>: location "la": field "use_agent": expected true or false, got \'yes\'',
    ),
    (
        "return_to an unknown location",
        HQ + 'return_to = "paris"\n',
        '<config>: location "hq": field "return_to": unknown location "paris"',
    ),
    (
        "readers not names",
        HQ + "readers = [1]\n",
        '<config>: location "hq": field "readers": expected a list of usernames, '
        '"group:<name>" or "*"',
    ),
    (
        "relative SFTP root",
        '[locations.la]\naccessor = "sftp"\nhost = "la.example.com"\nroot = "srv/projects"\n',
        '<config>: location "la": field "root": sftp accessor for la.example.com: option '
        "'root' must be an absolute path on the server, not 'srv/projects'",
    ),
    (
        "unknown structure",
        HQ + 'structure = "flat"\n',
        '<config>: location "hq": field "structure": unknown structure "flat"; known '
        "structures: id, mirror, standard, template",
    ),
    (
        "structure neither name nor table",
        HQ + "structure = 3\n",
        '<config>: location "hq": field "structure": expected a structure name or a table '
        'with "name"',
    ),
    (
        "bad template field",
        HQ + 'structure = { name = "template", file = "{project}/{shot}/{component}{ext}" }\n',
        '<config>: location "hq": field "structure": file template '
        "'{project}/{shot}/{component}{ext}' uses unknown field {shot}; known fields: "
        "project, context, parent, task, asset, asset_type, version, component, ext, frame",
    ),
    (
        "frame outside the sequence template",
        HQ + 'structure = { name = "template", file = "{project}/{component}.{frame}{ext}" }\n',
        '<config>: location "hq": field "structure": file template '
        "'{project}/{component}.{frame}{ext}' cannot use {frame}; only the sequence "
        "template can",
    ),
    (
        "sequence template without frame",
        HQ + 'structure = { name = "template", sequence = "{project}/{component}{ext}" }\n',
        '<config>: location "hq": field "structure": sequence template '
        "'{project}/{component}{ext}' must contain {frame}",
    ),
    (
        "template leaving the root",
        HQ + 'structure = { name = "template", file = "../{project}/{component}{ext}" }\n',
        '<config>: location "hq": field "structure": file template '
        "'../{project}/{component}{ext}' must be a relative '/'-separated path without '..'",
    ),
    (
        "format spec on a text field",
        HQ + 'structure = { name = "template", file = "{project:>10}/{component}{ext}" }\n',
        '<config>: location "hq": field "structure": file template '
        "'{project:>10}/{component}{ext}': only {version} takes a format, e.g. {version:03d}",
    ),
    (
        "unknown structure option",
        HQ + 'structure = { name = "template", padding = "4" }\n',
        '<config>: location "hq": field "structure.padding": unknown option for the template '
        "structure; allowed: container, file, illegal_character_substitute, lowercase, "
        "prefix, sequence",
    ),
    (
        "option of ftrack's standard structure",
        HQ + 'structure = { name = "standard", prefix = "x" }\n',
        '<config>: location "hq": field "structure.prefix": unknown option for the standard '
        "structure; allowed: illegal_character_substitute, project_versions_prefix",
    ),
    (
        "structure option of the wrong type",
        HQ + 'structure = { name = "template", lowercase = 1 }\n',
        '<config>: location "hq": field "structure.lowercase": expected text or true/false, got 1',
    ),
    (
        "bad mirror fallback",
        HQ + 'structure = { name = "mirror", fallback = "standard" }\n',
        '<config>: location "hq": field "structure": mirror structure: fallback must be '
        '"template" or "none", not \'standard\'',
    ),
    (
        "schedule to an unknown location",
        HQ + LA + '[[schedules]]\nname = "nightly"\nfrom = "hq"\nto = "paris"\n'
        'project = "demo"\nevery = "1h"\n',
        '<config>: schedule "nightly": field "to": unknown location \'paris\'; configured: hq, la',
    ),
    (
        "schedule without a source",
        HQ + LA + '[[schedules]]\nto = "la"\nproject = "demo"\nevery = "1h"\n',
        '<config>: schedule "schedule-1": field "from": missing; name a configured location',
    ),
    (
        "schedule to itself",
        HQ + LA + '[[schedules]]\nname = "loop"\nfrom = "hq"\nto = "hq"\nproject = "demo"\n'
        'every = "1h"\n',
        '<config>: schedule "loop": field "to": "from" and "to" are the same location (hq)',
    ),
    (
        "schedule without a project",
        HQ + LA + '[[schedules]]\nname = "nightly"\nfrom = "hq"\nto = "la"\nevery = "1h"\n',
        '<config>: schedule "nightly": field "project": missing; name the ftrack project',
    ),
    (
        "schedule with a bad interval",
        HQ + LA + '[[schedules]]\nname = "nightly"\nfrom = "hq"\nto = "la"\n'
        'project = "demo"\nevery = "hourly"\n',
        '<config>: schedule "nightly": field "every": bad duration \'hourly\'; use a number '
        'with a unit such as "30s", "15m" or "1h30m"',
    ),
    (
        "schedule running too often",
        HQ + LA + '[[schedules]]\nname = "busy"\nfrom = "hq"\nto = "la"\n'
        'project = "demo"\nevery = "100ms"\n',
        '<config>: schedule "busy": field "every": must be at least 1s',
    ),
    (
        "schedule window past midnight's hour",
        HQ + LA + '[[schedules]]\nname = "nightly"\nfrom = "hq"\nto = "la"\n'
        'project = "demo"\nwindow = "22:00-25:00"\n',
        '<config>: schedule "nightly": field "window": expected "HH:MM-HH:MM" on a 24-hour '
        "clock, got '22:00-25:00'",
    ),
    (
        "schedule window with one dash",
        HQ + LA + '[[schedules]]\nname = "nightly"\nfrom = "hq"\nto = "la"\n'
        'project = "demo"\nwindow = "1:00 to 5:00"\n',
        '<config>: schedule "nightly": field "window": expected "HH:MM-HH:MM" on a 24-hour '
        "clock, got '1:00 to 5:00'",
    ),
    (
        "schedule with both interval and window",
        HQ + LA + '[[schedules]]\nname = "nightly"\nfrom = "hq"\nto = "la"\n'
        'project = "demo"\nevery = "1h"\nwindow = "01:00-05:00"\n',
        '<config>: schedule "nightly": set exactly one of "every" (e.g. "15m") or "window" '
        '(e.g. "01:00-05:00")',
    ),
    (
        "schedule with neither interval nor window",
        HQ + LA + '[[schedules]]\nname = "nightly"\nfrom = "hq"\nto = "la"\nproject = "demo"\n',
        '<config>: schedule "nightly": set exactly one of "every" (e.g. "15m") or "window" '
        '(e.g. "01:00-05:00")',
    ),
    (
        "schedule with an unknown field",
        HQ + LA + '[[schedules]]\nname = "nightly"\nfrom = "hq"\nto = "la"\n'
        'project = "demo"\nat = "02:00"\n',
        '<config>: schedule "nightly": field "at": unknown field; allowed: every, filter, '
        "from, name, project, to, window",
    ),
    (
        "two schedules with one name",
        HQ + LA + '[[schedules]]\nname = "sync"\nfrom = "hq"\nto = "la"\nproject = "demo"\n'
        'every = "1h"\n[[schedules]]\nname = "sync"\nfrom = "la"\nto = "hq"\n'
        'project = "demo"\nevery = "1h"\n',
        '<config>: schedule "sync": field "name": two schedules have this name; give each a '
        "unique name",
    ),
    (
        "schedule with an unknown filter",
        HQ + LA + '[[schedules]]\nname = "nightly"\nfrom = "hq"\nto = "la"\n'
        'project = "demo"\nevery = "1h"\nfilter = { shots = ["sh0010"] }\n',
        '<config>: schedule "nightly": field "filter.shots": unknown filter; allowed: '
        "asset_types, assets, components, max_age, statuses, task_types",
    ),
    (
        "schedule with a bad max_age",
        HQ + LA + '[[schedules]]\nname = "nightly"\nfrom = "hq"\nto = "la"\n'
        'project = "demo"\nevery = "1h"\nfilter = { max_age = "a week" }\n',
        '<config>: schedule "nightly": field "filter.max_age": bad duration \'a week\'; use a '
        'number with a unit such as "30s", "15m" or "1h30m"',
    ),
    (
        "auto_return from no configured location",
        HQ + LA + '[[auto_return]]\nfrom = "*@vendor.example"\nto = "hq"\n',
        "<config>: auto_return 1: field \"from\": '*@vendor.example' matches no configured "
        "location; configured: hq, la",
    ),
    (
        "auto_return to an unknown location",
        HQ + LA + '[[auto_return]]\nfrom = "la"\nto = "paris"\n',
        "<config>: auto_return 1: field \"to\": unknown location 'paris'; configured: hq, la",
    ),
    (
        "auto_return with an unknown field",
        HQ + LA + '[[auto_return]]\nfrom = "la"\nto = "hq"\nwhen = "approved"\n',
        '<config>: auto_return 1: field "when": unknown field; allowed: filter, from, to',
    ),
    (
        "auto_send with bad versions",
        HQ + '[[auto_send]]\nfrom = "hq"\nversions = "newest"\n',
        '<config>: auto_send 1: field "versions": expected "latest" or "all", got \'newest\'',
    ),
    (
        "auto_send with an unknown field",
        HQ + '[[auto_send]]\nfrom = "hq"\nto = "la"\n',
        '<config>: auto_send 1: field "to": unknown field; allowed: filter, from, users, versions',
    ),
    (
        "auto_send to users that are not names",
        HQ + '[[auto_send]]\nfrom = "hq"\nusers = [""]\n',
        '<config>: auto_send 1: field "users": expected a list of usernames, "group:<name>" or "*"',
    ),
    (
        "second auto_send rule broken",
        HQ + '[[auto_send]]\nfrom = "hq"\n[[auto_send]]\nfrom = "la"\n',
        "<config>: auto_send 2: field \"from\": unknown location 'la'; configured: hq",
    ),
    (
        "unknown permission",
        '[permissions]\nreceive = ["alice"]\n' + HQ,
        '<config>: field "permissions.receive": unknown setting; allowed: send (who may send '
        "from or to a location at all; per location: readers and writers)",
    ),
    (
        "permissions not a table",
        'permissions = "everyone"\n' + HQ,
        '<config>: "permissions" must be a table ([permissions])',
    ),
    (
        "send permission not names",
        "[permissions]\nsend = 1\n" + HQ,
        '<config>: field "permissions.send": expected a list of usernames, "group:<name>" or "*"',
    ),
    (
        "unknown section",
        '[location.hq]\naccessor = "disk"\nroot = "/mnt/hq"\n',
        '<config>: unknown section "location"; known: accsyn, auto_return, auto_send, '
        "journal, locations, permissions, schedules, transfer",
    ),
    (
        "no locations",
        "[transfer]\nstreams = 2\n",
        '<config>: no locations; add at least one [locations."<name>"] table',
    ),
    (
        "not TOML",
        "[locations.hq\n",
        "<config>: not valid TOML: Expected ']' at the end of a table declaration "
        "(at line 1, column 14)",
    ),
    (
        "unknown accsyn setting",
        "[accsyn]\npoll = 2\n" + HQ,
        '<config>: field "accsyn.poll": unknown setting; allowed: poll_interval, '
        "poll_max_interval, stall_timeout, tasks_per_transfer",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_is_one_exact_message(sites: Sites, text: str, expected: str) -> None:
    assert sites.error(text) == sites.expect(expected)


def test_unreadable_key_files_name_the_resolved_path(sites: Sites) -> None:
    # Relative paths are relative to the config file, so the message shows where it looked.
    missing = sites.error(LA + 'key_file = "keys/la_ed25519"\n')
    assert missing == sites.expect(
        '<config>: location "la": field "key_file": cannot read '
        f'"{sites.directory / "keys" / "la_ed25519"}": No such file or directory'
    )
    (sites.directory / "keys").mkdir()
    directory = sites.error(LA + 'key_file = "keys"\n')
    assert directory == sites.expect(
        f'<config>: location "la": field "key_file": cannot read "{sites.directory / "keys"}": '
        "Is a directory"
    )
    # known_hosts may not exist yet: the first connection names the host key to trust.
    config = sites.load(LA + 'known_hosts = "ssh/known_hosts"\n')
    assert config.location("la").options["known_hosts"] == str(
        sites.directory / "ssh" / "known_hosts"
    )


def test_key_files_resolve_against_the_config_folder(sites: Sites) -> None:
    (sites.directory / "keys").mkdir()
    (sites.directory / "keys" / "la_ed25519").write_text("key")
    (sites.directory / "known_hosts").write_text("")
    config = sites.load(
        LA + 'key_file = "keys/la_ed25519"\nknown_hosts = "known_hosts"\n'
        'passphrase_env = "LA_KEY_PASSPHRASE"\n'
    )
    options = config.location("la").options
    assert options["key_file"] == str(sites.directory / "keys" / "la_ed25519")
    assert options["known_hosts"] == str(sites.directory / "known_hosts")
    # The name of the variable holding the passphrase is not a secret.
    assert options["passphrase_env"] == "LA_KEY_PASSPHRASE"


def test_errors_come_before_anything_touches_storage(sites: Sites, tmp_path: Path) -> None:
    # Loading never creates, lists or connects: a root that does not exist and a host
    # nobody answers for are fine to load, and stay untouched.
    root = tmp_path / "not-mounted"
    config = sites.load(
        f"""
        [locations.hq]
        accessor = "disk"
        root = "{root}"

        [locations.la]
        accessor = "sftp"
        host = "sftp.invalid"
        root = "/srv/projects"
        """
    )
    assert set(config.locations) == {"hq", "la"}
    assert not root.exists()


def test_a_full_config_gives_every_value(sites: Sites) -> None:
    (sites.directory / "la_ed25519").write_text("key")
    config = sites.load(
        f"""
        journal = "state/journal.sqlite"

        [transfer]
        chunk_size = "16MiB"
        streams = 8
        files_in_flight = 16
        bandwidth = "50MB/s"
        verify = "full"
        retries = 3
        retry_wait = "500ms"
        retry_max_wait = "2m"
        job_update_interval = "5s"

        [accsyn]
        poll_interval = "1s"
        stall_timeout = "1h"
        tasks_per_transfer = 100

        [permissions]
        send = ["group:coordinators", "pipeline"]

        [locations.hq]
        label = "HQ"
        description = "Main storage"
        accessor = "disk"
        root = {{ linux = "/mnt/projects", windows = "P:\\\\projects", macos = "/Volumes/projects" }}
        structure = {{ name = "template", lowercase = true }}
        priority = 10
        accsyn = "site=hq"
        readers = ["*"]
        writers = ["group:coordinators"]

        [locations.la]
        accessor = "sftp"
        host = "sftp.la.example.com"
        port = 2222
        username = "transfer"
        key_file = "{sites.directory / "la_ed25519"}"
        root = "/srv/projects"
        connect_timeout = "10s"
        connections = 8
        priority = 20
        accsyn = "site=la"
        backend = "accsyn"

        [locations.la.transfer]
        streams = 16
        bandwidth = "off"

        [locations.cloud]
        accessor = "s3"
        bucket = "studio-projects"
        prefix = "projects"
        endpoint_url = "https://s3.example.com"
        region = "eu-west-1"
        structure = "id"

        [locations."vera@vfxvendor.example"]
        accessor = "accsyn"
        share = "delivery"
        structure = {{ name = "mirror", fallback = "none" }}
        return_to = "hq"

        [[schedules]]
        name = "nightly"
        from = "hq"
        to = "la"
        project = "demo"
        window = "22:00-04:00"
        filter = {{ asset_types = ["Plate"], max_age = "7d" }}

        [[auto_return]]
        from = "*@vfxvendor.example"
        to = "hq"

        [[auto_send]]
        from = "hq"
        users = ["group:vendors"]
        versions = "all"
        """
    )
    assert config.path == sites.path
    assert config.journal_path() == sites.directory / "state" / "journal.sqlite"
    assert config.transfer == TransferSettings(
        chunk_size=16 * 1024**2,
        streams=8,
        files_in_flight=16,
        bandwidth=50_000_000,
        verify="full",
        retries=3,
        retry_wait=0.5,
        retry_max_wait=120.0,
        job_update_interval=5.0,
    )
    assert (config.accsyn.poll_interval, config.accsyn.stall_timeout) == (1.0, 3600.0)
    assert config.accsyn.tasks_per_transfer == 100
    assert config.send_permission == ("group:coordinators", "pipeline")

    hq = config.location("hq")
    assert (hq.label, hq.description, hq.priority) == ("HQ", "Main storage", 10)
    assert hq.options["root"] == {
        "linux": "/mnt/projects",
        "windows": "P:\\projects",
        "macos": "/Volumes/projects",
    }
    assert (hq.structure.name, dict(hq.structure.options)) == ("template", {"lowercase": True})
    assert (hq.accsyn_party, hq.backend) == ("site=hq", "direct")
    assert (hq.readers, hq.writers) == (("*",), ("group:coordinators",))

    la = config.location("la")
    assert la.options == {
        "host": "sftp.la.example.com",
        "port": 2222,
        "username": "transfer",
        "key_file": str(sites.directory / "la_ed25519"),
        "root": "/srv/projects",
        "connect_timeout": 10.0,
        "connections": 8,
    }
    assert (la.accsyn_party, la.backend, la.priority) == ("site=la", "accsyn", 20)
    assert la.label == "" and la.structure.name == "template"  # the defaults

    cloud = config.location("cloud")
    assert cloud.options == {
        "bucket": "studio-projects",
        "prefix": "projects",
        "endpoint_url": "https://s3.example.com",
        "region": "eu-west-1",
    }
    assert (cloud.structure.name, cloud.priority, cloud.accsyn_party) == ("id", 50, None)

    vendor = config.location("vera@vfxvendor.example")
    # A location named by an e-mail maps to that accsyn user unless told otherwise.
    assert vendor.accsyn_party == "vera@vfxvendor.example"
    assert vendor.options == {"share": "delivery", "party": "vera@vfxvendor.example"}
    assert vendor.return_to == "hq"
    assert dict(vendor.structure.options) == {"fallback": "none"}

    (schedule,) = config.schedules
    assert (schedule.name, schedule.source, schedule.destination) == ("nightly", "hq", "la")
    assert (schedule.project, schedule.every, schedule.window) == ("demo", None, ("22:00", "04:00"))
    assert schedule.filters == {"asset_types": ("Plate",), "max_age": 7 * 86400.0}
    (auto_return,) = config.auto_return
    assert (auto_return.source, auto_return.destination) == ("*@vfxvendor.example", "hq")
    (auto_send,) = config.auto_send
    assert (auto_send.source, auto_send.users, auto_send.versions) == (
        "hq",
        ("group:vendors",),
        "all",
    )


def test_defaults_of_a_minimal_config(sites: Sites) -> None:
    config = sites.load(HQ)
    assert config.transfer == TransferSettings()
    assert TransferSettings() == TransferSettings(
        chunk_size=8 * 1024**2,
        streams=None,
        files_in_flight=8,
        bandwidth=None,
        verify="checksum",
        retries=5,
        retry_wait=1.0,
        retry_max_wait=60.0,
        job_update_interval=2.0,
    )
    hq = config.location("hq")
    assert (hq.structure.name, hq.priority, hq.accsyn_party, hq.backend) == (
        "template",
        50,
        None,
        "direct",
    )
    assert (hq.readers, hq.writers, hq.return_to) == (("*",), ("*",), None)
    assert config.send_permission == ("*",)
    assert (config.schedules, config.auto_return, config.auto_send) == ((), (), ())


def test_transfer_settings_per_location_override_the_defaults(sites: Sites) -> None:
    config = sites.load(
        """
        [transfer]
        streams = 4
        chunk_size = "8MiB"
        bandwidth = "100MB/s"

        [locations.hq]
        accessor = "disk"
        root = "/mnt/hq"

        [locations.la]
        accessor = "disk"
        root = "/mnt/la"
        transfer = { streams = 16, bandwidth = "10MB/s" }

        [locations.cloud]
        accessor = "disk"
        root = "/mnt/cloud"
        transfer = { chunk_size = "64MiB", bandwidth = "20MB/s" }
        """
    )
    assert config.location("la").transfer == {"streams": 16, "bandwidth": 10_000_000}
    assert config.settings_for("hq", "hq") == config.transfer
    to_la = config.settings_for("hq", "la")
    assert (to_la.streams, to_la.bandwidth, to_la.chunk_size) == (16, 10_000_000, 8 * 1024**2)
    # Source first, then destination: the destination's value wins where both set one.
    la_to_cloud = config.settings_for("la", "cloud")
    assert (la_to_cloud.streams, la_to_cloud.bandwidth, la_to_cloud.chunk_size) == (
        16,
        20_000_000,
        64 * 1024**2,
    )
    cloud_to_la = config.settings_for("cloud", "la")
    assert cloud_to_la.bandwidth == 10_000_000


def test_unknown_location_lookup_lists_the_configured_ones(sites: Sites) -> None:
    config = sites.load(HQ + LA)
    with pytest.raises(ConfigError) as raised:
        config.location("paris")
    assert str(raised.value) == sites.expect(
        'unknown location "paris"; configured locations: hq, la (see <config>)'
    )


# --------------------------------------------------------------------------- roots


ROOTS = """
[locations.hq]
accessor = "disk"
root = { linux = "/mnt/projects", windows = "P:\\\\projects", macos = "/Volumes/projects" }

[locations.unc]
accessor = "disk"
root = { linux = "/net/fs01/projects", windows = "\\\\\\\\fs01\\\\projects" }

[locations.everywhere]
accessor = "disk"
root = "/shared/projects"

[locations.vendor]
accessor = "accsyn"
party = "site=vendor"
local_root = { windows = "D:/accsyn/vendor" }
"""


@pytest.mark.parametrize(
    ("platform", "hq", "unc"),
    [
        ("linux", "/mnt/projects", "/net/fs01/projects"),
        ("win32", "P:\\projects", "\\\\fs01\\projects"),
        ("darwin", "/Volumes/projects", None),
    ],
)
def test_roots_resolve_per_operating_system(
    sites: Sites, platform: str, hq: str, unc: str | None
) -> None:
    config = sites.load(ROOTS)
    assert config.location("hq").resolved_options(platform) == {"root": hq}
    assert config.location("everywhere").resolved_options(platform) == {"root": "/shared/projects"}
    if unc is None:
        with pytest.raises(ConfigError) as raised:
            config.location("unc").resolved_options(platform)
        assert str(raised.value) == (
            'location "unc": field "root": no root for this platform (macos); add root.macos '
            "to the sites config"
        )
    else:
        assert config.location("unc").resolved_options(platform) == {"root": unc}
    # An optional root (where this host mounts an accsyn share) is left out where the
    # platform has none, instead of failing.
    vendor = config.location("vendor").resolved_options(platform)
    if platform == "win32":
        assert vendor == {"party": "site=vendor", "local_root": "D:/accsyn/vendor"}
    else:
        assert vendor == {"party": "site=vendor"}


def test_resolve_root_uses_python_platform_names() -> None:
    table = {"linux": "/l", "windows": "W:\\", "macos": "/m"}
    assert [resolve_root(table, p) for p in ("linux", "win32", "darwin")] == ["/l", "W:\\", "/m"]
    assert resolve_root("/same", "win32") == "/same"
    assert resolve_root({"windows": "W:\\"}, "linux") is None


def test_home_relative_roots_are_absolute(sites: Sites) -> None:
    config = sites.load('[locations.laptop]\naccessor = "disk"\nroot = "~/ftrack-storage"\n')
    assert config.location("laptop").options["root"] == "~/ftrack-storage"


# --------------------------------------------------------------------------- accessor fields


def _valid_value(kind: str, tmp_path: Path) -> object:
    readable = tmp_path / "readable"
    readable.write_text("x")
    return {
        "str": "text",
        "int": 3,
        "bool": True,
        "size": "1MiB",
        "duration": "2m",
        "list": ["a", "b"],
        "path": str(readable),
        "roots": {"linux": "/mnt/x", "windows": "X:\\x", "macos": "/Volumes/x"},
    }[kind]


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


@pytest.mark.parametrize("accessor", sorted(ACCESSORS))
def test_every_declared_accessor_field_is_accepted(
    sites: Sites, tmp_path: Path, accessor: str
) -> None:
    # The config validates what each accessor declares, so a new option is usable from
    # the file the day it is declared.
    options = accessor_class(accessor).options
    overrides = {
        "root": "/srv/projects",
        "party": "site=x",
        "addressing_style": "path",
        "ssh_client": "paramiko",
    }
    lines = [f'[locations.x]\naccessor = "{accessor}"']
    for option in options:
        value = overrides.get(option.name, _valid_value(option.kind, tmp_path))
        if option.kind == "roots":
            value = _valid_value("roots", tmp_path)
        lines.append(f"{option.name} = {_toml(value)}")
    location = sites.load("\n".join(lines) + "\n").location("x")
    assert set(location.options) == {o.name for o in options}
    parsed = {
        "size": 1024**2,
        "duration": 120.0,
    }
    for option in options:
        if option.kind in parsed:
            assert location.options[option.name] == parsed[option.kind], option.name


# --------------------------------------------------------------------------- which file


def test_config_path_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    per_user = tmp_path / "xdg" / "ftrack-transfer" / "sites.toml"
    assert default_config_path() == per_user
    assert config_path() == per_user
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "from-env.toml"))
    assert config_path() == tmp_path / "from-env.toml"
    assert config_path(tmp_path / "explicit.toml") == tmp_path / "explicit.toml"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_path("~/sites.toml") == tmp_path / "home" / "sites.toml"


def test_default_per_user_config_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    per_user = tmp_path / "xdg" / "ftrack-transfer" / "sites.toml"
    with pytest.raises(ConfigError) as raised:
        load_config()
    assert str(raised.value) == (
        f"{per_user}: sites config not found; pass --config, set FTRACK_TRANSFER_CONFIG, or "
        "create it (see docs/configuration.md)"
    )
    per_user.parent.mkdir(parents=True)
    per_user.write_text(HQ)
    assert load_config(cached=False).path == per_user


def test_environment_variable_names_the_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "studio.toml"
    path.write_text(LA)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert list(load_config(cached=False).locations) == ["la"]


def test_edits_are_picked_up_even_within_one_clock_tick(sites: Sites) -> None:
    first = sites.write(HQ)
    config = load_config(first)
    assert load_config(first) is config  # cached: every session of a process reads once
    stamp = first.stat().st_mtime_ns
    sites.write(HQ + LA)
    # Coarse file-system clocks can give an edit the same modification time.
    os.utime(first, ns=(stamp, stamp))
    assert set(load_config(first).locations) == {"hq", "la"}


# --------------------------------------------------------------------------- scoping


SCOPED = (
    HQ
    + LA
    + """
[locations.cloud]
accessor = "s3"
bucket = "studio"

[locations."vera@vfxvendor.example"]
accessor = "accsyn"

[locations."max@fxhouse.example"]
accessor = "accsyn"
"""
)


def test_scope_restricts_the_configured_locations(
    sites: Sites, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sites.load(SCOPED)
    monkeypatch.delenv(SCOPE_ENV, raising=False)
    assert [loc.name for loc in config.scoped()] == [
        "hq",
        "la",
        "cloud",
        "vera@vfxvendor.example",
        "max@fxhouse.example",
    ]
    monkeypatch.setenv(SCOPE_ENV, "la, *@vfxvendor.example")
    assert [loc.name for loc in config.scoped()] == ["la", "vera@vfxvendor.example"]
    monkeypatch.setenv(SCOPE_ENV, " , ")
    assert len(config.scoped()) == 5  # nothing named: everything
    monkeypatch.setenv(SCOPE_ENV, "paris")
    assert config.scoped() == []
    assert [loc.name for loc in config.scoped("hq,cloud")] == ["hq", "cloud"]
    # Location names are matched exactly, as ftrack stores them.
    assert config.scoped("HQ") == []


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8MiB", 8 * 1024**2),
        ("512 KB", 512_000),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("2gb", 2_000_000_000),
        ("100", 100),
        (4096, 4096),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert units.parse_size(text) == size


@pytest.mark.parametrize("text", ["8 MiBs", "-1", "1e6", "", True, 1.5, None])
def test_bad_sizes(text: object) -> None:
    with pytest.raises(ValueError, match=r"^bad size "):
        units.parse_size(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("15m", 900.0), ("1h30m", 5400.0), ("1h 30m", 5400.0), ("250ms", 0.25),
     ("2d", 172800.0), ("45", 45.0), (10, 10.0), (0.5, 0.5)],
)  # fmt: skip
def test_durations(text: object, seconds: float) -> None:
    assert units.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "m", "", "1x", -1, False])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match=r"^bad duration "):
        units.parse_duration(text)


@pytest.mark.parametrize(
    ("text", "rate"),
    [("50MB/s", 50_000_000), ("10 MiB/sec", 10 * 1024**2), ("1GB", 1_000_000_000),
     ("off", None), (0, None), ("unlimited", None)],
)  # fmt: skip
def test_rates(text: object, rate: int | None) -> None:
    assert units.parse_rate(text) == rate
