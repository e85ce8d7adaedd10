"""Fixtures every suite can use. Part-specific fixtures live in each suite's own conftest."""

import pytest

from tests.helpers import COMFY_FIXTURES


def pytest_configure(config: pytest.Config) -> None:
    if not COMFY_FIXTURES.is_dir():
        raise pytest.UsageError(
            f"recorded ComfyUI fixtures not found at {COMFY_FIXTURES}: the checkout is incomplete"
        )
