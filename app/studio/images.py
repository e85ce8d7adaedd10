"""Start/end images: check, fit to the chosen video size, re-encode small enough for /run.

RunPod's /run takes at most 10 MB of JSON; images travel base64 inside it (worker-comfyui's
`images: [{"name", "image"}]`). `prepare_image()` opens the file with Pillow (refusing what is
not an image, is truncated, or is absurdly large), applies EXIF rotation, crops to the video's
aspect ratio around the centre, resizes to exactly width x height, and re-encodes as PNG or, when
that is too big, JPEG at falling quality until it fits `max_bytes`. Errors are ImageError naming
the field.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import ImageError

MAX_IMAGE_BYTES = 3 * 1024 * 1024  # per image, before base64 (x4/3): two images + workflow fit
MAX_SOURCE_PIXELS = 64_000_000
MAX_SOURCE_BYTES = 50 * 1024 * 1024
# The shortest side an image may have: below it, the video's first frame is mostly upscaling blur
# (a 1x1 or icon-sized image is accepted by Pillow but useless as a start or end frame).
MIN_IMAGE_SIDE = 128


@dataclass(frozen=True)
class PreparedImage:
    name: str
    data: bytes
    mime: str
    width: int
    height: int
    note: str

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def payload(self) -> dict[str, str]:
        """worker-comfyui's image entry."""
        return {"name": self.name, "image": self.b64}


def prepare_image(
    source: str | Path | bytes,
    width: int,
    height: int,
    *,
    field: str,
    name: str,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> PreparedImage:
    raw = Path(source).read_bytes() if isinstance(source, str | Path) else bytes(source)
    if not raw:
        raise ImageError(field, "the file is empty; allowed: PNG, JPEG or WebP images")
    if len(raw) > MAX_SOURCE_BYTES:
        raise ImageError(
            field,
            f"the file is {len(raw) / 1e6:.0f} MB; allowed: up to {MAX_SOURCE_BYTES >> 20} MB",
        )
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            fmt = probe.format or "?"
            w0, h0 = probe.size
            if w0 * h0 > MAX_SOURCE_PIXELS:
                raise ImageError(
                    field, f"{w0}x{h0} pixels is too large; allowed: up to 64 megapixels"
                )
            probe.load()
            img = ImageOps.exif_transpose(probe).convert("RGB")
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(
            field, f"not a readable image ({type(exc).__name__}); allowed: PNG, JPEG or WebP"
        ) from None
    check_size(w0, h0, field)
    fitted = ImageOps.fit(img, (width, height), method=Image.Resampling.LANCZOS)
    note = f"{fmt} {w0}x{h0} " + fit_note(w0, h0, width, height)
    buf = io.BytesIO()
    fitted.save(buf, format="PNG", optimize=True)
    data, mime, ext = buf.getvalue(), "image/png", "png"
    quality = 95
    while len(data) > max_bytes and quality >= 40:
        buf = io.BytesIO()
        fitted.save(buf, format="JPEG", quality=quality)
        data, mime, ext = buf.getvalue(), "image/jpeg", "jpg"
        quality -= 10
    if len(data) > max_bytes:
        raise ImageError(field, f"cannot re-encode under {max_bytes >> 20} MB at {width}x{height}")
    if ext == "jpg":
        note += f", re-encoded as JPEG q{quality + 10}"
    stem = name.rsplit(".", 1)[0]
    return PreparedImage(
        name=f"{stem}.{ext}", data=data, mime=mime, width=width, height=height, note=note
    )


def check_size(w0: int, h0: int, field: str) -> None:
    """Refuse an image too small to be a useful frame (see MIN_IMAGE_SIDE)."""
    if min(w0, h0) < MIN_IMAGE_SIDE:
        raise ImageError(
            field,
            f"{w0}x{h0} pixels is too small; allowed: at least {MIN_IMAGE_SIDE} pixels on the "
            "shortest side",
        )


def image_size(source: str | Path, field: str) -> tuple[int, int]:
    """An image's size after EXIF rotation, read from its header (refusing what is not one)."""
    try:
        with Image.open(source) as probe:
            w, h = probe.size
            if (probe.getexif() or {}).get(0x0112) in (5, 6, 7, 8):  # rotated a quarter turn
                w, h = h, w
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(
            field, f"not a readable image ({type(exc).__name__}); allowed: PNG, JPEG or WebP"
        ) from None
    return w, h


def fit_note(w0: int, h0: int, width: int, height: int) -> str:
    """What fitting a w0 x h0 image to the video's width x height does to it, in words."""
    if (w0, h0) == (width, height):
        return "kept as is"
    crop = ""
    if abs(w0 / h0 - width / height) > 0.01:
        scale = max(width / w0, height / h0)
        cw, ch = round(width / scale), round(height / scale)
        crop = (
            f"centre-cropped to {cw}x{ch} (aspect {_aspect(w0, h0)} → {_aspect(width, height)}), "
        )
        w0, h0 = cw, ch
    factor = width / w0
    if abs(factor - 1) < 0.005:
        return f"{crop[:-2]}; not scaled" if crop else "kept as is"
    how = "upscaled" if factor > 1 else "downscaled"
    return f"{crop}{how} ×{factor:.2f} to {width}x{height}"


def _aspect(w: int, h: int) -> str:
    return "square" if abs(w / h - 1) < 0.02 else f"{w / h:.2f}:1"


def closest_aspect(w0: int, h0: int, sizes: dict[str, tuple[int, int]]) -> str:
    """The label of the size (label -> width, height) whose aspect ratio is nearest w0:h0."""
    return min(sizes, key=lambda k: abs(math.log((sizes[k][0] / sizes[k][1]) / (w0 / h0))))
