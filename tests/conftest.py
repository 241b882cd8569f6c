"""Test-wide settings: isolation from the developer's environment, shared fixtures.

Every server a test uses is started by a fixture (see ``tests/fixtures``) on loopback
and stopped afterwards; nothing is expected to be running before the suite starts.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.fixtures.ftrack",
    "tests.fixtures.accsyn",
    "tests.fixtures.storage",
    "tests.fixtures.studio",
]

# Variables that would point the real clients somewhere else than the sandbox, or make
# them behave differently from one developer machine to the next.
# fmt: off
_ISOLATE = (
    "FTRACK_SERVER", "FTRACK_API_USER", "FTRACK_API_KEY", "FTRACK_APIKEY",
    "FTRACK_EVENT_PLUGIN_PATH", "FTRACK_API_SCHEMA_CACHE_PATH", "FTRACK_TRANSFER_CONFIG",
    "ACCSYN_WORKSPACE", "ACCSYN_DOMAIN", "ACCSYN_ORG", "ACCSYN_API_USER", "ACCSYN_API_KEY",
    "ACCSYN_PROXY", "AS_DEV", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
    "ALL_PROXY", "all_proxy", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "SSH_AUTH_SOCK",
)
# fmt: on


def pytest_configure(config: pytest.Config) -> None:
    for name in _ISOLATE:
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    # boto3 reads ~/.aws; the accsyn client loads ./.env unless pointed at a file.
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["ACCSYN_CREDENTIALS_PATH"] = os.devnull


def profile() -> str:
    """``fast`` (the default, run by scripts/test) or ``full`` (FTRACK_TRANSFER_PROFILE=full)."""
    return os.environ.get("FTRACK_TRANSFER_PROFILE", "fast")
