"""Looking at an emulated video: decode it (PyAV), compare pictures, make input images.
No emulator import: the app environment's chain tests use it too."""

from __future__ import annotations

import io
from fractions import Fraction

import av
from PIL import Image, ImageChops, ImageOps, ImageStat

START = [(230, 40, 40), (40, 200, 60), (40, 70, 220), (240, 220, 40)]
END = [(250, 250, 250), (20, 20, 20), (160, 40, 200), (30, 200, 210)]


def grid(palette: list[tuple[int, int, int]], size: tuple[int, int] = (832, 480)) -> bytes:
    """A 4x4 checker of the palette's colours as PNG bytes: it looks different when zoomed."""
    w, h = size
    img = Image.new("RGB", size)
    for row in range(4):
        for col in range(4):
            box = (col * w // 4, row * h // 4, (col + 1) * w // 4, (row + 1) * h // 4)
            img.paste(palette[(row + col) % len(palette)], box)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class Video:
    """A decoded mp4: its bytes, its fps, its frames (RGB pictures) and their size."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        with av.open(io.BytesIO(data)) as c:
            stream = c.streams.video[0]
            self.fps = Fraction(stream.average_rate)
            self.frames = [f.to_image() for f in c.decode(stream)]
        self.size = self.frames[0].size


def middle(img: Image.Image) -> Image.Image:
    """The picture between the tag band (top) and the caption band (bottom)."""
    w, h = img.size
    return img.crop((0, h // 4, w, h * 3 // 5))


def distance(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (0..255) of two pictures, compared at 32x18."""
    a, b = a.resize((32, 18)), b.resize((32, 18))
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def seen(png: bytes, size: tuple[int, int]) -> Image.Image:
    """What WanImageToVideo makes of an input image: centre-cropped and scaled to the video."""
    return ImageOps.fit(Image.open(io.BytesIO(png)).convert("RGB"), size)
