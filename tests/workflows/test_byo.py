"""Bring-your-own workflows: detection on the four official templates, fill_byo, refusals."""

from __future__ import annotations

import json

import pytest

from tests.workflows.conftest import OFFICIAL
from workflows.byo import EXPORT_HINT, detect, fill_byo, parse_workflow
from workflows.errors import ParamError, WorkflowFormatError
from workflows.schema import check

# (file, positive, negative, seeds, latent length node, LoadImage nodes, fps node, prefix node)
EXPECTED = {
    "wan22_t2v_14B_lightx2v.api.json": ("89", "72", {"81", "78"}, "74", [], "88", "80"),
    "wan22_i2v_14B_lightx2v.api.json": ("93", "89", {"86", "85"}, "98", ["97"], "94", "108"),
    "wan22_flf2v_14B_lightx2v.api.json": ("6", "7", {"57", "58"}, "67", ["68", "62"], "60", "61"),
    "wan22_ti2v_5B.api.json": ("6", "7", {"3"}, "55", [], "57", "58"),
}


def load(name):
    return json.loads((OFFICIAL / name).read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_detects_fillable_params(name, schema):
    pos, neg, seeds, latent, images, fps, prefix = EXPECTED[name]
    d = detect(parse_workflow((OFFICIAL / name).read_bytes()), schema)
    assert [(s.node, s.input) for s in d.positive] == [(pos, "text")]
    assert [(s.node, s.input) for s in d.negative] == [(neg, "text")]
    assert {s.node for s in d.seeds} == seeds
    assert [s.node for s in d.width] == [latent] == [s.node for s in d.height]
    assert [s.node for s in d.length] == [latent]
    assert [s.node for s in d.images] == images
    assert [(s.node, s.input) for s in d.fps] == [(fps, "fps")]
    assert [(s.node, s.input) for s in d.prefixes] == [(prefix, "filename_prefix")]
    base = ["prompt", "negative_prompt", "seed", "width", "height", "frames", "seconds", "fps"]
    extra = ["start_image", "end_image"][: len(images)]
    assert list(d.params) == [*base, *extra, "output_prefix"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fill_byo_passes_check(name, schema):
    pos, neg, seeds, latent, images, fps, prefix = EXPECTED[name]
    grid = 32 if "5B" in name else 16
    f = fill_byo(
        load(name),
        {
            "prompt": "a lighthouse at dusk",
            "negative_prompt": "blur",
            "width": 20 * grid,
            "height": 12 * grid,
            "seconds": 2.0,
        },
        schema,
    )
    wf = f.workflow
    assert wf[pos]["inputs"]["text"] == "a lighthouse at dusk"
    assert wf[neg]["inputs"]["text"] == "blur"
    rate = wf[fps]["inputs"]["fps"]
    assert wf[latent]["inputs"]["length"] == f.params["frames"] == int(2 * rate) + 1
    assert (wf[latent]["inputs"]["width"], wf[latent]["inputs"]["height"]) == (20 * grid, 12 * grid)
    assert {wf[s]["inputs"].get("seed", wf[s]["inputs"].get("noise_seed")) for s in seeds} == {
        f.seed
    }
    assert wf[prefix]["inputs"]["filename_prefix"] == f.output_prefix
    assert [wf[n]["inputs"]["image"] for n in images] == list(f.images)
    assert check(wf, schema) == []
    again = fill_byo(load(name), {"prompt": "x"}, schema)
    assert again.output_prefix != f.output_prefix and again.seed != f.seed


def test_fill_byo_refusals(schema):
    t2v = load("wan22_t2v_14B_lightx2v.api.json")
    with pytest.raises(ParamError, match=r"^start_image: .*allowed: parameters this workflow has"):
        fill_byo(t2v, {"start_image": "a.png"}, schema)
    with pytest.raises(
        ParamError, match=r"^width: 650 is not allowed; allowed: positive multiples of 16"
    ):
        fill_byo(t2v, {"width": 650}, schema)
    with pytest.raises(ParamError, match=r"^prompt: .*allowed: text without NUL characters"):
        fill_byo(t2v, {"prompt": "a kite\0"}, schema)
    f = fill_byo(t2v, {"frames": 82, "seed": 5}, schema)
    assert f.workflow["74"]["inputs"]["length"] == 81 and f.seed == 5
    assert "frames 82 snapped to 81 (Wan needs 4n+1 frames)" in f.notes


def test_original_is_not_modified(schema):
    wf = load("wan22_i2v_14B_lightx2v.api.json")
    before = json.dumps(wf, sort_keys=True)
    fill_byo(wf, {"prompt": "changed"}, schema)
    assert json.dumps(wf, sort_keys=True) == before


def test_ui_save_format_refused_with_export_instructions():
    ui = {
        "last_node_id": 9,
        "last_link_id": 9,
        "nodes": [{"id": 1, "type": "KSampler"}],
        "links": [[1, 1, 0, 2, 0, "MODEL"]],
        "groups": [],
        "version": 0.4,
    }
    with pytest.raises(WorkflowFormatError) as e:
        parse_workflow(json.dumps(ui))
    assert str(e.value) == EXPORT_HINT
    assert "Export (API)" in str(e.value) and "UI (save) format" in str(e.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        ("{nope", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("{}", "has no nodes"),
        ('{"1": {"inputs": {}}}', "node '1' has no class_type"),
    ],
)
def test_not_a_workflow(data, message):
    with pytest.raises(WorkflowFormatError, match=message):
        parse_workflow(data)


def test_wrappers_accepted():
    wf = load("wan22_ti2v_5B.api.json")
    assert parse_workflow({"prompt": wf, "client_id": "x"}) == wf
    assert parse_workflow({"input": {"workflow": wf}}) == wf
