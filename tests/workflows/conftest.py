"""Fixtures for the workflows suite: the recorded Wan schema and the official API templates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import COMFY_FIXTURES, WAN_SCHEMA

OFFICIAL = COMFY_FIXTURES / "workflows"
TEMPLATES = ("t2v_14b", "i2v_14b", "flf2v_14b", "ti2v_5b")
# (template, mode) pairs the catalog offers; the 5B is quality-only by design.
TEMPLATE_MODES = [
    (t, m) for t in TEMPLATES for m in ("turbo", "quality") if (t, m) != ("ti2v_5b", "turbo")
]


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    return json.loads(WAN_SCHEMA.read_text())


def official(template_id: str) -> dict[str, Any]:
    from workflows.catalog import load_catalog

    name = load_catalog()[template_id].official
    return json.loads((OFFICIAL / name).read_text())
