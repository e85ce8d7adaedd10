"""The RunPod Hub files (.runpod/): hub.json in the publishing guide's schema, listing every
environment variable the worker reads (the same scan as the docs test, so a new variable cannot be
forgotten) with defaults that agree with the image; tests.json's job runs without models."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import REPO
from tests.worker.conftest import Comfy, run
from tests.worker.test_docs import env_names_elsewhere, env_names_in_settings
from worker.handler import make_handler
from worker.inventory import wants_inventory
from worker.settings import Settings

HUB = json.loads((REPO / ".runpod" / "hub.json").read_text())
TESTS = json.loads((REPO / ".runpod" / "tests.json").read_text())
ENV = {e["key"]: e for e in HUB["config"]["env"]}
# set by RunPod or the system, never by an operator
NOT_SETTINGS = {"RUNPOD_WEBHOOK_POST_OUTPUT", "RUNPOD_WEBHOOK_GET_JOB", "LD_PRELOAD"}


def test_hub_json_has_the_publishing_guides_fields():
    assert {"title", "description", "type", "category", "config"} <= set(HUB)
    assert HUB["type"] == "serverless" and HUB["category"] == "video"
    c = HUB["config"]
    assert c["runsOn"] == "GPU" and isinstance(c["gpuCount"], int) and c["gpuCount"] >= 1
    assert isinstance(c["containerDiskInGb"], int) and c["containerDiskInGb"] >= 20
    pools = c["gpuIds"].split(",")
    assert pools and all(re.fullmatch(r"-?[A-Z0-9_ a-z]+", p) for p in pools), pools
    assert all(re.fullmatch(r"1[0-9]\.\d", v) for v in c["allowedCudaVersions"])
    for key, e in ENV.items():
        inp = e["input"]
        assert {"name", "type", "description", "default", "advanced"} <= set(inp), key
        assert inp["type"] in ("string", "number", "boolean"), key
        if inp["type"] == "boolean":
            assert isinstance(inp["default"], bool) and (inp["trueValue"], inp["falseValue"]) == (
                "true", "false"
            ), key  # fmt: skip
        if inp["type"] == "number":
            assert isinstance(inp["default"], int | float), key
        if "options" in inp:
            assert inp["default"] in [o["value"] for o in inp["options"]], key


def test_hub_json_lists_every_variable_the_worker_reads_and_no_other():
    read = (env_names_in_settings() | env_names_elsewhere()) - NOT_SETTINGS
    assert sorted(read - set(ENV)) == [], "add these to .runpod/hub.json"
    assert sorted(set(ENV) - read) == [], "the worker does not read these"


def as_env(e: dict) -> str:
    inp = e["input"]
    if inp["type"] == "boolean":
        return inp["trueValue"] if inp["default"] else inp["falseValue"]
    return str(inp["default"])


def image_env() -> dict[str, str]:
    """The ENV block of Dockerfile.worker (what a Hub endpoint starts with)."""
    text = (REPO / "Dockerfile.worker").read_text().replace("\\\n", " ")
    block = re.search(r"^ENV (.*)$", text, re.M).group(1)
    return dict(re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", block))


def test_hub_defaults_give_the_same_settings_as_the_image():
    base = {k: v.strip('"') for k, v in image_env().items()}
    expected = Settings.from_env(base)
    for key in sorted(env_names_in_settings() - NOT_SETTINGS):
        got = Settings.from_env({**base, key: as_env(ENV[key])})
        assert got == expected, f"{key}: hub default {as_env(ENV[key])!r} changes the settings"


def test_hub_defaults_match_start_sh_defaults():
    start = (REPO / "worker" / "start.sh").read_text()
    for key, default in re.findall(r"\$\{([A-Z][A-Z0-9_]+):?-([^}$]*)\}", start):
        if key in ENV and default:
            assert as_env(ENV[key]).strip('"') == default.strip('"'), key


def test_hub_build_files_are_in_place():
    assert (REPO / ".runpod" / "Dockerfile").read_bytes() == (
        REPO / "Dockerfile.worker"
    ).read_bytes()
    assert "from worker.handler import main" in (REPO / ".runpod" / "handler.py").read_text()
    assert "provision" in (REPO / ".runpod" / "README.md").read_text()


@pytest.mark.parametrize("case", TESTS["tests"], ids=lambda c: c["name"])
def test_tests_json_jobs_run_without_models(case, tmp_path):
    assert isinstance(case["timeout"], int) and case["timeout"] >= 60_000
    assert TESTS["config"]["gpuCount"] >= 1 and TESTS["config"]["gpuTypeId"]
    assert wants_inventory(case["input"])
    empty = tmp_path / "extra_model_paths.yaml"
    empty.write_text(f"vol:\n  base_path: {tmp_path}/empty-volume\n  vae: models/vae/\n")
    comfy = Comfy(tmp_path / "comfy", ["--extra-model-paths-config", str(empty)])
    try:
        out = run(make_handler(comfy.settings()), {"id": "hub-test", "input": case["input"]})
    finally:
        comfy.stop()
    assert "error" not in out, out
    assert out["inventory"]["comfyui_version"] and "SaveVideo" in out["inventory"]["nodes"]
