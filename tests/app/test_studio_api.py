"""Issue 14's API: named, described parameters with the form's optional file inputs (no bus.png
or sample PDF as examples), a structured result beside the page's HTML/Markdown, an unknown job
id answered as unknown, and the demo banner saying what the synthetic videos show."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app.studio.forms import FILE_FIELDS, FormValues

FORM_FIELDS = [f.name for f in dataclasses.fields(FormValues)]


def endpoint(client, name: str) -> dict:
    return client.view_api(print_info=False, return_format="dict")["named_endpoints"][name]


@pytest.mark.parametrize("name", ["/generate", "/quote"])
def test_parameters_are_the_form_fields_described_with_optional_files(client, name):
    params = {p["parameter_name"]: p for p in endpoint(client, name)["parameters"]}
    assert list(params) == FORM_FIELDS
    assert all(p["python_type"]["description"] for p in params.values()), params
    for field in FILE_FIELDS:
        assert params[field]["parameter_has_default"] is True, field  # not "Required"
        assert params[field]["parameter_default"] is None
        assert params[field]["example_input"] is None  # no bus.png / sample PDF


@pytest.mark.parametrize("name", ["/batch_quote", "/generate_batch"])
def test_batch_endpoints_take_the_form_fields_with_optional_files(client, name):
    params = {p["parameter_name"]: p for p in endpoint(client, name)["parameters"]}
    assert set(FORM_FIELDS) <= set(params), params
    for field in FILE_FIELDS:
        assert params[field]["parameter_has_default"] is True, field  # not "Required"
        assert params[field]["parameter_default"] is None
        assert params[field]["example_input"] is None


def test_generate_answers_a_structured_result_beside_the_html(client):
    *_html, data = client.predict(
        prompt="a kingfisher diving", seconds=1.0, seed=4321, randomize=False, api_name="/generate"
    )
    assert data["job_id"].startswith("wp-") and data["state"] == "COMPLETED" and data["final"]
    assert data["seed"] == 4321 and data["parameters"]["seed"] == 4321
    assert data["parameters"]["pipeline"] == "t2v_14b" and data["parameters"]["mode"] == "turbo"
    assert data["quote"]["dollars"] > 0 and data["quote"]["gpu"]
    assert data["actual_cost"]["billed_s"] >= 1 and data["actual_cost"]["dollars"] > 0
    assert Path(data["video"]).is_file() and data["video"].endswith(".mp4")
    assert data["error"] is None
    # /attach of the same job answers the same data
    assert client.predict(data["job_id"], api_name="/attach")[-1] == data


def test_attach_answers_an_unknown_id_as_unknown(client):
    status, _video, _details, _job, _store, data = client.predict(
        "wp-0000nosuchjob", api_name="/attach"
    )
    assert 'data-state="UNKNOWN"' in status and "unknown job" in status.lower()
    assert data["state"] == "UNKNOWN" and "wp-0000nosuchjob" in data["error"]


def test_demo_banner_says_what_the_synthetic_video_shows():
    from app.demo import banner
    from emulators.comfyui.config import VIDEO_MAX_SIDE

    text = banner()
    assert f"{VIDEO_MAX_SIDE} px on the long side (aspect ratio kept)" in text
    for shown in ("prompt as a caption", "start/end", "motion from your seed", "frame count"):
        assert shown in text
    assert "Demo jobs end with the studio" in text  # the restart decision, said on the page
