"""check(): seeded mistakes each give the expected one-line problem; clean workflows give none."""

from __future__ import annotations

import copy
import json

import pytest

from tests.workflows.conftest import OFFICIAL
from workflows.fill import fill
from workflows.schema import Problem, check


@pytest.fixture
def t2v():
    return fill("t2v_14b", {"prompt": "x"}).workflow


def lines(wf, schema, **kw):
    return [str(p) for p in check(wf, schema, **kw)]


@pytest.mark.parametrize("path", sorted(OFFICIAL.glob("*.api.json")), ids=lambda p: p.name)
def test_official_templates_are_clean(path, schema):
    assert lines(json.loads(path.read_text()), schema) == []


def test_wrong_vae_for_14b(t2v, schema):
    t2v["10"]["inputs"]["vae_name"] = "wan2.2_vae.safetensors"
    assert lines(t2v, schema) == [
        "node 10 (VAELoader): vae_name: 'wan2.2_vae.safetensors' does not fit the Wan 2.2 14B "
        "model: use 'wan_2.1_vae.safetensors'"
    ]


def test_wrong_vae_for_5b(schema):
    wf = fill("ti2v_5b", {"prompt": "x"}).workflow
    wf["10"]["inputs"]["vae_name"] = "wan_2.1_vae.safetensors"
    assert lines(wf, schema) == [
        "node 10 (VAELoader): vae_name: 'wan_2.1_vae.safetensors' does not fit the Wan 2.2 5B "
        "model: use 'wan2.2_vae.safetensors'"
    ]


def test_misspelt_vae_is_a_missing_model_file(t2v, schema):
    t2v["10"]["inputs"]["vae_name"] = "wan_2.1_vae.safetensor"
    assert lines(t2v, schema) == [
        "node 10 (VAELoader): vae_name: missing model file 'wan_2.1_vae.safetensor': put it in "
        "models/vae/"
    ]


def test_missing_lora_file(t2v, schema):
    t2v["3"]["inputs"]["lora_name"] = "wan2.2_t2v_lightx2v_4steps_lora_v2_high_noise.safetensors"
    (p,) = check(t2v, schema)
    assert str(p) == (
        "node 3 (LoraLoaderModelOnly): lora_name: missing model file "
        "'wan2.2_t2v_lightx2v_4steps_lora_v2_high_noise.safetensors': put it in models/loras/"
    )
    assert (p.kind, p.node, p.input) == ("missing_model", "3", "lora_name")


def test_model_files_from_a_volume_listing(t2v, schema):
    present = {
        "diffusion_models": ["wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"],
        "text_encoders": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
        "vae": ["wan_2.1_vae.safetensors"],
        "loras": [],
    }
    got = lines(t2v, schema, model_files=present)
    assert got == [
        "node 2 (UNETLoader): unet_name: missing model file "
        "'wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors': put it in models/diffusion_models/",
        "node 3 (LoraLoaderModelOnly): lora_name: missing model file "
        "'wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors': put it in models/loras/",
        "node 4 (LoraLoaderModelOnly): lora_name: missing model file "
        "'wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors': put it in models/loras/",
    ]


def test_broken_link(t2v, schema):
    t2v["14"]["inputs"]["samples"] = ["99", 0]
    assert lines(t2v, schema) == [
        "node 14 (VAEDecode): samples: links to node 99, which does not exist"
    ]


def test_link_to_wrong_type_and_missing_output(t2v, schema):
    t2v["15"]["inputs"]["images"] = ["10", 0]
    t2v["14"]["inputs"]["vae"] = ["10", 1]
    assert lines(t2v, schema) == [
        "node 14 (VAEDecode): vae: links to output 1 of node 10 (VAELoader), which has 1 output(s)",
        "node 15 (CreateVideo): images: needs IMAGE but node 10 (VAELoader) output 0 is VAE",
    ]


def test_unknown_node(t2v, schema):
    t2v["50"] = {"class_type": "WanVideoSampler", "inputs": {}}
    assert lines(t2v, schema) == [
        "node 50 (WanVideoSampler): unknown node class 'WanVideoSampler' (not installed?)"
    ]


def test_frames_82(t2v, schema):
    t2v["11"]["inputs"]["length"] = 82
    assert lines(t2v, schema) == [
        "node 11 (EmptyHunyuanLatentVideo): length: 82 is not on the step grid (1 + n*4: 81 or 85)"
    ]


def test_5b_size_off_grid(schema):
    wf = fill("ti2v_5b", {"prompt": "x"}).workflow
    wf["11"]["inputs"]["height"] = 720
    assert lines(wf, schema) == [
        "node 11 (Wan22ImageToVideoLatent): height: 720 is not on the step grid "
        "(32 + n*32: 704 or 736)"
    ]


@pytest.mark.parametrize(
    ("node", "name", "value", "line"),
    [
        ("12", "steps", 0, "node 12 (KSamplerAdvanced): steps: 0 is below the minimum 1"),
        ("12", "cfg", 101, "node 12 (KSamplerAdvanced): cfg: 101 is above the maximum 100.0"),
        ("12", "cfg", "1", "node 12 (KSamplerAdvanced): cfg: '1' is not a number"),
        ("12", "steps", 4.5, "node 12 (KSamplerAdvanced): steps: 4.5 is not a whole number"),
        (
            "12",
            "sampler_name",
            "euler_a",
            "node 12 (KSamplerAdvanced): sampler_name: 'euler_a' is not one of the options: euler, "
            "euler_cfg_pp, euler_ancestral, euler_ancestral_cfg_pp, heun, heunpp2, dpm_2, "
            "dpm_2_ancestral, lms, dpm_fast, ... (42 in all)",
        ),
        (
            "16",
            "format",
            "webm",
            "node 16 (SaveVideo): format: 'webm' is not one of the options: auto, mp4",
        ),
        ("8", "text", 5, "node 8 (CLIPTextEncode): text: 5 is not text"),
        (
            "8",
            "clip",
            "umt5",
            "node 8 (CLIPTextEncode): clip: needs a link from a CLIP output, got the value 'umt5'",
        ),
    ],
)
def test_value_problems(t2v, schema, node, name, value, line):
    t2v[node]["inputs"][name] = value
    assert lines(t2v, schema) == [line]


def test_missing_required_input_and_no_output_node(t2v, schema):
    del t2v["12"]["inputs"]["positive"]
    del t2v["16"]
    assert lines(t2v, schema) == [
        "node 12 (KSamplerAdvanced): positive: required input missing",
        "no output node (e.g. SaveVideo): nothing would run",
    ]


def test_malformed_input(schema):
    assert lines({}, schema) == ["the workflow is empty or not a JSON object"]
    assert lines({"1": {"inputs": {}}}, schema) == [
        "node 1: has no class_type",
        "no output node (e.g. SaveVideo): nothing would run",
    ]


def test_problem_is_one_line(t2v, schema):
    bad = copy.deepcopy(t2v)
    bad["11"]["inputs"]["length"] = 82
    bad["10"]["inputs"]["vae_name"] = "nope\nsecond line"
    for p in check(bad, schema):
        assert isinstance(p, Problem)
        assert "\n" not in str(p)


def test_dependency_cycle(t2v, schema):
    t2v["12"]["inputs"]["latent_image"] = ["13", 0]  # high expert now waits for the low one
    assert lines(t2v, schema) == [
        "node 12 (KSamplerAdvanced): is part of a dependency cycle",
        "node 13 (KSamplerAdvanced): is part of a dependency cycle",
    ]


# -- what ComfyUI's /prompt accepts but the job then fails on (issue 11) ---------------------------
def model_free_video(width: int, fmt: str = "auto", codec: str = "auto") -> dict:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": 64, "batch_size": 4, "color": 0},
        },
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8}},
        "3": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["2", 0], "filename_prefix": "x", "format": fmt, "codec": codec},
        },
    }


def test_h264_in_webm_is_caught_even_where_the_schema_lists_webm(schema):
    newer = copy.deepcopy(schema)
    save = newer["SaveVideo"]["input"]["required"]
    save["format"][1]["options"] = ["auto", "mp4", "webm"]
    save["codec"][1]["options"] = ["auto", "h264", "vp9"]
    assert lines(model_free_video(64, "webm", "h264"), newer) == [
        "node 3 (SaveVideo): codec: 'h264' cannot be stored in a webm file (the job would fail "
        "when saving); use auto, av1, vp8, vp9 or format 'mp4'"
    ]
    assert lines(model_free_video(64, "webm", "vp9"), newer) == []


def test_odd_size_for_h264_is_caught_from_the_nearest_sized_node(schema):
    assert lines(model_free_video(65), schema) == [
        "node 3 (SaveVideo): codec: the video would be 65x64 (node 1): h264 needs an even width "
        "and height (the encoder would fail); make both even"
    ]
    wf = model_free_video(65)
    wf["4"] = {
        "class_type": "ImageScale",
        "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact", "width": 64,
                   "height": 64, "crop": "disabled"},
    }  # fmt: skip
    wf["2"]["inputs"]["images"] = ["4", 0]
    assert lines(wf, schema) == []
    assert lines(model_free_video(64), schema) == []


def test_load_image_must_be_uploaded_or_present_when_uploads_are_known(schema):
    wf = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "start.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    assert lines(wf, schema) == []  # not known what the job uploads: not checked
    assert lines(wf, schema, uploads=["start.png"]) == []
    assert lines(wf, schema, uploads=["end.png"]) == [
        "node 1 (LoadImage): image: 'start.png' is not uploaded by this job (uploads: end.png) "
        "nor in ComfyUI's input folder"
    ]
    wf["1"]["inputs"]["image"] = "example.png"  # in the input folder (the schema's list)
    assert lines(wf, schema, uploads=[]) == []
    wf["1"]["inputs"]["image"] = "../secret.png"
    assert lines(wf, schema, uploads=[]) == [
        "node 1 (LoadImage): image: '../secret.png' points outside ComfyUI's input folder"
    ]


def test_float_round_is_the_grid(t2v, schema):
    t2v["12"]["inputs"]["cfg"] = 1.05  # step 0.1, round 0.01: ComfyUI keeps 1.05
    assert lines(t2v, schema) == []
    t2v["12"]["inputs"]["cfg"] = 1.055
    assert lines(t2v, schema) == [
        "node 12 (KSamplerAdvanced): cfg: 1.055 is not on the step grid "
        "(0.0 + n*0.01: 1.05 or 1.06)"
    ]
