"""Simulated node behaviour: what each node passes on, how long it takes, which files it writes.

No model runs. Values carry just enough to write truthful outputs: `Images` (size, frame count,
colours), `Latent` (size and frame length from the latent nodes' width/height/length), `Video`
(images + fps) and `Opaque` for everything else (models, CLIP, conditioning...).
`run_node(ctx)` returns `(outputs tuple, ui dict or None)` or raises `NodeFailure` with the
exception type/message ComfyUI would report. Samplers and ImageUpscaleWithModel report progress
through `ctx.progress(value, max)` (which raises `Interrupted` when an interrupt is pending).
Unknown-but-valid node classes pass IMAGE/LATENT inputs through and yield opaque values.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import media


class Interrupted(Exception):
    """The interrupt flag was seen (before a node or at a progress step)."""


class NodeFailure(Exception):
    def __init__(self, exception_type: str, message: str, traceback: list[str] | None = None):
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message
        self.traceback = traceback or []


@dataclass
class Images:
    width: int
    height: int
    frames: int
    colors: list[int] = field(default_factory=lambda: [0x808080])
    inverted: bool = False

    def __repr__(self) -> str:
        return f"tensor(<{self.frames}x{self.height}x{self.width}x3 float32>)"


@dataclass
class Latent:
    width: int
    height: int
    length: int = 1
    batch: int = 1

    def __repr__(self) -> str:
        return (
            f"{{'samples': tensor(<latent {self.batch}x{self.length}x{self.height}x{self.width}>)}}"
        )


@dataclass
class Video:
    images: Images
    fps: float

    def __repr__(self) -> str:
        return (
            f"<comfy_api.latest._input_impl.video_types.VideoFromComponents object at "
            f"0x{id(self):x}>"
        )


@dataclass
class Audio:
    duration: float
    sample_rate: int = 44100
    channels: int = 2

    def __repr__(self) -> str:
        return (
            f"{{'waveform': tensor(<1x{self.channels}x{int(self.duration * self.sample_rate)}>), "
            f"'sample_rate': {self.sample_rate}}}"
        )


@dataclass
class Opaque:
    type: str
    source: str = ""

    def __repr__(self) -> str:
        return f"<{self.type} object at 0x{id(self):x}>"


@dataclass
class NodeContext:
    node_id: str
    class_type: str
    inputs: dict[str, Any]  # links resolved to upstream values
    output_types: list[str]
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    input_directory: Path
    output_directory: Path
    temp_directory: Path
    step_delay: float
    node_delay: float
    video_max_side: int
    output_bytes: int | None
    progress: Callable[[int, int], Awaitable[None]]


def _first(ctx: NodeContext, kind: type) -> Any:
    for v in ctx.inputs.values():
        if isinstance(v, kind):
            return v
    return None


def _int(ctx: NodeContext, name: str, default: int) -> int:
    try:
        return int(ctx.inputs.get(name, default))
    except (TypeError, ValueError):
        return default


async def _steps(ctx: NodeContext, total: int) -> None:
    for i in range(1, total + 1):
        if ctx.step_delay:
            await asyncio.sleep(ctx.step_delay)
        await ctx.progress(i, total)


def save_path(prefix: str, base: Path) -> tuple[Path, str, str, int]:
    """ComfyUI's get_save_image_path: (folder, file stem, subfolder, next counter)."""
    norm = os.path.normpath(prefix)
    subfolder, stem = os.path.dirname(norm), os.path.basename(norm)
    folder = (base / subfolder).resolve()
    if os.path.commonpath((str(base.resolve()), str(folder))) != str(base.resolve()):
        raise NodeFailure(
            "Exception",
            "**** ERROR: Saving image outside the output folder is not "
            f"allowed.\n full_output_folder: {folder}\n         output_dir: {base}",
        )
    counter = 1
    if folder.is_dir():
        pat = re.compile(re.escape(stem) + r"_(\d+)_")
        for p in folder.iterdir():
            m = pat.match(p.name)
            if m:
                counter = max(counter, int(m.group(1)) + 1)
    return folder, stem, subfolder, counter


def _png_meta(ctx: NodeContext) -> dict[str, Any]:
    meta: dict[str, Any] = {"prompt": ctx.prompt}
    for k, v in (ctx.extra_data.get("extra_pnginfo") or {}).items():
        meta[k] = v
    return meta


def _write_images(
    ctx: NodeContext,
    images: Images,
    folder: Path,
    stem: str,
    subfolder: str,
    counter: int,
    typ: str,
) -> list[dict[str, str]]:
    results = []
    for i in range(images.frames):
        name = f"{stem}_{counter:05}_.png"
        color = images.colors[min(len(images.colors) - 1, i * len(images.colors) // images.frames)]
        media.write_png(
            folder / name,
            images.width,
            images.height,
            color,
            i,
            images.frames,
            _png_meta(ctx),
            invert=images.inverted,
        )
        results.append({"filename": name, "subfolder": subfolder, "type": typ})
        counter += 1
    return results


async def save_image(ctx: NodeContext) -> tuple[tuple[Any, ...], dict[str, Any]]:
    images = ctx.inputs["images"]
    folder, stem, sub, counter = save_path(
        str(ctx.inputs.get("filename_prefix", "ComfyUI")), ctx.output_directory
    )
    res = await asyncio.to_thread(_write_images, ctx, images, folder, stem, sub, counter, "output")
    return (), {"images": res}


async def preview_image(ctx: NodeContext) -> tuple[tuple[Any, ...], dict[str, Any]]:
    suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    folder, stem, sub, counter = save_path("ComfyUI_temp_" + suffix, ctx.temp_directory)
    res = await asyncio.to_thread(
        _write_images, ctx, ctx.inputs["images"], folder, stem, sub, counter, "temp"
    )
    return (), {"images": res}


VIDEO_FORMATS = ("auto", "mp4")
VIDEO_CODECS = ("auto", "h264")


async def save_video(ctx: NodeContext) -> tuple[tuple[Any, ...], dict[str, Any]]:
    video: Video = ctx.inputs["video"]
    fmt, codec = ctx.inputs.get("format", "auto"), ctx.inputs.get("codec", "auto")
    if fmt not in VIDEO_FORMATS:
        raise NodeFailure("ValueError", f"{fmt!r} is not a valid VideoContainer")
    if codec not in VIDEO_CODECS:
        raise NodeFailure("ValueError", f"{codec!r} is not a valid VideoCodec")
    img = video.images
    folder, stem, sub, counter = save_path(
        str(ctx.inputs.get("filename_prefix", "video/ComfyUI")), ctx.output_directory
    )
    name = f"{stem}_{counter:05}_.mp4"
    meta = {"prompt": json.dumps(ctx.prompt)}
    for k, v in (ctx.extra_data.get("extra_pnginfo") or {}).items():
        meta[k] = json.dumps(v)

    def work() -> None:
        media.encode_mp4(
            folder / name,
            img.width,
            img.height,
            img.frames,
            video.fps,
            img.colors,
            ctx.video_max_side,
            meta,
        )
        media.pad_mp4(folder / name, ctx.output_bytes)

    try:
        await asyncio.to_thread(work)
    except media.EncodeError as e:
        raise NodeFailure(e.exception_type, str(e)) from e
    return (), {
        "images": [{"filename": name, "subfolder": sub, "type": "output"}],
        "animated": [True],
    }


async def save_animation(ctx: NodeContext) -> tuple[tuple[Any, ...], dict[str, Any]]:
    images: Images = ctx.inputs["images"]
    fmt = "WEBP" if ctx.class_type == "SaveAnimatedWEBP" else "PNG"
    folder, stem, sub, counter = save_path(
        str(ctx.inputs.get("filename_prefix", "ComfyUI")), ctx.output_directory
    )
    name = f"{stem}_{counter:05}_.{fmt.lower()}"
    w, h = media.fit(images.width, images.height, ctx.video_max_side)

    def work() -> None:
        frames = [
            media.frame_image(
                w, h, images.colors[i * len(images.colors) // images.frames], i, images.frames
            )
            for i in range(images.frames)
        ]
        media.write_animation(folder / name, frames, float(ctx.inputs.get("fps", 6.0)), fmt)

    await asyncio.to_thread(work)
    return (), {
        "images": [{"filename": name, "subfolder": sub, "type": "output"}],
        "animated": [True],
    }


async def save_audio(ctx: NodeContext) -> tuple[tuple[Any, ...], dict[str, Any]]:
    audio = ctx.inputs["audio"]
    if not isinstance(audio, Audio):
        audio = Audio(5.0)
    fmt = {"SaveAudioMP3": "mp3", "SaveAudioOpus": "opus"}.get(ctx.class_type, "flac")
    if ctx.class_type == "PreviewAudio":
        suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
        folder, stem, sub, counter = save_path("ComfyUI_temp_" + suffix, ctx.temp_directory)
        typ = "temp"
    else:
        folder, stem, sub, counter = save_path(
            str(ctx.inputs.get("filename_prefix", "audio/ComfyUI")), ctx.output_directory
        )
        typ = "output"
    name = f"{stem}_{counter:05}_.{fmt}"
    await asyncio.to_thread(
        media.encode_audio, folder / name, fmt, audio.duration, audio.sample_rate, audio.channels
    )
    return (), {"audio": [{"filename": name, "subfolder": sub, "type": typ}]}


async def load_audio(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    path = ctx.input_directory / str(ctx.inputs["audio"])
    try:
        dur, rate, ch = await asyncio.to_thread(media.probe_audio, path)
    except media.EncodeError as e:
        raise NodeFailure(e.exception_type, str(e)) from e
    return (Audio(dur, rate, ch),), None


async def load_image(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    name = str(ctx.inputs["image"])
    path = ctx.input_directory / re.sub(r" \[(input|output|temp)\]$", "", name)
    try:
        w, h = await asyncio.to_thread(media.probe_image, path)
    except media.EncodeError as e:
        raise NodeFailure(e.exception_type, str(e)) from e
    return (Images(w, h, 1, [0x808080]), Opaque("MASK")), None


def _latent_from_inputs(ctx: NodeContext) -> Latent:
    return Latent(
        _int(ctx, "width", 512),
        _int(ctx, "height", 512),
        max(1, _int(ctx, "length", 1)),
        max(1, _int(ctx, "batch_size", 1)),
    )


async def sampler(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    steps = max(0, _int(ctx, "steps", 20))
    if ctx.class_type == "KSamplerAdvanced":
        start = max(0, _int(ctx, "start_at_step", 0))
        end = min(steps, _int(ctx, "end_at_step", 10000))
        total = max(0, end - start)
    else:
        total = steps
    await _steps(ctx, total)
    latent = ctx.inputs.get("latent_image") or _first(ctx, Latent) or Latent(512, 512)
    return (latent,), None


async def vae_decode(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    lat = ctx.inputs.get("samples")
    if not isinstance(lat, Latent):
        lat = Latent(512, 512)
    frames = ((lat.length - 1) // 4) * 4 + 1 if lat.length > 1 else 1
    seed = abs(hash((lat.width, lat.height, lat.length))) & 0xFFFFFF
    return (Images(lat.width, lat.height, frames * lat.batch, [seed, seed ^ 0x3F7FBF]),), None


async def upscale_with_model(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    img: Images = ctx.inputs["image"]
    tile, overlap = 512, 32
    per = math.ceil(img.height / (tile - overlap)) * math.ceil(img.width / (tile - overlap))
    await _steps(ctx, img.frames * per)
    return (replace(img, width=img.width * 2, height=img.height * 2),), None


async def simple(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    ct, i = ctx.class_type, ctx.inputs
    if ct == "EmptyImage":
        return (
            Images(
                _int(ctx, "width", 512),
                _int(ctx, "height", 512),
                max(1, _int(ctx, "batch_size", 1)),
                [_int(ctx, "color", 0)],
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
                img, width=_int(ctx, "width", img.width), height=_int(ctx, "height", img.height)
            ),
        ), None
    if ct == "EmptyAudio":
        return (
            Audio(
                float(i.get("duration", 60.0)),
                _int(ctx, "sample_rate", 44100),
                _int(ctx, "channels", 2),
            ),
        ), None
    if ct == "CreateVideo":
        return (Video(i["images"], float(i.get("fps", 30.0))),), None
    outs: list[Any] = []
    for t in ctx.output_types:
        if t == "IMAGE":
            outs.append(_first(ctx, Images) or Images(512, 512, 1))
        elif t == "LATENT":
            has_size = "width" in i and "height" in i
            outs.append(
                _latent_from_inputs(ctx) if has_size else (_first(ctx, Latent) or Latent(512, 512))
            )
        elif t == "AUDIO":
            outs.append(_first(ctx, Audio) or Audio(5.0))
        elif t == "VIDEO":
            outs.append(_first(ctx, Video) or Video(Images(512, 512, 1), 24.0))
        else:
            outs.append(Opaque(t, ct))
    return tuple(outs), None


HANDLERS: dict[str, Callable[[NodeContext], Awaitable[tuple[tuple[Any, ...], Any]]]] = {
    "SaveImage": save_image,
    "PreviewImage": preview_image,
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
    "KSampler": sampler,
    "KSamplerAdvanced": sampler,
    "VAEDecode": vae_decode,
    "VAEDecodeTiled": vae_decode,
    "ImageUpscaleWithModel": upscale_with_model,
}


async def run_node(ctx: NodeContext) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
    if ctx.node_delay:
        await asyncio.sleep(ctx.node_delay)
    handler = HANDLERS.get(ctx.class_type, simple)
    return await handler(ctx)
