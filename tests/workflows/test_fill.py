"""fill(): every template x mode passes check; edges of every parameter; the official templates'
classes, wiring and defaults are reproduced in turbo mode (quality for the 5B)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tests.workflows.conftest import TEMPLATE_MODES, TEMPLATES, official
from workflows.catalog import load_catalog
from workflows.errors import ParamError
from workflows.fill import NEGATIVE_IGNORED, fill
from workflows.schema import check


def nodes(wf, cls):
    return {k: v for k, v in wf.items() if v["class_type"] == cls}


def samplers(wf):
    ks = nodes(wf, "KSamplerAdvanced")
    high = next(v["inputs"] for v in ks.values() if v["inputs"]["add_noise"] == "enable")
    low = next(v["inputs"] for v in ks.values() if v["inputs"]["add_noise"] == "disable")
    return high, low


def only(wf, cls):
    (node,) = nodes(wf, cls).values()
    return node["inputs"]


# -- every template x mode -----------------------------------------------------------------


@pytest.mark.parametrize(("tid", "mode"), TEMPLATE_MODES)
def test_defaults_pass_check(tid, mode, schema):
    f = fill(tid, {"mode": mode, "prompt": "a red fox in snow"})
    assert [str(p) for p in check(f.workflow, schema)] == []
    assert f.template_id == tid and f.mode == mode
    assert f.workflow["8"]["inputs"]["text"] == "a red fox in snow"


@pytest.mark.parametrize(("tid", "mode"), TEMPLATE_MODES)
@pytest.mark.parametrize(
    "preset", ["480p landscape", "480p portrait", "720p square", "720p portrait"]
)
def test_presets_and_long_clips_pass_check(tid, mode, preset, schema):
    f = fill(tid, {"mode": mode, "prompt": "x", "resolution": preset, "seconds": 10})
    p = load_catalog()[tid].preset(preset)
    assert (f.params["width"], f.params["height"]) == (p.width, p.height)
    assert check(f.workflow, schema) == []


@pytest.mark.parametrize(("tid", "mode"), TEMPLATE_MODES)
def test_mode_values(tid, mode):
    f = fill(tid, {"mode": mode, "prompt": "x"})
    wf = f.workflow
    shifts = {n["inputs"]["shift"] for n in nodes(wf, "ModelSamplingSD3").values()}
    loras = nodes(wf, "LoraLoaderModelOnly")
    if tid == "ti2v_5b":
        ks = only(wf, "KSampler")
        assert (ks["steps"], ks["cfg"], ks["sampler_name"], ks["scheduler"]) == (
            20,
            5.0,
            "uni_pc",
            "simple",
        )
        assert shifts == {8.0} and not loras
        assert only(wf, "CreateVideo")["fps"] == 24
        assert only(wf, "VAELoader")["vae_name"] == "wan2.2_vae.safetensors"
        return
    high, low = samplers(wf)
    steps, split, cfg, shift = (
        (4, 2, 1.0, 5.0) if mode == "turbo" else (20, 10, 4.0 if tid == "flf2v_14b" else 3.5, 8.0)
    )
    assert high["steps"] == low["steps"] == steps
    assert high["end_at_step"] == low["start_at_step"] == split and high["start_at_step"] == 0
    assert low["end_at_step"] in (steps, 10000)
    assert high["cfg"] == low["cfg"] == cfg and shifts == {shift}
    assert (
        high["return_with_leftover_noise"] == "enable"
        and low["return_with_leftover_noise"] == "disable"
    )
    assert high["noise_seed"] == f.seed
    assert only(wf, "CreateVideo")["fps"] == 16
    assert only(wf, "VAELoader")["vae_name"] == "wan_2.1_vae.safetensors"
    assert len(loras) == (2 if mode == "turbo" else 0)
    # each sampler's model chain ends at the right expert's UNETLoader
    for s, level in ((high, "high"), (low, "low")):
        ref = s["model"]
        while wf[ref[0]]["class_type"] != "UNETLoader":
            ref = wf[ref[0]]["inputs"]["model"]
        assert f"_{level}_noise_" in wf[ref[0]]["inputs"]["unet_name"]
    assert (NEGATIVE_IGNORED in f.notes) == (mode == "turbo")


@pytest.mark.parametrize("tid", TEMPLATES)
def test_official_templates_reproduced(tid):
    """Same class multiset, same wiring shape and same literal defaults as the official API file."""
    mode = load_catalog()[tid].default_mode
    ours, theirs = fill(tid, {"mode": mode}).workflow, official(tid)

    def classes(wf):
        return Counter(n["class_type"] for n in wf.values())

    def wiring(wf):
        return Counter(
            (wf[str(v[0])]["class_type"], v[1], n["class_type"], k)
            for n in wf.values()
            for k, v in n["inputs"].items()
            if isinstance(v, list)
        )

    def values(wf):
        skip = {"noise_seed", "seed", "filename_prefix", "image"}
        return Counter(
            (n["class_type"], k, round(v, 6) if isinstance(v, float) else v)
            for n in wf.values()
            for k, v in n["inputs"].items()
            if not isinstance(v, list) and k not in skip
        )

    assert classes(ours) == classes(theirs)
    assert wiring(ours) == wiring(theirs)
    assert values(ours) == values(theirs)


# -- duration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tid", "seconds", "frames"),
    [
        ("t2v_14b", 5, 81),
        ("t2v_14b", 3.5, 57),
        ("t2v_14b", 0.25, 5),
        ("t2v_14b", 10, 161),
        ("ti2v_5b", 5, 121),
        ("ti2v_5b", 2.5, 61),
        ("ti2v_5b", 10, 241),
        ("i2v_14b", 5.1, 81),
    ],
)
def test_seconds_snap_to_4n_plus_1(tid, seconds, frames, schema):
    f = fill(tid, {"prompt": "x", "seconds": seconds})
    assert f.params["frames"] == frames and (frames - 1) % 4 == 0
    latent = f.workflow["11"]["inputs"]
    assert latent["length"] == frames
    assert any(f"-> {frames} frames" in n for n in f.notes)
    assert check(f.workflow, schema) == []


@pytest.mark.parametrize(("given", "snapped"), [(82, 81), (83, 85), (84, 85), (81, 81), (6, 5)])
def test_frames_snap_with_note(given, snapped):
    f = fill("t2v_14b", {"prompt": "x", "frames": given})
    assert f.params["frames"] == snapped
    assert f.workflow["11"]["inputs"]["length"] == snapped
    noted = [n for n in f.notes if "snapped" in n]
    assert noted == (
        [] if given == snapped else [f"frames {given} snapped to {snapped} (Wan needs 4n+1 frames)"]
    )


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"seconds": 0.1}, "seconds"),
        ({"seconds": 10.25}, "seconds"),
        ({"frames": 1}, "frames"),
        ({"frames": 165}, "frames"),
        ({"frames": 81.5}, "frames"),
        ({"frames": 81, "seconds": 5}, "frames"),
        ({"seconds": "5"}, "seconds"),
        ({"seconds": 10, "fps": 24}, "seconds"),
    ],
)
def test_duration_refusals(params, param):
    with pytest.raises(ParamError) as e:
        fill("t2v_14b", {"prompt": "x", **params})
    assert e.value.param == param and str(e.value).startswith(f"{param}: ")


def test_fps_changes_playback_and_frame_count():
    f = fill("t2v_14b", {"prompt": "x", "seconds": 5, "fps": 24})
    assert f.params["frames"] == 121 and f.workflow["15"]["inputs"]["fps"] == 24
    assert any("native 16 fps" in n for n in f.notes)
    with pytest.raises(ParamError, match=r"fps: 7 is not allowed; allowed: 8 to 60"):
        fill("t2v_14b", {"prompt": "x", "fps": 7})


# -- size ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tid", "w", "h", "ok"),
    [
        ("t2v_14b", 1280, 720, True),
        ("t2v_14b", 848, 480, True),
        ("t2v_14b", 1280, 712, False),
        ("ti2v_5b", 1280, 704, True),
        ("ti2v_5b", 1280, 720, False),
        ("ti2v_5b", 848, 480, False),
        ("i2v_14b", 128, 1280, True),
        ("i2v_14b", 112, 640, False),
        ("flf2v_14b", 640, 1296, False),
    ],
)
def test_size_grid_and_range(tid, w, h, ok, schema):
    params = {"prompt": "x", "width": w, "height": h}
    if ok:
        f = fill(tid, params)
        assert (f.workflow["11"]["inputs"]["width"], f.workflow["11"]["inputs"]["height"]) == (w, h)
        assert check(f.workflow, schema) == []
    else:
        with pytest.raises(ParamError) as e:
            fill(tid, params)
        assert e.value.param in ("width", "height")


def test_off_grid_message_names_the_grid_and_neighbours():
    with pytest.raises(ParamError) as e:
        fill("ti2v_5b", {"prompt": "x", "width": 1280, "height": 720})
    assert str(e.value) == (
        "height: 720 is not allowed; allowed: multiples of 32 for the 5B model from 128 to 1280 "
        "(nearest: 704 or 736)"
    )
    assert (e.value.param, e.value.value) == ("height", 720)


def test_unknown_preset():
    with pytest.raises(
        ParamError, match=r"^resolution: '4k' is not allowed; allowed: 480p landscape"
    ):
        fill("t2v_14b", {"prompt": "x", "resolution": "4k"})


# -- steps, split, cfg, shift, sampler, LoRA ---------------------------------------------


@pytest.mark.parametrize(
    ("params", "steps", "split"),
    [
        ({"steps": 8}, 8, 4),
        ({"steps": 7}, 7, 3),
        ({"steps": 6, "split": 4}, 6, 4),
        ({"mode": "quality", "steps": 30}, 30, 15),
        ({"mode": "quality", "split": 12}, 20, 12),
        ({"steps": 2}, 2, 1),
    ],
)
@pytest.mark.parametrize("tid", ["t2v_14b", "i2v_14b", "flf2v_14b"])
def test_split_consistency(tid, params, steps, split, schema):
    f = fill(tid, {"prompt": "x", **params})
    high, low = samplers(f.workflow)
    assert high["steps"] == low["steps"] == steps
    assert high["end_at_step"] == low["start_at_step"] == split
    assert low["end_at_step"] in (10000, steps)
    assert (f.params["steps"], f.params["split"]) == (steps, split)
    assert check(f.workflow, schema) == []


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"steps": 4, "split": 4}, "split"),
        ({"steps": 4, "split": 0}, "split"),
        ({"steps": 1}, "steps"),
        ({"steps": 61}, "steps"),
        ({"steps": 4.5}, "steps"),
        ({"cfg": 0.5}, "cfg"),
        ({"cfg": 10.5}, "cfg"),
        ({"cfg": 3.55}, "cfg"),
        ({"cfg": True}, "cfg"),
        ({"shift": 0.5}, "shift"),
        ({"shift": 5.25}, "shift"),
        ({"sampler": "euler_fast"}, "sampler"),
        ({"scheduler": "karras2"}, "scheduler"),
        ({"lora_high": 2.5}, "lora_high"),
        ({"lora_low": -0.1}, "lora_low"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**53}, "seed"),
        ({"mode": "quality", "lora_high": 1.0}, "lora_high"),
        ({"mode": "fast"}, "mode"),
        ({"vae": "wan2.2_vae.safetensors"}, "vae"),
        ({"prompt": "  "}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"prompt": "a kite\0"}, "prompt"),  # NUL: no prompt means it, PostgreSQL's JSON refuses it
        ({"negative_prompt": "\0blur"}, "negative_prompt"),
        ({"prompt": "a kite \ud800"}, "prompt"),  # a lone surrogate: no UTF-8 writes it
        ({"negative_prompt": "blur\udfff"}, "negative_prompt"),
        ({"output_prefix": "../etc"}, "output_prefix"),
        ({"output_prefix": "/abs"}, "output_prefix"),
        ({"start_image": "x.png"}, "start_image"),
    ],
)
def test_value_refusals_name_the_param(params, param):
    with pytest.raises(ParamError) as e:
        fill("t2v_14b", {"prompt": "x", **params})
    assert e.value.param == param
    assert str(e.value).startswith(f"{param}: ") and "allowed: " in str(e.value)


def test_refusal_message_shape():
    with pytest.raises(ParamError) as e:
        fill("t2v_14b", {"prompt": "x", "cfg": 12})
    assert str(e.value) == "cfg: 12 is not allowed; allowed: 1 to 10 in steps of 0.1"
    assert (e.value.param, e.value.value, e.value.allowed) == ("cfg", 12, "1 to 10 in steps of 0.1")


def test_5b_turbo_refused_with_reason():
    with pytest.raises(ParamError) as e:
        fill("ti2v_5b", {"prompt": "x", "mode": "turbo"})
    assert e.value.param == "mode" and "4-step distillation LoRA" in str(e.value)
    assert str(e.value).startswith("mode: 'turbo' is not allowed; allowed: quality (turbo is not")


def test_unknown_template():
    with pytest.raises(ParamError, match=r"^template: 's2v' is not allowed; allowed: t2v_14b, "):
        fill("s2v", {})


def test_advanced_values_land_everywhere(schema):
    f = fill(
        "i2v_14b",
        {
            "prompt": "x",
            "cfg": 1.5,
            "shift": 6.5,
            "sampler": "uni_pc",
            "scheduler": "beta",
            "lora_high": 0.8,
            "lora_low": 1.25,
            "steps": 6,
        },
    )
    high, low = samplers(f.workflow)
    for s in (high, low):
        assert (s["cfg"], s["sampler_name"], s["scheduler"], s["steps"]) == (
            1.5,
            "uni_pc",
            "beta",
            6,
        )
    assert {n["inputs"]["shift"] for n in nodes(f.workflow, "ModelSamplingSD3").values()} == {6.5}
    strengths = {
        n["inputs"]["lora_name"].split("_")[-2]: n["inputs"]["strength_model"]
        for n in nodes(f.workflow, "LoraLoaderModelOnly").values()
    }
    assert strengths == {"high": 0.8, "low": 1.25}
    assert NEGATIVE_IGNORED not in f.notes
    assert check(f.workflow, schema) == []


def test_negative_prompt_and_cfg1_note():
    f = fill("t2v_14b", {"prompt": "x", "negative_prompt": "blurry"})
    assert f.workflow["9"]["inputs"]["text"] == "blurry"
    assert NEGATIVE_IGNORED in f.notes
    f = fill("t2v_14b", {"prompt": "x", "negative_prompt": "", "mode": "quality"})
    assert f.workflow["9"]["inputs"]["text"] == "" and NEGATIVE_IGNORED not in f.notes
    default = fill("t2v_14b", {"prompt": "x"}).workflow["9"]["inputs"]["text"]
    assert default.startswith("色调艳丽") and default.endswith("NSFW")


# -- seed, prefix, images, VAE ------------------------------------------------------------------


@pytest.mark.parametrize(("tid", "mode"), TEMPLATE_MODES)
def test_fresh_seed_and_unique_prefix(tid, mode):
    runs = [fill(tid, {"prompt": "x", "mode": mode}) for _ in range(5)]
    seeds = {r.seed for r in runs}
    prefixes = {r.output_prefix for r in runs}
    assert len(seeds) == 5 and len(prefixes) == 5
    for r in runs:
        assert f"fresh seed {r.seed}" in r.notes
        assert r.output_prefix.startswith(f"video/wanpod_{tid}_")
        save = only(r.workflow, "SaveVideo")
        assert save["filename_prefix"] == r.output_prefix
        assert (save["format"], save["codec"]) == ("auto", "auto")
        seed_inputs = [
            n["inputs"].get("noise_seed", n["inputs"].get("seed"))
            for n in r.workflow.values()
            if n["class_type"].startswith("KSampler")
            and n["inputs"].get("add_noise", "enable") == "enable"
        ]
        assert seed_inputs == [r.seed]


def test_given_seed_is_used_and_rng_is_injectable():
    f = fill("ti2v_5b", {"prompt": "x", "seed": 42})
    assert f.seed == 42 and f.workflow["12"]["inputs"]["seed"] == 42
    assert not any("fresh seed" in n for n in f.notes)
    a = fill("t2v_14b", {"prompt": "x"}, rng=random.Random(7))
    b = fill("t2v_14b", {"prompt": "x"}, rng=random.Random(7))
    assert a.seed == b.seed and a.output_prefix != b.output_prefix


def test_custom_prefix_still_unique():
    a = fill("t2v_14b", {"prompt": "x", "output_prefix": "video/client-7"})
    b = fill("t2v_14b", {"prompt": "x", "output_prefix": "video/client-7"})
    assert (
        a.output_prefix.startswith("video/client-7_t2v_14b_") and a.output_prefix != b.output_prefix
    )


def test_images_named_for_upload(schema):
    f = fill("flf2v_14b", {"prompt": "x"})
    assert sorted(f.images.values()) == ["end_image", "start_image"]
    by_param = {p: n for n, p in f.images.items()}
    assert f.workflow["17"]["inputs"]["image"] == by_param["start_image"]
    assert f.workflow["18"]["inputs"]["image"] == by_param["end_image"]
    assert f.workflow["11"]["inputs"]["start_image"] == ["17", 0]
    assert f.workflow["11"]["inputs"]["end_image"] == ["18", 0]
    g = fill("flf2v_14b", {"prompt": "x"})
    assert set(g.images).isdisjoint(f.images)  # unique per job
    f = fill("i2v_14b", {"prompt": "x", "start_image": "my_photo-1.jpg"})
    assert f.images == {"my_photo-1.jpg": "start_image"}
    assert f.workflow["17"]["inputs"]["image"] == "my_photo-1.jpg"
    for bad in ("../x.png", "x.gif", "", "a b.png"):
        with pytest.raises(ParamError, match=r"^start_image: "):
            fill("i2v_14b", {"prompt": "x", "start_image": bad})


def test_5b_start_image_optional(schema):
    t2v = fill("ti2v_5b", {"prompt": "x"})
    assert t2v.images == {} and not nodes(t2v.workflow, "LoadImage")
    assert "start_image" not in t2v.workflow["11"]["inputs"]
    i2v = fill("ti2v_5b", {"prompt": "x", "start_image": True})
    (name,) = i2v.images
    assert i2v.images[name] == "start_image"
    assert i2v.workflow["17"]["inputs"]["image"] == name
    assert i2v.workflow["11"]["inputs"]["start_image"] == ["17", 0]
    assert check(t2v.workflow, schema) == [] and check(i2v.workflow, schema) == []


@pytest.mark.parametrize(("tid", "mode"), TEMPLATE_MODES)
def test_vae_pairing_and_model_files(tid, mode):
    f = fill(tid, {"prompt": "x", "mode": mode})
    vae = only(f.workflow, "VAELoader")["vae_name"]
    assert vae == ("wan2.2_vae.safetensors" if tid == "ti2v_5b" else "wan_2.1_vae.safetensors")
    loaded = {
        v
        for n in f.workflow.values()
        for k, v in n["inputs"].items()
        if k in ("unet_name", "clip_name", "vae_name", "lora_name")
    }
    assert loaded == {m.name for m in f.model_files}


def test_fill_does_not_mutate_the_catalog():
    t = load_catalog()["t2v_14b"]
    before = repr(t.workflow)
    fill("t2v_14b", {"prompt": "changed", "mode": "quality", "steps": 30})
    assert repr(t.workflow) == before


def test_params_record_what_was_used():
    f = fill("t2v_14b", {"prompt": "x", "seconds": 3})
    p = f.params
    assert (p["mode"], p["width"], p["height"], p["frames"], p["fps"], p["seconds"]) == (
        "turbo",
        640,
        640,
        49,
        16,
        3.062,
    )
    assert (p["steps"], p["split"], p["cfg"], p["shift"], p["sampler"], p["scheduler"]) == (
        4,
        2,
        1.0,
        5.0,
        "euler",
        "simple",
    )
    assert p["seed"] == f.seed and p["output_prefix"] == f.output_prefix


# -- every numeric parameter at its bounds, for every template x mode -------------------------

COMPANIONS = {"split": {"steps": 60}, "fps": {"frames": 81}}


def numeric_bounds():
    cat = load_catalog()
    for tid, mode in TEMPLATE_MODES:
        for p in cat[tid].params_for(mode):
            if p.type in ("int", "float") and p.min is not None and p.max is not None:
                yield pytest.param(tid, mode, p.name, id=f"{tid}-{mode}-{p.name}")


@pytest.mark.parametrize(("tid", "mode", "name"), list(numeric_bounds()))
def test_bounds_accepted_and_just_beyond_refused(tid, mode, name, schema):
    spec = load_catalog()[tid].params[name]
    base = {"prompt": "x", "mode": mode, **COMPANIONS.get(name, {})}
    step = spec.step or 1
    for edge in (spec.min, spec.max):
        value = int(edge) if spec.type == "int" else edge
        f = fill(tid, {**base, name: value})
        if name == "seconds":
            assert f.params["frames"] == load_catalog()[tid].frames_for(value)
        else:
            assert f.params[name] == value
        assert check(f.workflow, schema) == [], (name, value)
    for beyond in (spec.min - step, spec.max + step):
        value = int(beyond) if spec.type == "int" else beyond
        with pytest.raises(ParamError) as e:
            fill(tid, {**base, name: value})
        assert e.value.param == name and e.value.value == value
