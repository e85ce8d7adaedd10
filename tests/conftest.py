"""Fixtures every suite can use. Part-specific fixtures live in each suite's own conftest."""

import pytest

from tests.helpers import COMFY_FIXTURES, SHARED


def pytest_configure(config: pytest.Config) -> None:
    if not COMFY_FIXTURES.is_dir():
        raise pytest.UsageError(
            f"shared fixtures not found at {SHARED}; set WANPOD_SHARED to the shared/ folder"
        )
