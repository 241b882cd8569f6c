"""The real accsyn client against the loopback service: login, environment, lookups,
entities and queries."""

from __future__ import annotations

import os
import pathlib

import accsyn_api
import pytest
from accsyn_api.session import AccsynException
from ftrack_transfer.sandbox.accsyn import AccsynService

from tests.fixtures.accsyn import VENDOR, open_session, write_file


def test_env_alone_is_enough_for_a_plain_session(
    accsyn_service: AccsynService, accsyn_env: dict[str, str], tmp_path, monkeypatch
) -> None:
    # A ./.env with wrong values must not win over the service's environment.
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ACCSYN_API_KEY=not-the-key\nACCSYN_PROXY=127.0.0.1:9\n")

    session = accsyn_api.Session()

    assert os.environ["ACCSYN_API_KEY"] == accsyn_service.api_key
    assert [c.uri for c in accsyn_service.calls()][:2] == ["master", "api/login"]
    assert session.find_one(f"User WHERE code={accsyn_service.api_user}")["role"] == "admin"
    assert "AS_DEV" not in accsyn_env
    assert pathlib.Path(accsyn_env["ACCSYN_CREDENTIALS_PATH"]).read_text() == ""


def test_the_suite_wide_devnull_credentials_path_also_works(
    accsyn_service: AccsynService, accsyn_env: dict[str, str], monkeypatch
) -> None:
    monkeypatch.setenv("ACCSYN_CREDENTIALS_PATH", os.devnull)
    session = accsyn_api.Session()
    assert session.find("Site WHERE code=hq")[0]["main"] is True


def test_login_reports_the_role_and_keeps_a_session(accsyn_service: AccsynService) -> None:
    session = open_session(accsyn_service)
    assert session._role == "admin"
    login = accsyn_service.calls("api/login")
    assert len(login) == 1 and login[0].error is None
    # Explicit hostname: no workspace lookup.
    assert accsyn_service.calls("master") == []


def test_wrong_key_gives_a_readable_error(accsyn_service: AccsynService) -> None:
    with pytest.raises(AccsynException) as raised:
        open_session(accsyn_service, api_key="not-the-key")
    message = str(raised.value)
    assert "invalid API key for pipeline@studio.example" in message
    assert "ACCSYN_API_KEY" in message


def test_wrong_workspace_is_refused_at_lookup_and_login(
    accsyn_service: AccsynService, accsyn_env: dict[str, str], monkeypatch
) -> None:
    monkeypatch.setenv("ACCSYN_WORKSPACE", "elsewhere")
    with pytest.raises(AccsynException, match="Workspace 'elsewhere' does not exist"):
        accsyn_api.Session()
    with pytest.raises(AccsynException, match="unknown workspace 'elsewhere'"):
        open_session(accsyn_service, workspace="elsewhere")


def test_an_expired_session_asks_to_log_in_again(accsyn_service: AccsynService) -> None:
    session = open_session(accsyn_service)
    accsyn_service.expire_sessions()
    with pytest.raises(AccsynException, match="session has expired"):
        session.find("Site")
    assert open_session(accsyn_service).find("Site")


def test_each_user_logs_in_with_their_own_key(accsyn_service: AccsynService) -> None:
    vendor = open_session(
        accsyn_service, username=VENDOR, api_key=accsyn_service.api_key_for(VENDOR)
    )
    assert vendor._role == "standard"
    with pytest.raises(AccsynException, match="invalid API key"):
        open_session(accsyn_service, username=VENDOR, api_key=accsyn_service.api_key)


def test_sites_users_volumes_and_aliases(accsyn_session) -> None:
    sites = accsyn_session.find("Site")
    assert sorted(s["code"] for s in sites) == ["hq", "la"]
    assert all(len(s["id"]) == 24 for s in sites)
    users = {u["code"]: u["role"] for u in accsyn_session.find("User")}
    assert users == {"pipeline@studio.example": "admin", VENDOR: "standard"}
    volume = accsyn_session.find_one("Volume WHERE default=true")
    assert volume["code"] == "root"
    assert accsyn_session.find_one("Share WHERE default=true")["id"] == volume["id"]
    assert accsyn_session.find_one("Folder WHERE code=root")["id"] == volume["id"]
    assert "transfer" in accsyn_session.find("entitytypes")
    assert "status" in accsyn_session.find("attributes WHERE entitytype=transfer", update=True)


def test_clients_answer_the_daemon_queries(accsyn_session) -> None:
    servers = accsyn_session.find("Client WHERE type=1 and site=la")
    assert [c["code"] for c in servers] == ["la-server"]
    assert servers[0]["status"] == "online"
    assert accsyn_session.find(f"Client WHERE user={VENDOR} and type=0")


def test_queries_are_case_insensitive_but_values_keep_their_case(
    accsyn_service: AccsynService, accsyn_session, accsyn_roots
) -> None:
    write_file(accsyn_roots["site=hq"] / "Shots/SH010/Plate.1001.exr", 10)
    job = accsyn_session.create(
        "Transfer",
        {
            "name": "Shot 010 Plates",
            "tasks": [{"source": "site=hq:Shots/SH010/Plate.1001.exr", "destination": "site=la"}],
            "metadata": {"ftrack_component_id": "AbC-123"},
            "status": "paused",
        },
    )
    found = accsyn_session.find('Transfer WHERE name="SHOT 010 plates"')
    assert [j["id"] for j in found] == [job["id"]]
    assert found[0]["name"] == "Shot 010 Plates"
    assert found[0]["metadata"] == {"ftrack_component_id": "AbC-123"}
    assert accsyn_session.find("Transfer WHERE metadata.ftrack_component_id=abc-123")
    both = "Transfer WHERE (status=paused or status=done) and user=PIPELINE@studio.example"
    assert accsyn_session.find(both)
    assert accsyn_session.find("Transfer WHERE destination=la and source=site=hq")
    assert not accsyn_session.find("Transfer WHERE status in (done, failed)")
    assert accsyn_session.find("Transfer WHERE status not in (done, failed)")
    assert not accsyn_session.find("Transfer WHERE status!=paused")
    assert accsyn_session.find("Transfer WHERE size>=10 and size<11 and progress<>100")

    tasks = accsyn_session.find("Task WHERE source.path contains sh010", entityid=job["id"])
    assert [t["source"]["path"] for t in tasks] == ["Shots/SH010/Plate.1001.exr"]
    assert accsyn_session.find_one(f"Task WHERE job.id={job['id']}", entityid=job["id"])


def test_a_bad_query_is_a_readable_error(accsyn_session) -> None:
    with pytest.raises(AccsynException, match="Invalid query"):
        accsyn_session.find("Transfer WHERE (status=done")
    with pytest.raises(AccsynException, match="supply the transfer id"):
        accsyn_session.find("Task")


def test_settings_round_trip(accsyn_service: AccsynService, accsyn_session) -> None:
    assert accsyn_session.set_setting("workspace", "sync_hour", "3") is True
    assert accsyn_session.get_setting("sync_hour") == "3"
    assert accsyn_session.get_settings() == {"sync_hour": "3"}
    accsyn_service.set_setting(
        "upload_location",
        {"id": "loc-1", "name": "la"},
        integration="ftrack",
        data={"location_id": "loc-0"},
    )
    found = accsyn_session.get_setting(
        name="upload_location", integration="ftrack", data={"location_id": "loc-0"}
    )
    assert found == {"id": "loc-1", "name": "la"}
    assert accsyn_session.delete_setting("workspace", "sync_hour") is True
    assert accsyn_session.get_setting("sync_hour") is None


def test_unsupported_calls_say_so(accsyn_session) -> None:
    with pytest.raises(AccsynException, match="does not support"):
        accsyn_session.ls("share=root/demo")
