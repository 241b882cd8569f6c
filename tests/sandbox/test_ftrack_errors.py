"""Bad input, failed batches and injected faults reach the client as readable errors."""

from __future__ import annotations

import json
import uuid

import ftrack_api
import ftrack_api.exception
import pytest
import requests

ServerError = ftrack_api.exception.ServerError


def test_a_failing_operation_rolls_back_the_whole_batch(ftrack_server, ftrack_session):
    session = ftrack_session()
    version = session.get("AssetVersion", ftrack_server.seed_info.versions["sq020/sh0030/plate/v1"])
    location = session.ensure("Location", {"name": f"rollback.{uuid.uuid4().hex[:8]}"})
    before = ftrack_server.stats

    component = session.create(
        "FileComponent", {"name": "main", "file_type": ".exr", "version": version}
    )
    for path in ("first.exr", "second.exr"):
        session.create(
            "ComponentLocation",
            {"component": component, "location": location, "resource_identifier": path},
        )
    with pytest.raises(
        ServerError,
        match=r"IntegrityError\(Duplicate entry: component '.*' is already registered in location",
    ):
        session.commit()
    session.rollback()

    assert (ftrack_server.stats - before).write_requests == 1
    other = ftrack_session("alice")
    assert other.get("Component", component["id"]) is None
    assert other.query(f"ComponentLocation where location_id is {location['id']}").all() == []


def test_unknown_types_attributes_and_malformed_queries_are_named(ftrack_session):
    session = ftrack_session()
    with pytest.raises(
        ServerError, match=r"UnknownEntityTypeError\(Unknown entity type 'Shott'\.\)"
    ):
        session.query("select id from Shott").all()
    with pytest.raises(ServerError, match=r"Unknown attribute 'nme' on entity type 'Task'"):
        session.query("select nme from Task").all()
    with pytest.raises(
        ServerError,
        match=r"Unknown attribute 'component_location' in 'component_location\.location_id' on entity type 'FileComponent'",
    ):
        session.query('FileComponent where component_location.location_id is "x"').all()
    with pytest.raises(
        ServerError,
        match=r"ParseError\(Malformed query: expected a value, found 'offset' at position 35 in: select id from Task where name is offset 0",
    ):
        session.query("select id from Task where name is").all()
    with pytest.raises(ServerError, match=r"Malformed query: expected '\)'"):
        session.query('Task where (name is "a"').all()
    with pytest.raises(ServerError, match=r"'version' is a number; 'latest' is not"):
        session.query("AssetVersion where version is latest").all()
    with pytest.raises(
        ServerError, match=r"Cannot create an entity of abstract type 'TypedContext'"
    ):
        session.call(
            [{"action": "create", "entity_type": "TypedContext", "entity_data": {"name": "x"}}]
        )
    with pytest.raises(ServerError, match=r"Unknown attribute 'colour' on entity type 'Location'"):
        session.call(
            [
                {
                    "action": "create",
                    "entity_type": "Location",
                    "entity_data": {"name": "y", "colour": 1},
                }
            ]
        )
    with pytest.raises(
        ServerError, match=r"UnsupportedActionError\(Unsupported action 'reset_remote'"
    ):
        session.reset_remote("api_key")


def test_bad_credentials_fail_the_session_start(ftrack_server, ftrack_session):
    with pytest.raises(
        ServerError,
        match=r"InvalidCredentialsError\(The API key is not valid for user 'pipeline'\.\)",
    ):
        ftrack_session("pipeline", api_key="not-a-key")
    with pytest.raises(
        ServerError, match=r"InvalidCredentialsError\(The user 'mallory' does not exist\.\)"
    ):
        ftrack_session("mallory")

    admin = ftrack_session()
    username = f"leaver.{uuid.uuid4().hex[:8]}"
    admin.create("User", {"username": username, "is_active": False})
    admin.commit()
    with pytest.raises(ServerError, match=rf"The user '{username}' is not active\."):
        ftrack_session(username)

    # A personal key works for its owner only.
    key = ftrack_server.user_key("bob")
    assert (
        ftrack_session("bob", api_key=key).query('User where username is "bob"').one()["email"]
        == "bob@studio.example"
    )
    with pytest.raises(ServerError, match="not valid for user 'alice'"):
        ftrack_session("alice", api_key=key)


def test_strict_api_errors_carry_an_http_status(ftrack_session, ftrack_server):
    session = ftrack_session(strict_api=True)
    with pytest.raises(ServerError, match=r"Server reported error: UnknownEntityTypeError"):
        session.query("select id from Nothing").all()
    response = requests.post(
        f"{ftrack_server.url}/api",
        data="[]",
        headers={"ftrack-user": "pipeline", "ftrack-api-key": "wrong", "ftrack-strict-api": "true"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["exception"] == "InvalidCredentialsError"


def test_server_rule_violations(ftrack_session, ftrack_server):
    session = ftrack_session()
    user = session.query('User where username is "pipeline"').one()
    session.create("Job", {"user": user, "status": "paused"})
    with pytest.raises(
        ServerError, match=r"Job.status must be one of queued, running, done, failed; got 'paused'"
    ):
        session.commit()
    session.rollback()

    shot = session.get("Shot", ftrack_server.seed_info.shots["sq010/sh0010"])
    with pytest.raises(ServerError, match=r"ImmutableAttributeError\(Shot.link is computed"):
        session.call(
            [
                {
                    "action": "update",
                    "entity_type": "Shot",
                    "entity_key": [shot["id"]],
                    "entity_data": {"link": []},
                }
            ]
        )
    with pytest.raises(ServerError, match=r"NotFoundError\(Location \['nowhere'\] does not exist"):
        session.call([{"action": "delete", "entity_type": "Location", "entity_key": ["nowhere"]}])
    orphan = session.create("FileComponent", {"name": "x", "version_id": str(uuid.uuid4())})
    with pytest.raises(
        ServerError,
        match=r"FileComponent.version refers to AssetVersion '.*', which does not exist",
    ):
        session.commit()
    session.rollback()
    assert ftrack_session().get("Component", orphan["id"]) is None


def test_injected_faults_then_healthy_again(ftrack_server, ftrack_session):
    session = ftrack_session()
    location_query = 'Location where name is "hq"'

    ftrack_server.faults.fail_next_requests(1, status=503, json_body=True)
    with pytest.raises(ServerError, match=r"ServiceUnavailableError\(Injected fault"):
        session.query(location_query).one()
    assert session.query(location_query).one()["name"] == "hq"

    # An HTML page: with a 2xx status the client calls it an unexpected format; with a
    # 5xx status it re-raises the JSON decode error itself (ftrack_api 3.1 behaviour).
    ftrack_server.faults.fail_next_requests(1, status=200)
    with pytest.raises(ServerError, match=r"unexpected format.*<html>"):
        session.query(location_query).one()
    ftrack_server.faults.fail_next_requests(1, status=503)
    with pytest.raises(json.JSONDecodeError):
        session.query(location_query).one()

    # Committed on the server, but the answer is lost: a retry meets the duplicate.
    name = f"lost.{uuid.uuid4().hex[:8]}"
    ftrack_server.faults.fail_next_requests(
        1, 502, json_body=True, after_commit=True, when="writes"
    )
    session.create("Location", {"name": name})
    with pytest.raises(ServerError):
        session.commit()
    session.rollback()
    assert session.query(f'Location where name is "{name}"').one()["name"] == name

    ftrack_server.faults.drop_next_requests(1, when="queries")
    with pytest.raises(requests.exceptions.ConnectionError):
        session.query(location_query).one()
    assert session.query(location_query).one()["name"] == "hq"
    assert ftrack_server.faults.pending == 0
