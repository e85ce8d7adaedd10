"""Pure validation of a job's input into a typed `JobRequest` (no I/O, no network).

Accepts exactly worker-comfyui's input (`workflow` as an object or JSON string, `images` as a list
of `{name, image}` with or without a data-URI prefix, `comfy_org_api_key`), and refuses what it
lets through: unknown keys, a workflow that is not a dict of nodes with `class_type` and `inputs`,
image names with path parts, duplicate names, content that is not a real PNG/JPEG/WebP, too many
or too large images, decompression bombs. Every refusal is an `InputError` naming the field, the
value and what is allowed.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import InputError
from .settings import Secret, Settings

ALLOWED_KEYS = ("workflow", "images", "comfy_org_api_key")
IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_EXTS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,199}$")
_DATA_URI = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageInput:
    name: str
    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int


@dataclass(frozen=True)
class JobRequest:
    workflow: dict[str, dict]
    images: tuple[ImageInput, ...] = ()
    comfy_org_api_key: Secret = field(default_factory=lambda: Secret(""))


def sniff_image(data: bytes) -> str | None:
    """'png' | 'jpeg' | 'webp' from the magic bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def parse_job_input(raw: object, settings: Settings) -> JobRequest:
    """Validate `job["input"]` and return a `JobRequest`, or raise `InputError`."""
    if raw is None or raw == "" or raw == {}:
        raise InputError("input", "is missing", "an object with a 'workflow' key")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError("input", f"is not valid JSON ({e.msg} at char {e.pos})") from None
    if not isinstance(raw, Mapping):
        raise InputError("input", "must be an object", "keys " + ", ".join(ALLOWED_KEYS), raw)
    unknown = sorted(set(raw) - set(ALLOWED_KEYS))
    if unknown:
        raise InputError(
            "input", f"unknown key(s) {', '.join(map(repr, unknown))}", ", ".join(ALLOWED_KEYS)
        )
    workflow = _workflow(raw.get("workflow"))
    images = _images(raw.get("images"), settings)
    key = raw.get("comfy_org_api_key")
    if key is not None and not isinstance(key, str):
        raise InputError("comfy_org_api_key", "must be a string", "a Comfy.org API key string")
    return JobRequest(
        workflow=workflow,
        images=images,
        comfy_org_api_key=Secret(key) if key else settings.comfy_org_api_key,
    )


def _workflow(wf: object) -> dict[str, dict]:
    if wf is None:
        raise InputError("workflow", "is missing", "a ComfyUI workflow in API format (object)")
    if isinstance(wf, str):
        try:
            wf = json.loads(wf)
        except json.JSONDecodeError as e:
            raise InputError("workflow", f"is not valid JSON ({e.msg} at char {e.pos})") from None
    if not isinstance(wf, Mapping) or not wf:
        raise InputError(
            "workflow",
            "must be a non-empty object of nodes",
            '{"<node id>": {"class_type": ..., "inputs": {...}}} (API format, not UI format)',
            wf if not isinstance(wf, Mapping) else None,
        )
    if "nodes" in wf and "links" in wf:
        raise InputError(
            "workflow",
            "looks like ComfyUI's UI format (has 'nodes' and 'links')",
            "the API format: in ComfyUI use Workflow > Export (API)",
        )
    for node_id, node in wf.items():
        where = f"workflow[{node_id!r}]"
        if not isinstance(node, Mapping):
            raise InputError(where, "must be an object", "{class_type, inputs}", node)
        ct = node.get("class_type")
        if not isinstance(ct, str) or not ct:
            raise InputError(f"{where}.class_type", "is missing or not a string", "a node class")
        if not isinstance(node.get("inputs"), Mapping):
            raise InputError(f"{where}.inputs", "is missing or not an object", "an object")
    return {str(k): dict(v) for k, v in wf.items()}


def _images(images: object, settings: Settings) -> tuple[ImageInput, ...]:
    if images is None:
        return ()
    if not isinstance(images, list):
        raise InputError("images", "must be a list", "a list of {name, image} objects", images)
    if len(images) > settings.max_images:
        raise InputError(
            "images", f"has {len(images)} items", f"at most {settings.max_images} (MAX_IMAGES)"
        )
    out: list[ImageInput] = []
    seen: set[str] = set()
    for i, item in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"name", "image"}:
            raise InputError(where, "must be an object with exactly 'name' and 'image'", "")
        name = item["name"]
        if not isinstance(name, str) or not _NAME_OK.match(name) or ".." in name:
            raise InputError(
                f"{where}.name",
                "is not a plain file name",
                "letters, digits, space . _ ( ) + -, no '/', '\\' or '..', up to 200 chars",
                name,
            )
        ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if ext not in _EXTS:
            raise InputError(
                f"{where}.name", "has an unsupported extension", ".png .jpg .jpeg .webp", name
            )
        if name in seen:
            raise InputError(f"{where}.name", "is a duplicate", "unique names", name)
        seen.add(name)
        out.append(_decode_image(where, name, item["image"], settings))
    return tuple(out)


def _decode_image(where: str, name: str, b64: object, settings: Settings) -> ImageInput:
    if not isinstance(b64, str) or not b64:
        raise InputError(
            f"{where}.image", "must be a non-empty base64 string", "base64 or a data URI"
        )
    m = _DATA_URI.match(b64)
    if m:
        b64 = b64[m.end() :]
    if len(b64) > (settings.max_image_bytes * 4) // 3 + 8:
        raise InputError(
            f"{where}.image",
            f"is about {len(b64) * 3 // 4} bytes",
            f"at most {settings.max_image_bytes} bytes (MAX_IMAGE_BYTES)",
        )
    if any(c.isspace() for c in b64[:100]) or "\n" in b64:
        b64 = "".join(b64.split())
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(
            f"{where}.image", "is not valid base64", "standard base64 (RFC 4648)"
        ) from None
    kind = sniff_image(data)
    if kind is None:
        raise InputError(
            f"{where}.image",
            f"is not a PNG, JPEG or WebP image (starts with {data[:8].hex()})",
            "PNG, JPEG, WebP",
        )
    ext_kind = _EXTS["." + name.rsplit(".", 1)[-1].lower()]
    if ext_kind != kind:
        raise InputError(
            f"{where}.name",
            f"says {ext_kind} but the content is {kind}",
            f"a .{kind if kind != 'jpeg' else 'jpg'} name",
            name,
        )
    width, height = _check_pixels(where, data, settings.max_image_pixels)
    return ImageInput(name=name, data=data, mime=IMAGE_TYPES[kind], width=width, height=height)


def _check_pixels(where: str, data: bytes, max_pixels: int) -> tuple[int, int]:
    from PIL import Image  # Pillow ships in every ComfyUI image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise InputError(
                        f"{where}.image",
                        f"is {w}x{h} = {w * h} pixels",
                        f"at most {max_pixels} pixels (MAX_IMAGE_PIXELS)",
                    )
                img.verify()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            f"{where}.image", "is a decompression bomb", f"at most {max_pixels} pixels"
        ) from None
    except Exception as e:
        raise InputError(
            f"{where}.image", f"is not a readable image ({type(e).__name__})", "a valid image"
        ) from None
    return w, h
