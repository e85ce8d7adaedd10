"""The catalog: facts from the Wan 2.2 reference (files, folders, fps, grid, VAE, LoRA versions),
presets on the grid, parameters landing on real inputs, shipped option lists, the docs table."""

from __future__ import annotations

import pytest

from tests.helpers import REPO
from tests.workflows.conftest import TEMPLATES
from workflows.catalog import frames_for, frames_for_duration, load_catalog, markdown_table


def test_templates_and_titles():
    cat = load_catalog()
    assert cat.ids() == TEMPLATES
    for t in cat:
        assert t.title and "prompt" in t.needs
    assert cat["i2v_14b"].needs == ("prompt", "start_image")
    assert cat["flf2v_14b"].needs == ("prompt", "start_image", "end_image")
    assert cat["ti2v_5b"].needs == ("prompt",) and cat["ti2v_5b"].optional == ("start_image",)


def test_modes_and_5b_is_quality_only():
    cat = load_catalog()
    for tid in ("t2v_14b", "i2v_14b", "flf2v_14b"):
        assert tuple(cat[tid].modes) == ("turbo", "quality") and cat[tid].default_mode == "turbo"
    t = cat["ti2v_5b"]
    assert tuple(t.modes) == ("quality",) and t.default_mode == "quality"
    assert "turbo" in t.unavailable_modes and "LoRA" in t.unavailable_modes["turbo"]


@pytest.mark.parametrize("tid", TEMPLATES)
def test_fps_grid_and_presets_on_grid(tid):
    t = load_catalog()[tid]
    assert (t.fps, t.grid) == ((24, 32) if tid == "ti2v_5b" else (16, 16))
    labels = {p.label for p in t.presets}
    for res in ("480p", "720p"):
        for shape in ("landscape", "portrait", "square"):
            assert f"{res} {shape}" in labels
    for p in t.presets:
        assert p.width % t.grid == 0 and p.height % t.grid == 0, p
        lo, hi = t.params["width"].min, t.params["width"].max
        assert lo <= p.width <= hi and lo <= p.height <= hi
        shape = p.label.split()[1]
        assert (p.width > p.height, p.width < p.height, p.width == p.height)[
            ("landscape", "portrait", "square").index(shape)
        ]
    assert t.preset(t.default_preset) == (
        t.preset("720p landscape") if tid == "ti2v_5b" else t.preset("480p square")
    )
    assert (t.preset("720p landscape").width, t.preset("720p landscape").height) == (
        (1280, 704) if tid == "ti2v_5b" else (1280, 720)
    )


@pytest.mark.parametrize("tid", TEMPLATES)
def test_model_files_and_folders(tid):
    t = load_catalog()[tid]
    kind = {"t2v_14b": "t2v", "i2v_14b": "i2v", "flf2v_14b": "i2v"}.get(tid)
    for mode in t.modes:
        files = {(f.name, f.folder) for f in t.model_files(mode)}
        assert ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders") in files
        if kind is None:
            assert files == {
                ("wan2.2_ti2v_5B_fp16.safetensors", "diffusion_models"),
                ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders"),
                ("wan2.2_vae.safetensors", "vae"),
            }
            continue
        assert ("wan_2.1_vae.safetensors", "vae") in files
        assert ("wan2.2_vae.safetensors", "vae") not in files
        for level in ("high", "low"):
            unet = f"wan2.2_{kind}_{level}_noise_14B_fp8_scaled.safetensors"
            assert (unet, "diffusion_models") in files
            version = "v1.1" if kind == "t2v" else "v1"
            lora = f"wan2.2_{kind}_lightx2v_4steps_lora_{version}_{level}_noise.safetensors"
            assert ((lora, "loras") in files) == (mode == "turbo"), (mode, lora)
        assert len(files) == (6 if mode == "turbo" else 4)


@pytest.mark.parametrize("tid", TEMPLATES)
def test_params_land_on_existing_inputs_and_defaults_in_range(tid):
    t = load_catalog()[tid]
    for p in t.params.values():
        for land in p.lands:
            assert land.input in t.workflow[land.node]["inputs"], (p.name, str(land))
        for mode in t.modes:
            if mode not in p.modes:
                continue
            d = t.default(p.name, mode)
            if p.type in ("int", "float") and d is not None:
                assert p.min <= d <= p.max, (p.name, mode, d)
            if p.type == "choice":
                assert d in p.choices
    expected = {
        "prompt",
        "negative_prompt",
        "width",
        "height",
        "seconds",
        "frames",
        "fps",
        "steps",
        "cfg",
        "shift",
        "sampler",
        "scheduler",
        "seed",
        "output_prefix",
    }
    assert expected <= set(t.params)
    if t.experts == 2:
        assert {"split", "lora_high", "lora_low"} <= set(t.params)
        assert t.params["lora_high"].modes == ("turbo",)


def test_mode_defaults_match_reference():
    cat = load_catalog()
    t = cat["t2v_14b"]
    assert [t.default(n, "turbo") for n in ("steps", "split", "cfg", "shift")] == [4, 2, 1.0, 5.0]
    assert [t.default(n, "quality") for n in ("steps", "split", "cfg", "shift")] == [
        20,
        10,
        3.5,
        8.0,
    ]
    assert cat["flf2v_14b"].default("cfg", "quality") == 4.0  # official FLF2V 20-step group
    f = cat["ti2v_5b"]
    got = [f.default(n, "quality") for n in ("steps", "cfg", "shift", "sampler", "scheduler")]
    assert got == [20, 5.0, 8.0, "uni_pc", "simple"]


def test_sampler_choices_are_the_schemas(schema):
    cat = load_catalog()
    req = schema["KSamplerAdvanced"]["input"]["required"]
    assert list(cat.sampler_names) == req["sampler_name"][0]
    assert list(cat.schedulers) == req["scheduler"][0]
    for t in cat:
        assert t.params["sampler"].choices == cat.sampler_names
        assert t.params["scheduler"].choices == cat.schedulers


@pytest.mark.parametrize(
    ("seconds", "fps", "frames"),
    [
        (5, 16, 81),
        (5, 24, 121),
        (1, 16, 17),
        (0.25, 16, 5),
        (10, 16, 161),
        (10, 24, 241),
        (5.1, 16, 81),
        (5.125, 16, 85),
        (3, 24, 73),
        (0, 16, 1),
    ],
)
def test_frames_for(seconds, fps, frames):
    assert frames_for(seconds, fps) == frames
    assert (frames - 1) % 4 == 0


def test_frames_for_duration_uses_the_models_fps():
    assert frames_for_duration("t2v_14b", 5.0) == 81
    assert frames_for_duration("ti2v_5b", 5.0) == 121
    assert frames_for_duration("ti2v_5b", 5.0, fps=16) == 81


def test_workflows_docs_have_the_generated_table():
    assert markdown_table() in (REPO / "docs" / "workflows.md").read_text()
