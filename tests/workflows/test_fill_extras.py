"""fill() with the user's LoRAs and the post-steps: every template x mode x LoRA count (none, one
pair, four mixed) x post-step (none, upscale, interpolate, both) passes check against the recorded
schema (plus the RIFE node's recorded schema when the endpoint has it), with each LoRA on its
expert's model path in order and the video's size, frames and fps what the steps make them."""

from __future__ import annotations

import itertools

import pytest

from tests.workflows.conftest import TEMPLATE_MODES
from workflows.errors import ParamError
from workflows.fill import fill
from workflows.poststeps import custom_schema, post_steps, unavailable
from workflows.schema import check

PAIR = {"high": "style/my_style_HIGH.safetensors", "low": "style/my_style_LOW.safetensors"}
SINGLE = {"file": "Wan21_CausVid_14B_T2V_lora_rank32_v2.safetensors", "strength": 0.5}
UPSCALER = "4x-UltraSharp.pth"
LORAS_14B = {
    "none": [],
    "pair": [{**PAIR, "strength_high": 0.75, "strength_low": 1.25}],
    "four": [
        PAIR,
        SINGLE,
        {"high": "moe_distill_HIGH.safetensors", "strength": 0.6},
        {"file": "detail.safetensors", "strength": -0.4},
    ],
}
LORAS_5B = {  # the 5B takes single files only
    "none": [],
    "pair": [{"file": "Wan2_2_5B_FastWanFullAttn_lora_rank_128_bf16.safetensors"}],
    "four": [{"file": f"five_b_{i}.safetensors", "strength": 0.25 * i} for i in range(1, 5)],
}
POST = {
    "none": {},
    "upscale": {"upscale": True, "upscale_model": UPSCALER},
    "interpolate": {"interpolate": True},
    "both": {"upscale": True, "interpolate": True},
}
SIZE = {
    "t2v_14b": (832, 480),
    "i2v_14b": (480, 832),
    "flf2v_14b": (640, 640),
    "ti2v_5b": (704, 1280),
}


def endpoint_files(schema, f):
    """The endpoint's files: the recorded placeholders plus the user's LoRAs and upscalers."""
    files = {
        "loras": list(schema["LoraLoaderModelOnly"]["input"]["required"]["lora_name"][0]),
        "upscale_models": [UPSCALER, post_steps().upscale.default_model],
    }
    for m in f.model_files:
        if m.folder != "loras":
            files.setdefault(m.folder, []).append(m.name)
    for use in f.params.get("loras", ()):
        files["loras"] += [use[k] for k in ("file", "high", "low") if k in use]
    return files


def expert_path(wf, sampler):
    """LoRAs (name, strength) from the UNETLoader to `sampler`, in the order they apply."""
    out, node = [], wf[sampler]["inputs"]["model"][0]
    while wf[node]["class_type"] != "UNETLoader":
        if wf[node]["class_type"] == "LoraLoaderModelOnly":
            out.append((wf[node]["inputs"]["lora_name"], wf[node]["inputs"]["strength_model"]))
        node = wf[node]["inputs"]["model"][0]
    return out[::-1]


def expected_path(loras, expert, own):
    out = [own] if own else []
    for use in loras:
        strength = use.get(f"strength_{expert}", use.get("strength", 1.0))
        name = use.get("file") or use.get(expert)
        if name:
            out.append((name, strength))
    return out


CASES = list(itertools.product(TEMPLATE_MODES, ("none", "pair", "four"), POST))


@pytest.mark.parametrize(
    ("tm", "loras", "post"), CASES, ids=[f"{t}-{m}-{lo}-{p}" for (t, m), lo, p in CASES]
)
def test_every_combination_passes_check(tm, loras, post, schema):
    tid, mode = tm
    w, h = SIZE[tid]
    given = LORAS_5B[loras] if tid == "ti2v_5b" else LORAS_14B[loras]
    f = fill(
        tid,
        {"mode": mode, "prompt": "x", "width": w, "height": h, "seconds": 3, "loras": given}
        | POST[post],
    )
    wf = f.workflow
    full = {**schema, **custom_schema(["RIFE VFI"])}
    assert [str(p) for p in check(wf, full, endpoint_files(schema, f))] == []

    # LoRAs: on each expert's model path, after the template's own 4-step LoRA in turbo mode
    if tid == "ti2v_5b":
        assert expert_path(wf, "12") == expected_path(given, "model", None)
    else:
        for expert, sampler, own_node in (("high", "12", "3"), ("low", "13", "4")):
            own = None
            if mode == "turbo":
                own = (wf[own_node]["inputs"]["lora_name"], 1.0)
            assert expert_path(wf, sampler) == expected_path(given, expert, own), expert
    lora_nodes = [n for n in wf.values() if n["class_type"] == "LoraLoaderModelOnly"]
    own_count = 2 if mode == "turbo" else 0
    per_expert = sum(2 if "file" in u or ("high" in u and "low" in u) else 1 for u in given)
    assert len(lora_nodes) == own_count + (per_expert if tid != "ti2v_5b" else len(given))

    # post-steps: between VAEDecode and CreateVideo, upscale first
    video = wf["15"]["inputs"]
    chain, node = [], video["images"][0]
    while wf[node]["class_type"] != "VAEDecode":
        chain.append(wf[node]["class_type"])
        node = wf[node]["inputs"].get("frames", wf[node]["inputs"].get("image"))[0]
    want = {
        "none": [],
        "upscale": ["ImageScale", "ImageUpscaleWithModel"],
        "interpolate": ["RIFE VFI"],
        "both": ["RIFE VFI", "ImageScale", "ImageUpscaleWithModel"],
    }[post]
    assert chain == want
    up = post in ("upscale", "both")
    smooth = post in ("interpolate", "both")
    native = 24 if tid == "ti2v_5b" else 16
    frames = f.params["frames"]
    assert f.output.width == w * (2 if up else 1)
    assert f.output.height == h * (2 if up else 1)
    assert f.output.frames == (2 * frames - 1 if smooth else frames)
    assert f.output.fps == video["fps"] == native * (2 if smooth else 1)
    recorded = {"loras", "upscale", "upscale_model", "interpolate", "interpolate_model"}
    assert recorded & set(f.params) == (
        ({"loras"} if given else set())
        | ({"upscale", "upscale_model"} if up else set())
        | ({"interpolate", "interpolate_model"} if smooth else set())
    )
    for n in wf.values():
        if n["class_type"] == "ImageScale":
            assert (n["inputs"]["width"], n["inputs"]["height"]) == (2 * w, 2 * h)
        if n["class_type"] == "UpscaleModelLoader":
            model = UPSCALER if post == "upscale" else post_steps().upscale.default_model
            assert n["inputs"]["model_name"] == model
        if n["class_type"] == "RIFE VFI":
            assert (n["inputs"]["multiplier"], n["inputs"]["ckpt_name"]) == (2, "rife49.pth")
    assert set(f.post_nodes.values()) == {"none": set(), "upscale": {"upscale"}}.get(
        post, {"upscale", "interpolate"} if post == "both" else {"interpolate"}
    )


def test_interpolation_without_the_custom_node_is_named_by_check(schema):
    f = fill("t2v_14b", {"prompt": "x", "interpolate": True})
    problems = check(f.workflow, schema)
    assert [(p.kind, p.class_type) for p in problems] == [("unknown_node", "RIFE VFI")]
    assert custom_schema(schema) == {}  # merged only when the endpoint has the class
    assert "RIFE VFI" in custom_schema([*schema, "RIFE VFI"])


def test_unavailable_says_what_to_install(schema):
    why = unavailable(schema)["interpolate"]
    assert "RIFE VFI" in why and "ComfyUI-Frame-Interpolation" in why
    assert "https://github.com/Fannovel16/ComfyUI-Frame-Interpolation" in why
    assert unavailable([*schema, "RIFE VFI"]) == {}


def test_fps_doubling_follows_a_changed_fps():
    f = fill("t2v_14b", {"prompt": "x", "fps": 24, "frames": 49, "interpolate": True})
    assert (f.output.fps, f.output.frames) == (48, 97)
    assert f.workflow["15"]["inputs"]["fps"] == 48


def test_the_5b_refuses_a_pair_and_says_why():
    with pytest.raises(ParamError) as e:
        fill("ti2v_5b", {"prompt": "x", "loras": [PAIR]})
    assert e.value.param == "loras[0]" and "one model" in str(e.value)


def test_turbo_refuses_its_own_lora_as_a_user_lora_but_quality_takes_it():
    own = "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors"
    with pytest.raises(ParamError) as e:
        fill("t2v_14b", {"prompt": "x", "loras": [{"high": own}]})
    assert "lora_high" in str(e.value)
    f = fill("t2v_14b", {"mode": "quality", "prompt": "x", "loras": [{"high": own}]})
    assert expert_path(f.workflow, "12") == [(own, 1.0)]


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"upscale": "yes"}, "upscale", "true or false"),
        ({"interpolate": 1}, "interpolate", "true or false"),
        ({"upscale_model": UPSCALER}, "upscale_model", "only with upscale: true"),
        ({"interpolate_model": "rife47.pth"}, "interpolate_model", "only with interpolate"),
        ({"upscale": True, "upscale_model": "../x.pth"}, "upscale_model", "upscale_models"),
        ({"upscale": True, "upscale_model": "x.png"}, "upscale_model", ".pth"),
        ({"interpolate": True, "interpolate_model": "rife99.pth"}, "interpolate_model", "rife49"),
        ({"loras": [{"file": "a.safetensors", "strength": 9}]}, "loras[0].strength", "-2 to 2"),
    ],
)
def test_post_step_and_lora_refusals(params, param, words):
    with pytest.raises(ParamError) as e:
        fill("i2v_14b", {"prompt": "x", **params})
    assert e.value.param == param and words in str(e.value)


def test_the_recipe_records_loras_and_steps_and_fill_takes_it_back():
    first = fill(
        "flf2v_14b",
        {"prompt": "x", "loras": LORAS_14B["four"], "upscale": True, "interpolate": True},
    )
    keys = ("loras", "upscale", "upscale_model", "interpolate", "interpolate_model")
    recipe = {k: first.params[k] for k in keys}
    again = fill("flf2v_14b", {"prompt": "x", **recipe})
    assert {k: again.params[k] for k in keys} == recipe
    assert again.model_files == first.model_files
    assert ("4x-UltraSharp.pth", "upscale_models") not in {
        (m.name, m.folder) for m in first.model_files
    }
    names = {(m.name, m.folder) for m in first.model_files}
    assert (post_steps().upscale.default_model, "upscale_models") in names
    assert ("style/my_style_LOW.safetensors", "loras") in names


def test_a_missing_upscale_model_is_named_before_a_paid_run(schema):
    """Real ComfyUI's /prompt does not check UpscaleModelLoader's (V3) list: a missing file
    fails only once the job runs. check (pre-flight's rule) names the file and its folder."""
    f = fill("t2v_14b", {"prompt": "x", "upscale": True, "upscale_model": "missing_4x.pth"})
    files = endpoint_files(schema, f)
    files["upscale_models"] = ["4x-UltraSharp.pth"]
    problems = check(f.workflow, schema, files)
    assert [(p.kind, p.class_type, str(p)) for p in problems] == [
        (
            "missing_model",
            "UpscaleModelLoader",
            f"node {next(iter(f.post_nodes))} (UpscaleModelLoader): model_name: missing model file "
            "'missing_4x.pth': put it in models/upscale_models/",
        )
    ]
