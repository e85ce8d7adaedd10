"""What an emulated video shows: the job's inputs, made visible cheaply (Pillow only).

`frames(images, width, height)` yields the pictures of `images` at the encoded size (the requested
size scaled down to the emulator's `video_max_side`, aspect ratio kept). Images that came out of
a sampler carry a `Look` (values.py) and show it:
- text-to-video: a backdrop in colours drawn from the prompt, with three discs moving along paths
  the seed draws (same seed, same frames; another seed, other paths);
- image-to-video: the start image, centre-cropped to the video's aspect ratio as WanImageToVideo
  does; the first frame is the whole image, then a slow zoom towards a point the seed picks;
- first-last-frame: the start image zooming in while it cross-fades into the end image, which
  settles to rest: the first frame is the start image, the last the end image;
- a caption band at the bottom with the prompt's first 60 characters (wrapped, Pillow's default
  font), and a tag at the top with the size asked for, the size shown and the seed.
Everything but a crop-and-resize (plus a blend, or three discs) per frame is drawn once, so an
81-frame video renders and encodes in a fraction of a second (bench/emulator_video.py measures).
Images without a look (EmptyImage and the like) keep the plain frames: a colour and a moving bar.
"""

from __future__ import annotations

import random
import textwrap
import zlib
from collections.abc import Iterator
from functools import cache

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .media import frame_image, rgb
from .values import Images, Look

CAPTION_CHARS = 60  # the caption shows this much of the prompt (then "…")
MAX_ZOOM = 1.3  # the image-to-video zoom ends at most this close (1.15 at least)
DISCS = 3  # moving discs on a text-to-video backdrop
RESAMPLE = Image.Resampling.BILINEAR  # as WanImageToVideo's common_upscale; cheap


def frames(images: Images, width: int, height: int) -> Iterator[Image.Image]:
    """`images.frames` RGB pictures of width x height (at least one)."""
    total = max(1, images.frames)
    look = images.look
    if look is None:
        colors = images.colors or [0]
        for i in range(total):
            color = colors[min(len(colors) - 1, i * len(colors) // total)]
            yield frame_image(width, height, color, i, total)
        return
    rng = random.Random(look.seed)
    if look.start is not None and look.end is not None:
        pictures = _blend(look.start, look.end, width, height, total, rng)
    elif look.start is not None:
        pictures = _zoom(look.start, width, height, total, rng)
    else:
        pictures = _discs(look.caption, images.colors, width, height, total, rng)
    bands = _bands(look, (images.width, images.height), (width, height))
    for picture in pictures:
        for band, at in bands:
            picture.paste(band, at, band)
        yield picture


def _ease(t: float) -> float:
    return t * t * (3 - 2 * t)


def _focus(rng: random.Random) -> tuple[float, float, float]:
    """Where the zoom goes (fractions of the picture) and how far it zooms."""
    return rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(1.15, MAX_ZOOM)


def _box(size: tuple[int, int], fx: float, fy: float, zoom: float) -> tuple[float, ...]:
    """The part of a picture of `size` seen at `zoom` (1 = all of it) around (fx, fy)."""
    w, h = size
    bw, bh = w / zoom, h / zoom
    x = min(max(fx * w - bw / 2, 0), w - bw)
    y = min(max(fy * h - bh / 2, 0), h - bh)
    return (x, y, x + bw, y + bh)


def _cover(picture: Image.Image, width: int, height: int) -> Image.Image:
    """Centre-crop to width:height and scale to MAX_ZOOM times that (room to zoom in sharply)."""
    size = (round(width * MAX_ZOOM), round(height * MAX_ZOOM))
    return ImageOps.fit(picture, size, method=RESAMPLE)


def _zoom(
    start: Image.Image, width: int, height: int, total: int, rng: random.Random
) -> Iterator[Image.Image]:
    base = _cover(start, width, height)
    fx, fy, zoom = _focus(rng)
    for i in range(total):
        z = 1 + (zoom - 1) * _ease(i / max(1, total - 1))
        yield base.resize((width, height), RESAMPLE, _box(base.size, fx, fy, z))


def _blend(
    start: Image.Image, end: Image.Image, width: int, height: int, total: int, rng: random.Random
) -> Iterator[Image.Image]:
    first, last = _cover(start, width, height), _cover(end, width, height)
    fx, fy, zoom = _focus(rng)
    for i in range(total):
        t = _ease(i / max(1, total - 1))
        a = first.resize((width, height), RESAMPLE, _box(first.size, fx, fy, 1 + (zoom - 1) * t))
        b = last.resize((width, height), RESAMPLE, _box(last.size, fx, fy, zoom - (zoom - 1) * t))
        yield Image.blend(a, b, t)


def _discs(
    caption: str, colors: list[int], width: int, height: int, total: int, rng: random.Random
) -> Iterator[Image.Image]:
    """A two-colour backdrop (from the prompt, else the latent's colours) and moving discs."""
    tone = zlib.crc32(caption.encode()) if caption.strip() else (colors or [0x808080])[0]
    top, bottom = rgb(tone & 0xFFFFFF), rgb((tone >> 8 ^ 0x5A3C1E) & 0xFFFFFF)
    gradient = Image.linear_gradient("L").resize((width, height), RESAMPLE)
    backdrop = ImageOps.colorize(gradient, top, bottom)
    short = min(width, height)
    discs = []
    for _ in range(DISCS):
        r = short * rng.uniform(0.08, 0.16)
        x, y = rng.uniform(r, width - r), rng.uniform(r, height - r)
        speed = short * rng.uniform(0.01, 0.03)
        dx, dy = rng.choice((-1, 1)) * speed, rng.uniform(-1, 1) * speed
        discs.append((r, x, y, dx, dy, tuple(rng.randrange(40, 256) for _ in range(3))))
    for i in range(total):
        picture = backdrop.copy()
        draw = ImageDraw.Draw(picture)
        for r, x, y, dx, dy, fill in discs:
            cx, cy = _bounce(x + dx * i, r, width - r), _bounce(y + dy * i, r, height - r)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        yield picture


def _bounce(v: float, lo: float, hi: float) -> float:
    """v folded into [lo, hi] as a ball bounces between two walls."""
    span = hi - lo
    if span <= 0:
        return lo
    v = (v - lo) % (2 * span)
    return lo + (v if v <= span else 2 * span - v)


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)


def caption_text(prompt: str) -> str:
    """The prompt's first CAPTION_CHARS characters, on one line, "…" when cut."""
    text = " ".join(prompt.split())
    return text if len(text) <= CAPTION_CHARS else text[: CAPTION_CHARS - 1].rstrip() + "…"


def size_tag(look: Look, requested: tuple[int, int], shown: tuple[int, int]) -> str:
    """The top line: the size the job asked for, the size shown when scaled down, the seed."""
    (rw, rh), (w, h) = requested, shown
    size = f"{rw}x{rh}" if (rw, rh) == (w, h) else f"{rw}x{rh} scaled down to {w}x{h}"
    return f"{size} · seed {look.seed}"


Band = tuple[Image.Image, tuple[int, int]]  # an RGBA strip and where it goes


def _bands(look: Look, requested: tuple[int, int], shown: tuple[int, int]) -> list[Band]:
    """The tag band (top) and the caption band (bottom), drawn once, pasted on every frame."""
    w, h = shown
    pad = max(2, w // 80)
    small = _font(max(8, w // 32))
    bands = [_band([size_tag(look, requested, shown)], small, w, pad, 120, (0, 0))]
    caption = caption_text(look.caption)
    if caption:
        font = _font(max(9, w // 22))
        lines = _wrap(caption, font, w - 2 * pad)
        band_h = _line_height(font) * len(lines) + 2 * pad
        bands.append(_band(lines, font, w, pad, 150, (0, h - band_h)))
    return bands


def _band(
    lines: list[str],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    width: int,
    pad: int,
    shade: int,
    at: tuple[int, int],
) -> Band:
    """White lines of text on a strip of black at `shade` opacity."""
    line_h = _line_height(font)
    band = Image.new("RGBA", (width, line_h * len(lines) + 2 * pad), (0, 0, 0, shade))
    draw = ImageDraw.Draw(band)
    for n, line in enumerate(lines):
        draw.text((pad, pad + n * line_h), line, font=font, fill=(255, 255, 255, 255))
    return band, at


def _line_height(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    return int(font.getbbox("Ag")[3]) + 2


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """The text in lines that fit `width` px (narrowing the wrap until they do)."""
    for chars in range(len(text), 0, -1):
        lines = textwrap.wrap(text, chars)
        if all(font.getlength(line) <= width for line in lines):
            return lines
    return [text]
