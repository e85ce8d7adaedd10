"""Nodes that read or write files: SaveImage, PreviewImage, SaveVideo, SaveAnimatedWEBP/PNG,
SaveAudio (+MP3/Opus), PreviewAudio, LoadImage, LoadAudio; and SaveImageWebsocket, which writes
nothing and sends each image through the progress hook as a PNG preview (binary websocket frames,
no `executed` message, no history output), as ComfyUI's custom_nodes/websocket_image_save.py does.

File names follow ComfyUI's `get_save_image_path`: `<prefix dir>/<stem>_<counter:05>_.<ext>`, the
counter one above the highest already in the folder; previews go to the temp folder as
`ComfyUI_temp_<5 letters>_<counter>_.png`. Each returns `((), ui)` with the recorded ui shape.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import string
import time
from pathlib import Path
from typing import Any

from . import media, scene
from .validation import annotated_path
from .values import Audio, Images, NodeContext, NodeFailure, Opaque, Video


def compute_vars(prefix: str, width: int, height: int) -> str:
    """The %width% %height% %year% %month% %day% %hour% %minute% %second% placeholders."""
    now = time.localtime()
    for key, value in (
        ("width", str(width)),
        ("height", str(height)),
        ("year", str(now.tm_year)),
        ("month", f"{now.tm_mon:02}"),
        ("day", f"{now.tm_mday:02}"),
        ("hour", f"{now.tm_hour:02}"),
        ("minute", f"{now.tm_min:02}"),
        ("second", f"{now.tm_sec:02}"),
    ):
        prefix = prefix.replace(f"%{key}%", value)
    return prefix


def save_path(
    prefix: str, base: Path, width: int = 0, height: int = 0
) -> tuple[Path, str, str, int]:
    """ComfyUI's get_save_image_path: (folder, file stem, subfolder, next counter)."""
    if "%" in prefix:
        prefix = compute_vars(prefix, width, height)
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
        str(ctx.inputs.get("filename_prefix", "ComfyUI")),
        ctx.output_directory,
        images.width,
        images.height,
    )
    res = await asyncio.to_thread(_write_images, ctx, images, folder, stem, sub, counter, "output")
    return (), {"images": res}


async def save_image_websocket(ctx: NodeContext) -> tuple[tuple[Any, ...], None]:
    images = ctx.inputs["images"]
    if not isinstance(images, Images):
        images = Images(512, 512, 1)
    for i in range(images.frames):
        color = images.colors[min(len(images.colors) - 1, i * len(images.colors) // images.frames)]
        data = await asyncio.to_thread(
            media.png_bytes, images.width, images.height, color, i, images.frames
        )
        await ctx.progress(i, images.frames, ("PNG", data))  # ProgressBar.update_absolute(i, n)
    return (), None


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
        str(ctx.inputs.get("filename_prefix", "video/ComfyUI")),
        ctx.output_directory,
        img.width,
        img.height,
    )
    name = f"{stem}_{counter:05}_.mp4"
    meta = {"prompt": json.dumps(ctx.prompt)}
    for k, v in (ctx.extra_data.get("extra_pnginfo") or {}).items():
        meta[k] = json.dumps(v)

    w, h = media.fit(img.width, img.height, ctx.video_max_side)

    def work() -> None:
        if ctx.encode_delay:  # a long encode: the file is there, partly written, meanwhile
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"\x00\x00\x00\x18ftypisom")
            time.sleep(ctx.encode_delay)
        pictures = scene.frames(img, w, h)
        media.encode_mp4(folder / name, img.width, img.height, pictures, video.fps, meta)
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
        str(ctx.inputs.get("filename_prefix", "ComfyUI")),
        ctx.output_directory,
        images.width,
        images.height,
    )
    name = f"{stem}_{counter:05}_.{fmt.lower()}"
    w, h = media.fit(images.width, images.height, ctx.video_max_side)

    def work() -> None:
        frames = list(scene.frames(images, w, h))
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
    # like LoadImage's get_annotated_filepath: " [output]" reads the output folder at run time
    path = annotated_path(
        str(ctx.inputs["image"]), ctx.input_directory, ctx.output_directory, ctx.temp_directory
    )
    try:
        picture = await asyncio.to_thread(media.load_image_file, path)
    except media.EncodeError as e:
        raise NodeFailure(e.exception_type, str(e)) from e
    w, h = picture.size
    return (Images(w, h, 1, [0x808080], picture=picture), Opaque("MASK")), None
