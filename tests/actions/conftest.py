"""A running serve for the studio of each test, and web UI stand-ins for its users."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from ftrack_transfer.sandbox.webui import WebUI
from ftrack_transfer.transfer.service import Service

from tests.fixtures.studio import StudioCase


@pytest.fixture
def serve(studio: StudioCase) -> Iterator[Service]:
    service = Service(
        studio.config,
        journal=studio.journal(),
        workers=2,
        housekeeping_interval=0.2,
        scan_interval=3600,
    )
    service.start()
    studio.server.wait_for_subscribers("ftrack.action.launch", timeout=10)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def web_ui(studio: StudioCase, ftrack_schema_cache) -> Iterator[Callable[[str], WebUI]]:
    opened: list[WebUI] = []

    def open_ui(username: str) -> WebUI:
        ui = WebUI.connect(
            studio.server.url, username, studio.server.user_key(username), str(ftrack_schema_cache)
        )
        opened.append(ui)
        return ui

    yield open_ui
    for ui in opened:
        ui.close()
