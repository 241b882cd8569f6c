"""The service's query matcher and party/path notation, without a server."""

from __future__ import annotations

import pathlib

import pytest
from ftrack_transfer.sandbox.accsyn.parties import Party, PartyDirectory, PartyError
from ftrack_transfer.sandbox.accsyn.query import QuerySyntaxError, compile_query

RECORD = {
    "id": "0123456789abcdef01234567",
    "name": "Plates For LA",
    "status": "running",
    "progress": 42,
    "default": True,
    "finished": "2026-01-22T08:43:05",
    "metadata": {"ftrack_component_id": "AbC-1"},
    "user": ["u1", "vera@vfxvendor.example"],
}


def matches(expression: str) -> bool:
    def resolve(field: str) -> list:
        value = RECORD
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return [value]

    return compile_query(expression)(resolve)


@pytest.mark.parametrize(
    "expression",
    [
        'name="plates for la"',
        "name='PLATES FOR LA'",
        "status=running and progress>40 and progress<=42",
        "status=done or (status=running and default=true)",
        "not status=done",
        "status in (running, paused)",
        "status not in [done, failed]",
        "progress<>41 and progress!=43 and progress>=42",
        "name contains for",
        "name matches ^plates.*la$",
        "finished>2026-01-01t00:00:00",
        "metadata.ftrack_component_id=abc-1",
        "user=vera@vfxvendor.example",
        "status is running and name is not x",
        "id=0123456789ABCDEF01234567",
        "missing=null",
    ],
)
def test_expressions_that_hold(expression: str) -> None:
    assert matches(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "status=done",
        "status=running and progress>42",
        "status in (done, failed)",
        "user!=u1",
        "name contains xyz",
        "default=false",
        "metadata.other=x",
    ],
)
def test_expressions_that_do_not(expression: str) -> None:
    assert not matches(expression)


@pytest.mark.parametrize("expression", ["(status=done", "status", "status=", "status ~ x"])
def test_syntax_errors_say_where(expression: str) -> None:
    with pytest.raises(QuerySyntaxError, match="Invalid query"):
        compile_query(expression)


@pytest.fixture
def directory(tmp_path: pathlib.Path) -> PartyDirectory:
    directory = PartyDirectory("studio")
    directory.add(Party("site", "hq", "h" * 24, tmp_path / "hq"))
    directory.add(Party("site", "la", "l" * 24, tmp_path / "la"))
    directory.add(Party("user", "Vera@VFXVendor.example", "v" * 24, tmp_path / "vera"))
    directory.add_client("c" * 24, directory.find("site=la"))
    directory.add_volume("root", "", default=True)
    directory.add_volume("projects", "projects")
    return directory


@pytest.mark.parametrize(
    ("spec", "party", "path"),
    [
        ("site=hq:a/b.exr", "site=hq", "a/b.exr"),
        ("site=LA", "site=la", ""),
        ("la", "site=la", ""),
        ("studio:a.exr", "site=hq", "a.exr"),
        ("a/b.exr", "site=hq", "a/b.exr"),
        ("vera@vfxvendor.example:x", "Vera@VFXVendor.example", "x"),
        ("vera@vfxvendor.example@WS-1:x", "Vera@VFXVendor.example", "x"),
        ("client=" + "c" * 24 + ":x", "site=la", "x"),
        ("site=hq:volume=projects/show/a.exr", "site=hq", "projects/show/a.exr"),
        ("site=hq:share=(default)/show/a.exr", "site=hq", "show/a.exr"),
        ("site=hq:./a//b\\c.exr", "site=hq", "a/b/c.exr"),
        ("site=hq:Shots/SH010", "site=hq", "Shots/SH010"),
    ],
)
def test_party_notation(directory: PartyDirectory, spec: str, party: str, path: str) -> None:
    endpoint = directory.resolve(spec)
    assert (endpoint.party.spec, endpoint.path) == (party, path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("site=hq:../x", "escapes the party root"),
        ("site=hq:a/../../x", "escapes the party root"),
        ("site=hq:/etc/passwd", "is absolute"),
        ("D:\\work\\x.exr", "is absolute"),
        ("site=hq:\\\\server\\share\\x", "is absolute"),
        ("site=paris:x", "Unknown party 'site=paris'"),
        ("bob@nowhere.example:x", "Unknown party"),
        ("elsewhere:x", "Unknown party 'elsewhere'"),
        ("site=hq:folder=other/x", "Unknown folder 'other'"),
        ("", "expected '<party>:<path>'"),
    ],
)
def test_refused_notation(directory: PartyDirectory, spec: str, message: str) -> None:
    with pytest.raises(PartyError, match=message.replace("\\", "\\\\").replace("(", "\\(")):
        directory.resolve(spec)
