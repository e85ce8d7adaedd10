"""The emulator's upscale and frame-interpolation nodes: the sizes and frame counts the real nodes
produce (spandrel's model scale; RIFE VFI's (N - 1) * multiplier + 1), run directly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from emulators.comfyui.nodes import run_node
from emulators.comfyui.values import Images, NodeContext, UpscaleModel


def run(class_type: str, inputs: dict, output_types: list[str]) -> tuple:
    steps: list[tuple[int, int]] = []

    async def progress(value: int, total: int, _latent: object) -> None:
        steps.append((value, total))

    ctx = NodeContext(
        node_id="1",
        class_type=class_type,
        inputs=inputs,
        output_types=output_types,
        prompt={},
        extra_data={},
        input_directory=Path("."),
        output_directory=Path("."),
        temp_directory=Path("."),
        step_delay=0.0,
        node_delay=0.0,
        video_max_side=0,
        output_bytes=None,
        progress=progress,
    )
    outputs, _ui = asyncio.run(run_node(ctx))
    return outputs, steps


@pytest.mark.parametrize(
    ("name", "scale"),
    [
        ("4x-UltraSharp.pth", 4),
        ("RealESRGAN_x2plus.pth", 2),
        ("RealESRGAN_x4plus_anime_6B.pth", 4),
        ("tiny_compact_x2_random.safetensors", 2),  # the recording's 2x model
        ("sub/2x_NMKD-Siax_200k.pth", 2),
        ("1x-ITF-SkinDiffDetail-Lite-v1.pth", 1),
        ("realesr-general-x4v3.pth", 4),
        ("my_upscaler.safetensors", 4),  # the name does not say: most models are 4x
    ],
)
def test_upscale_model_scale_comes_from_the_name(name, scale):
    (model,), _ = run("UpscaleModelLoader", {"model_name": name}, ["UPSCALE_MODEL"])
    assert model == UpscaleModel(name, scale)


def test_upscale_with_model_gives_the_models_size_with_a_progress_step_per_tile():
    frames = Images(1000, 480, 3)
    (img,), steps = run(
        "ImageUpscaleWithModel",
        {"upscale_model": UpscaleModel("4x.pth", 4), "image": frames},
        ["IMAGE"],
    )
    assert (img.width, img.height, img.frames) == (4000, 1920, 3)
    assert steps[-1] == (3 * 3 * 1, 9)  # 3 frames x (3 x 1 tiles of 512 - 32 px)


def test_image_scale_sets_the_exact_size():
    (img,), _ = run(
        "ImageScale",
        {"image": Images(640, 256, 5), "upscale_method": "area", "width": 320, "height": 128},
        ["IMAGE"],
    )
    assert (img.width, img.height, img.frames) == (320, 128, 5)


@pytest.mark.parametrize(
    ("frames", "multiplier", "out"), [(81, 2, 161), (121, 2, 241), (9, 3, 25), (5, 1, 5), (1, 2, 1)]
)
def test_rife_frame_count_is_the_real_nodes(frames, multiplier, out):
    (img,), _ = run(
        "RIFE VFI",
        {"frames": Images(64, 32, frames), "multiplier": multiplier, "ckpt_name": "rife49.pth"},
        ["IMAGE"],
    )
    assert (img.width, img.height, img.frames) == (64, 32, out)
