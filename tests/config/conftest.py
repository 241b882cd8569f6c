from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import Sites


@pytest.fixture
def sites(tmp_path: Path) -> Sites:
    """A sites config file in the test's temporary folder."""
    return Sites(tmp_path)
