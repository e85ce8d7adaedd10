"""Simulated node behaviour: what each node passes on, how long it takes, which files it writes.

No model runs. Values carry just enough to write truthful outputs: `Images` (size, frame count,
colours), `Latent` (size and frame length from the latent nodes' width/height/length), `Video`
(images + fps), `Conditioning` and `Opaque` for everything else (models, CLIP...).
The job's inputs flow to the frames as a `Look`: CLIPTextEncode's text rides on the conditioning,
WanImageToVideo / WanFirstLastFrameToVideo add their start/end images to both conditionings (as
real ComfyUI adds concat_latent_image), Wan22ImageToVideoLatent puts its start image on the latent,
the sampler that adds noise sets its seed, and VAEDecode hands the look to the images.
`run_node(ctx)` returns `(outputs tuple, ui dict or None)` or raises `NodeFailure` with the
exception type/message ComfyUI would report. Samplers and ImageUpscaleWithModel report progress
through `ctx.progress(value, max)` (which raises `Interrupted` when an interrupt is pending).
UpscaleModelLoader's model scales by the factor its file name says (`4x-UltraSharp.pth`,
`RealESRGAN_x2plus.pth`; 4 when the name does not say: most upscale models are 4x), as spandrel
reads it from the weights (the rule is workflows.poststeps.native_factor, which the quote reads
too). RIFE VFI (ComfyUI-Frame-Interpolation, a custom node: present when its schema is loaded)
turns N frames into (N - 1) * multiplier + 1, as its source does.
Unknown-but-valid node classes pass IMAGE/LATENT inputs through and yield opaque values.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from workflows.poststeps import native_factor

from .savers import (
    load_audio,
    load_image,
    preview_image,
    save_animation,
    save_audio,
    save_image,
    save_image_websocket,
    save_video,
)
from .values import (
    Audio,
    Conditioning,
    Images,
    Interrupted,
    Latent,
    Look,
    NodeContext,
    NodeFailure,
    Opaque,
    UpscaleModel,
    Video,
    first_of,
    int_input,
)

__all__ = ["Interrupted", "NodeContext", "NodeFailure", "run_node"]


async def _steps(ctx: NodeContext, total: int, preview: Latent | None = None) -> None:
    for i in range(1, total + 1):
        if ctx.step_delay:
            await asyncio.sleep(ctx.step_delay)
        await ctx.progress(i, total, preview)


def _latent_from_inputs(ctx: NodeContext) -> Latent:
    return Latent(
        int_input(ctx, "width", 512),
        int_input(ctx, "height", 512),
        max(1, int_input(ctx, "length", 1)),
        max(1, int_input(ctx, "batch_size", 1)),
    )


async def sampler(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    steps = max(0, int_input(ctx, "steps", 20))
    if ctx.class_type == "KSamplerAdvanced":
        start = max(0, int_input(ctx, "start_at_step", 0))
        end = min(steps, int_input(ctx, "end_at_step", 10000))
        total = max(0, end - start)
    else:
        total = steps
    latent = ctx.inputs.get("latent_image") or first_of(ctx, Latent) or Latent(512, 512)
    await _steps(ctx, total, latent)  # samplers offer a latent preview at every step
    look = latent.look or Look()
    positive = ctx.inputs.get("positive")
    if isinstance(positive, Conditioning):
        look = look.joined(positive.look)
    if ctx.class_type == "KSampler" or ctx.inputs.get("add_noise", "enable") == "enable":
        seed = int_input(ctx, "seed" if ctx.class_type == "KSampler" else "noise_seed", 0)
        look = replace(look, seed=seed)  # a sampler that adds no noise keeps the first's motion
    return (replace(latent, look=look),), None


async def clip_text_encode(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    text = ctx.inputs.get("text", "")
    return (Conditioning("CONDITIONING", ctx.class_type, Look(caption=str(text))),), None


def _guides(ctx: NodeContext) -> Look:
    start, end = ctx.inputs.get("start_image"), ctx.inputs.get("end_image")
    return Look(
        start=start.picture if isinstance(start, Images) else None,
        end=end.picture if isinstance(end, Images) else None,
    )


async def wan_image_to_video(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    """WanImageToVideo / WanFirstLastFrameToVideo: (positive, negative, empty latent)."""
    guides = _guides(ctx)
    conds = []
    for name in ("positive", "negative"):
        cond = ctx.inputs.get(name)
        look = cond.look if isinstance(cond, Conditioning) else Look()
        conds.append(Conditioning("CONDITIONING", ctx.class_type, look.joined(guides)))
    return (*conds, _latent_from_inputs(ctx)), None


async def wan22_image_to_video_latent(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    """The 5B's latent: the start image (when given) is encoded into it."""
    return (replace(_latent_from_inputs(ctx), look=_guides(ctx)),), None


async def vae_decode(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    lat = ctx.inputs.get("samples")
    if not isinstance(lat, Latent):
        lat = Latent(512, 512)
    frames = ((lat.length - 1) // 4) * 4 + 1 if lat.length > 1 else 1
    seed = abs(hash((lat.width, lat.height, lat.length))) & 0xFFFFFF
    colors = [seed, seed ^ 0x3F7FBF]
    return (Images(lat.width, lat.height, frames * lat.batch, colors, look=lat.look),), None


async def upscale_model_loader(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    name = str(ctx.inputs.get("model_name", ""))
    return (UpscaleModel(name, native_factor(name)),), None


async def upscale_with_model(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    img: Images = ctx.inputs["image"]
    model = ctx.inputs.get("upscale_model")
    scale = model.scale if isinstance(model, UpscaleModel) else 2
    tile, overlap = 512, 32
    per = math.ceil(img.height / (tile - overlap)) * math.ceil(img.width / (tile - overlap))
    await _steps(ctx, img.frames * per)
    return (replace(img, width=img.width * scale, height=img.height * scale),), None


async def rife_vfi(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    img: Images = ctx.inputs["frames"]
    multiplier = max(1, int_input(ctx, "multiplier", 2))
    frames = (img.frames - 1) * multiplier + 1 if img.frames > 1 else img.frames
    return (replace(img, frames=frames),), None


async def simple(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    ct, i = ctx.class_type, ctx.inputs
    if ct == "EmptyImage":
        return (
            Images(
                int_input(ctx, "width", 512),
                int_input(ctx, "height", 512),
                max(1, int_input(ctx, "batch_size", 1)),
                [int_input(ctx, "color", 0)],
            ),
        ), None
    if ct == "ImageBatch":
        a, b = i["image1"], i["image2"]
        return (Images(a.width, a.height, a.frames + b.frames, a.colors + b.colors),), None
    if ct == "ImageInvert":
        img = i["image"]
        return (replace(img, inverted=not img.inverted),), None
    if ct == "ImageScaleBy":
        img, s = i["image"], float(i.get("scale_by", 1.0))
        return (
            replace(img, width=max(1, round(img.width * s)), height=max(1, round(img.height * s))),
        ), None
    if ct in ("ImageScale", "ImageResize"):
        img = i["image"]
        return (
            replace(
                img,
                width=int_input(ctx, "width", img.width),
                height=int_input(ctx, "height", img.height),
            ),
        ), None
    if ct == "EmptyAudio":
        return (
            Audio(
                float(i.get("duration", 60.0)),
                int_input(ctx, "sample_rate", 44100),
                int_input(ctx, "channels", 2),
            ),
        ), None
    if ct == "CreateVideo":
        return (Video(i["images"], float(i.get("fps", 30.0))),), None
    outs: list[Any] = []
    for t in ctx.output_types:
        if t == "IMAGE":
            outs.append(first_of(ctx, Images) or Images(512, 512, 1))
        elif t == "LATENT":
            has_size = "width" in i and "height" in i
            outs.append(
                _latent_from_inputs(ctx)
                if has_size
                else (first_of(ctx, Latent) or Latent(512, 512))
            )
        elif t == "AUDIO":
            outs.append(first_of(ctx, Audio) or Audio(5.0))
        elif t == "VIDEO":
            outs.append(first_of(ctx, Video) or Video(Images(512, 512, 1), 24.0))
        else:
            outs.append(Opaque(t, ct))
    return tuple(outs), None


HANDLERS: dict[str, Callable[[NodeContext], Awaitable[tuple[tuple[Any, ...], Any]]]] = {
    "SaveImage": save_image,
    "PreviewImage": preview_image,
    "SaveImageWebsocket": save_image_websocket,
    "SaveVideo": save_video,
    "SaveAnimatedWEBP": save_animation,
    "SaveAnimatedPNG": save_animation,
    "SaveAudio": save_audio,
    "SaveAudioMP3": save_audio,
    "SaveAudioOpus": save_audio,
    "PreviewAudio": save_audio,
    "LoadAudio": load_audio,
    "LoadImage": load_image,
    "LoadImageMask": load_image,
    "CLIPTextEncode": clip_text_encode,
    "WanImageToVideo": wan_image_to_video,
    "WanFirstLastFrameToVideo": wan_image_to_video,
    "Wan22ImageToVideoLatent": wan22_image_to_video_latent,
    "KSampler": sampler,
    "KSamplerAdvanced": sampler,
    "VAEDecode": vae_decode,
    "VAEDecodeTiled": vae_decode,
    "UpscaleModelLoader": upscale_model_loader,
    "ImageUpscaleWithModel": upscale_with_model,
    "RIFE VFI": rife_vfi,
}


async def run_node(ctx: NodeContext) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
    if ctx.node_delay:
        await asyncio.sleep(ctx.node_delay)
    handler = HANDLERS.get(ctx.class_type, simple)
    return await handler(ctx)
