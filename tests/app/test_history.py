"""History through the API (gradio_client, local stack): each stored result keeps its recipe
(template version, seed, worker-reported ComfyUI version); "reuse settings" gives back a past
job's form values; "rerun exactly" sends the same filled workflow and seed as a new job."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from app.studio.ledger import Ledger
from app.studio.records import template_version
from tests.app.test_api import args, finished


def ledger_of(studio) -> Ledger:
    return Ledger(Path(studio.env["WANPOD_DATA_DIR"]) / "ledger.sqlite3")


def seed_of(details: str) -> str:
    return re.search(r"seed=(\d+)", details).group(1)


def test_recipe_reuse_and_rerun_exactly(client, studio):
    first = finished(
        client.predict(*args(prompt="a kite at dusk", seed=4242), api_name="/generate")
    )
    status, _, details, rid = first
    assert 'data-state="COMPLETED"' in status, status
    row = ledger_of(studio).get(rid)
    assert row.recipe["template"] == "t2v_14b"
    assert row.recipe["template_version"] == template_version("t2v_14b")
    assert re.fullmatch(r"[0-9a-f]{12}", row.recipe["template_version"])
    assert row.recipe["seed"] == 4242 and row.recipe["comfyui_version"]

    values = client.predict(rid, api_name="/reuse")
    pipeline, mode, prompt, _neg, _s, _e, _wf, resolution, seconds, seed, randomize, *adv = values
    assert (pipeline, mode, prompt, resolution) == (
        "t2v_14b",
        "turbo",
        "a kite at dusk",
        "480p square",
    )
    assert (seed, randomize, adv[0]) == (4242, False, 4)
    # the duration as asked (2.0 s on the slider), not as resolved (33 frames = 2.0625 s)
    assert seconds == row.form.seconds == 2.0
    assert row.params["seconds"] == pytest.approx(2.0625, abs=1e-3)

    status2, video2, details2, rid2 = finished(client.predict(rid, api_name="/rerun"))
    assert 'data-state="COMPLETED"' in status2 and rid2 != rid
    assert seed_of(details2) == seed_of(details) == "4242"
    again = ledger_of(studio).get(rid2)
    assert again.workflow == row.workflow  # exactly the same filled workflow
    assert again.recipe["rerun_of"] == rid and again.recipe["comfyui_version"]
    assert Path(video2).read_bytes()[4:8] == b"ftyp"


def test_reuse_of_a_bring_your_own_job_after_its_upload_is_gone(client, studio, tmp_path):
    """The form keeps the path of Gradio's copy of the uploaded workflow, which goes with a
    restart of the studio: Reuse then gives the workflow the job ran (its values are filled in
    again from the form), and it runs again as it did."""
    from tests.app.test_api import byo_args
    from tests.helpers import COMFY_FIXTURES

    wf = tmp_path / "my_t2v.json"
    wf.write_bytes((COMFY_FIXTURES / "workflows" / "wan22_t2v_14B_lightx2v.api.json").read_bytes())
    status, _, _, rid = finished(client.predict(*byo_args(wf, seed=31), api_name="/generate"))
    assert 'data-state="COMPLETED"' in status, status
    row = ledger_of(studio).get(rid)
    Path(row.form.workflow_file).unlink()  # as a restart leaves it
    values = client.predict(rid, api_name="/reuse")
    pipeline, mode, prompt, _neg, _s, _e, workflow, *_ = values
    assert (pipeline, mode, prompt) == ("byo", "as uploaded", "a byo cat")
    assert json.loads(Path(workflow).read_text()) == row.workflow
    again = args("byo", "as uploaded", prompt="a byo cat", seed=31)
    again[6] = handle_file(workflow)
    status, _, _, rid2 = finished(client.predict(*again, api_name="/generate"))
    assert 'data-state="COMPLETED"' in status, status
    ran, first = ledger_of(studio).get(rid2).workflow, row.workflow
    for w in (ran, first):  # each job names its own output files
        for node in w.values():
            node["inputs"].pop("filename_prefix", None)
    assert ran == first  # the same job


def test_reuse_of_a_job_whose_pipeline_is_no_longer_offered_says_so(client, studio):
    """An older studio's row (a pipeline renamed since): Reuse names the pipeline and what is
    offered instead of failing with the bare name."""
    from app.studio.forms import FormValues

    ledger = ledger_of(studio)
    gone = FormValues(pipeline="t2v_14b_v1", prompt="an old kite", resolution="480p square")
    rid = ledger.create(template="t2v_14b_v1", mode="turbo", params={"prompt": "an old kite"},
                        workflow={}, quote=None, gpu="H100 PRO", form=gone)  # fmt: skip
    ledger.update(rid, state="COMPLETED")
    with pytest.raises(AppError) as refused:
        client.predict(rid, api_name="/reuse")
    assert str(refused.value).startswith(
        f"job: {rid} ran the pipeline 't2v_14b_v1', which this studio no longer offers; "
        "allowed: a job of t2v_14b, "
    ), refused.value


def test_rerun_of_an_image_job_resends_its_kept_image(client, studio, png_file):
    first = finished(
        client.predict(
            *args("i2v_14b", start=handle_file(str(png_file)), seed=77), api_name="/generate"
        )
    )
    assert 'data-state="COMPLETED"' in first[0], first[0]
    status, _, _, rid2 = finished(client.predict(first[3], api_name="/rerun"))
    assert 'data-state="COMPLETED"' in status, status
    assert ledger_of(studio).get(rid2).recipe["rerun_of"] == first[3]


def test_unknown_job_is_refused_naming_the_field(client):
    with pytest.raises(AppError, match=r"job: 'wp-nope' is not a job of this studio"):
        client.predict("wp-nope", api_name="/reuse")
    with pytest.raises(AppError, match="is not a job of this studio"):
        client.predict("wp-nope", api_name="/rerun")
    empty = r"^job: is empty; give the id of a job of this studio \(wp-\.\.\.\)$"
    with pytest.raises(AppError, match=empty):
        client.predict("  ", api_name="/rerun")
