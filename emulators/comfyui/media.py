"""Real output files: PNG images (Pillow) and H.264 mp4 videos (PyAV/libx264).

Frames are simple generated pictures (a solid colour with a bar that moves frame by frame; what a
sampled video shows is scene.py's), so an 81-frame Wan video encodes in a few tens of
milliseconds. `encode_mp4` writes the frames it is given at `fps`; `fit` scales a size to a
bounded long side (aspect ratio kept, even sides for H.264). `pad_mp4` appends an ISO
BMFF `free` box so the file reaches a wanted size and stays a valid mp4 every player ignores the
padding of. Odd frame sizes fail like libx264 does inside ComfyUI (`av.error.ExternalError`).
"""

from __future__ import annotations

import io
import itertools
import json
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, PngImagePlugin

LIBX264_ODD_SIZE = (
    "[Errno 542398533] Generic error in an external library: 'avcodec_open2(\"libx264\", {})'"
)


class EncodeError(Exception):
    """Raised with the exception type/message real ComfyUI would report."""

    def __init__(self, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type


def rgb(color: int) -> tuple[int, int, int]:
    return ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)


def frame_image(width: int, height: int, color: int, index: int, total: int) -> Image.Image:
    img = Image.new("RGB", (max(1, width), max(1, height)), rgb(color))
    if total > 1 and width >= 4:
        bar_w = max(2, width // 16)
        x = int((width - bar_w) * index / max(1, total - 1))
        inv = tuple(255 - c for c in rgb(color))
        img.paste(inv, (x, 0, x + bar_w, height))
    return img


def png_bytes(width: int, height: int, color: int, index: int = 0, total: int = 1) -> bytes:
    """One frame as PNG bytes without metadata (what SaveImageWebsocket sends: PNG, level 1)."""
    buf = io.BytesIO()
    frame_image(width, height, color, index, total).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_png(
    path: Path,
    width: int,
    height: int,
    color: int,
    index: int = 0,
    total: int = 1,
    metadata: dict[str, Any] | None = None,
    invert: bool = False,
) -> None:
    img = frame_image(width, height, color, index, total)
    if invert:
        img = Image.eval(img, lambda c: 255 - c)
    info = PngImagePlugin.PngInfo()
    for k, v in (metadata or {}).items():
        info.add_text(k, json.dumps(v))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", pnginfo=info, compress_level=4)


def fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
        width, height = width - width % 2, height - height % 2
    return width, height


def encode_mp4(
    path: Path,
    width: int,
    height: int,
    pictures: Iterator[Image.Image],
    fps: float,
    metadata: dict[str, str] | None = None,
) -> None:
    """Encode `pictures` (the frames, already fitted, at least one) as H.264 in mp4 at `fps`.

    `width` x `height` is the size the video was asked for: odd sizes raise EncodeError like
    ComfyUI's libx264 does."""
    if width % 2 or height % 2:
        # libx264 (yuv420p) refuses odd sizes when the codec is opened
        raise EncodeError("av.error.ExternalError", LIBX264_ODD_SIZE)
    first = next(pictures)
    buf = io.BytesIO()
    with av.open(
        buf, mode="w", format="mp4", options={"movflags": "use_metadata_tags"}
    ) as container:
        for k, v in (metadata or {}).items():
            container.metadata[k] = v
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = first.size
        stream.pix_fmt = "yuv420p"
        # one encoder thread, not libx264's default pool (2 on a 2-core machine): the same kind of
        # file (the same bytes at 96 px), for 30 % less CPU at 320 px and half at 96 px
        # (bench/emulator_video.py), with no pool per emulator when 64 share two cores
        stream.options = {"preset": "ultrafast", "crf": "30", "threads": "1"}
        for picture in itertools.chain([first], pictures):
            for packet in stream.encode(av.VideoFrame.from_image(picture)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def pad_mp4(path: Path, target_bytes: int | None) -> None:
    """Append a `free` box so the file is `target_bytes` long (no-op when already larger)."""
    if not target_bytes:
        return
    size = path.stat().st_size
    missing = target_bytes - size
    if missing < 8:
        return
    with path.open("ab") as f:
        f.write(struct.pack(">I4s", missing, b"free"))
        chunk = b"\0" * (1 << 20)
        left = missing - 8
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n


def write_animation(path: Path, images: list[Image.Image], fps: float, fmt: str) -> None:
    """Animated WEBP or PNG (SaveAnimatedWEBP / SaveAnimatedPNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = int(1000.0 / max(fps, 0.01))
    images[0].save(
        path,
        format=fmt,
        save_all=True,
        append_images=images[1:],
        duration=duration,
        loop=0,
        **({"lossless": False, "quality": 50} if fmt == "WEBP" else {}),
    )


AUDIO_CODECS = {"flac": "flac", "mp3": "libmp3lame", "opus": "libopus"}


def encode_audio(path: Path, fmt: str, duration: float, sample_rate: int, channels: int) -> None:
    """A quiet tone as flac/mp3/opus (SaveAudio, SaveAudioMP3, SaveAudioOpus, PreviewAudio)."""
    import math

    rate = 48000 if fmt == "opus" else max(8000, int(sample_rate))
    layout = "stereo" if channels >= 2 else "mono"
    n_total = max(1, int(min(duration, 600.0) * rate))
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format={"opus": "ogg"}.get(fmt, fmt)) as c:
        stream = c.add_stream(AUDIO_CODECS[fmt], rate=rate, layout=layout)
        chunk = 960 if fmt == "opus" else 1152 if fmt == "mp3" else 4096
        ch = 2 if layout == "stereo" else 1
        done = 0
        while done < n_total:
            n = min(chunk, n_total - done)
            samples = bytearray()
            for i in range(n):
                v = int(800 * math.sin(2 * math.pi * 440 * (done + i) / rate))
                samples += v.to_bytes(2, "little", signed=True) * ch
            frame = av.AudioFrame(format="s16", layout=layout, samples=n)
            frame.planes[0].update(bytes(samples))
            frame.sample_rate = rate
            frame.pts = done
            for packet in stream.encode(frame):
                c.mux(packet)
            done += n
        for packet in stream.encode():
            c.mux(packet)


def probe_audio(path: Path) -> tuple[float, int, int]:
    """(duration s, sample rate, channels) of an input audio file; raises like ComfyUI would."""
    try:
        with av.open(str(path)) as c:
            s = c.streams.audio[0]
            dur = float(c.duration / 1_000_000) if c.duration else 0.0
            return dur, s.codec_context.sample_rate, s.codec_context.channels
    except Exception as ex:
        raise EncodeError("RuntimeError", f"Failed to load audio {path}: {ex}") from ex


def preview_jpeg(latent: Any, step: int, max_size: int = 512) -> bytes:
    """A sampler step preview like latent2rgb's: 1/8 of the latent size, JPEG q95, <= 512 px."""
    w, h = max(1, latent.width // 8), max(1, latent.height // 8)
    scale = min(1.0, max_size / max(w, h))
    img = frame_image(
        max(1, int(w * scale)),
        max(1, int(h * scale)),
        (0x406080 + step * 0x0A0A0A) % 0x1000000,
        0,
        1,
    )
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def load_image_file(path: Path) -> Image.Image:
    """An input image's pixels (RGB); raises like ComfyUI's LoadImage for a non-image file."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Exception as ex:
        raise EncodeError(
            "PIL.UnidentifiedImageError", f"cannot identify image file '{path}'"
        ) from ex
