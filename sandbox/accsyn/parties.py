"""Party and path notation: ``<party>:<path>`` resolved to folders on this machine.

Every site and every user has a root folder; a path is relative to it. Accepted forms:

==============================  =====================================================
``site=<code>:<path>``          a site (``<code>`` alone is accepted as a destination)
``<e-mail>:<path>``             a user (``<e-mail>@<hostname>`` too; the host is ignored)
``client=<id>:<path>``          the site or user the client belongs to
``<workspace code>:<path>``     the main site
``<path>``                      no party: the main site
``<party>``                     no path: mirror the other end's path (destinations)
==============================  =====================================================

A path may start with ``volume=<code>/``, ``share=<code>/`` or ``folder=<code>/``
(``(default)`` names the default volume); the volume's folder inside each party root is
then the base. Absolute paths, drive letters, ``~`` and ``..`` are refused: the service
must never read or write outside a party root.
"""

from __future__ import annotations

import dataclasses
import pathlib
import posixpath
import re

_DRIVE = re.compile(r"^[a-z]:", re.IGNORECASE)
_SHARE_PREFIX = re.compile(r"^(volume|share|folder)=([^/\\]+)(?:[/\\](.*))?$", re.IGNORECASE)


class PartyError(ValueError):
    """A party or path the service refuses; the message is meant for the user."""


@dataclasses.dataclass(frozen=True)
class Party:
    """A site or user end of a transfer, with the folder its paths are relative to."""

    kind: str  # "site" or "user"
    code: str  # site code or e-mail, as registered
    entity_id: str
    root: pathlib.Path

    @property
    def spec(self) -> str:
        return f"site={self.code}" if self.kind == "site" else self.code

    @property
    def ref(self) -> str:
        """How accsyn names a party in ``source``/``destination``: ``<type>:<id>``."""
        return f"{self.kind}:{self.entity_id}"

    @property
    def ref_hr(self) -> str:
        return f"{self.kind}:{self.code}"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One side of a task: a party and a path relative to its root (``""`` = mirror)."""

    party: Party
    path: str
    directory_hint: bool = False  # destination given with a trailing slash

    @property
    def spec(self) -> str:
        return f"{self.party.spec}:{self.path}" if self.path else self.party.spec

    def local(self) -> pathlib.Path:
        return self.party.root.joinpath(*self.path.split("/")) if self.path else self.party.root

    def size(self) -> int:
        """Bytes in the file, or in the tree below a directory; -1 when missing."""
        path = self.local()
        try:
            if path.is_file():
                return path.stat().st_size
            if path.is_dir():
                return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        except OSError:
            pass
        return -1


class PartyDirectory:
    """Looks parties up by the names a transfer specification may use."""

    def __init__(self, workspace: str) -> None:
        self.workspace = workspace.lower()
        self._sites: dict[str, Party] = {}
        self._users: dict[str, Party] = {}
        self._clients: dict[str, Party] = {}
        self._volumes: dict[str, str] = {}  # code -> folder inside each party root
        self.main_site: str | None = None

    def add(self, party: Party, *, main: bool = False) -> None:
        table = self._sites if party.kind == "site" else self._users
        table[party.code.lower()] = party
        if party.kind == "site" and (main or self.main_site is None):
            self.main_site = party.code.lower()

    def add_client(self, client_id: str, party: Party) -> None:
        self._clients[client_id.lower()] = party

    def add_volume(self, code: str, folder: str = "", *, default: bool = False) -> None:
        self._volumes[code.lower()] = folder
        if default:
            self._volumes["(default)"] = folder

    def parties(self) -> list[Party]:
        return [*self._sites.values(), *self._users.values()]

    def find(self, name: str) -> Party | None:
        """The party *name* denotes, or None when it names none."""
        name = name.strip().lower()
        if name.startswith("site="):
            return self._sites.get(name[5:])
        if name.startswith("client="):
            return self._clients.get(name[7:])
        if name.startswith("user="):
            name = name[5:]
        if "@" in name:
            user = self._users.get(name)
            if user is None and name.count("@") > 1:
                user = self._users.get(name.rsplit("@", 1)[0])  # user@mail@Hostname
            return user
        if name == self.workspace and self.main_site:
            return self._sites[self.main_site]
        return self._sites.get(name)

    def main(self) -> Party:
        if not self.main_site:
            raise PartyError("The workspace has no site: add one before transferring files")
        return self._sites[self.main_site]

    def resolve(self, spec: str, *, default: Party | None = None) -> Endpoint:
        """Parse ``<party>:<path>``, ``<party>`` or ``<path>`` into an endpoint."""
        if not isinstance(spec, str) or not spec.strip():
            raise PartyError(f"Invalid source/destination {spec!r}: expected '<party>:<path>'")
        spec = spec.strip()
        party_name, sep, path = spec.partition(":")
        party = None
        if sep and not _DRIVE.match(spec):
            party = self.find(party_name)
            if party is None:
                raise PartyError(f"Unknown party {party_name!r} in {spec!r}")
        if party is None:
            whole = self.find(spec) if _looks_like_party(spec) or "/" not in spec else None
            if whole is not None:
                return Endpoint(whole, "")
            if _looks_like_party(spec):
                raise PartyError(f"Unknown party {spec!r}")
            party, path = (default or self.main()), spec
        rel = self.relative(path, spec)
        return Endpoint(party, rel, directory_hint=path.endswith(("/", "\\")) and bool(rel))

    def relative(self, path: str, spec: str) -> str:
        """A clean relative posix path inside a party root, or a :class:`PartyError`."""
        path = path.strip()
        share = _SHARE_PREFIX.match(path)
        base = ""
        if share:
            code = share.group(2).lower()
            if code not in self._volumes:
                raise PartyError(f"Unknown {share.group(1)} {share.group(2)!r} in {spec!r}")
            base, path = self._volumes[code], share.group(3) or ""
        if path.startswith(("/", "\\", "~")) or _DRIVE.match(path):
            raise PartyError(
                f"Path {spec!r} is absolute: give it relative to the party root "
                "(or as volume=<code>/<path>)"
            )
        parts = [p for p in re.split(r"[/\\]+", path) if p not in ("", ".")]
        if ".." in parts:
            raise PartyError(f"Path {spec!r} escapes the party root ('..' is not allowed)")
        return posixpath.join(base, *parts) if parts else base


def _looks_like_party(name: str) -> bool:
    name = name.lower()
    return "@" in name or name.startswith(("site=", "client=", "user="))
