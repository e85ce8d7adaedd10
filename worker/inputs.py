"""Pure validation of a job's input into a typed `JobRequest` (no I/O, no network).

Accepts worker-comfyui's input (`workflow` as an object or JSON string, `images` as a list of
`{name, image}` with or without a data-URI prefix, `comfy_org_api_key`). An `image` may also be
an `https://` URL: checked here as a URL (`url_problem`) and kept as an `ImageURL`, which the
handler's upload stage downloads (worker/fetch.py) and checks with `image_from_bytes`, the same
content checks as base64. Like worker-comfyui 5.x, unknown keys (top level and inside
`images[]`) are ignored; each one is named in `JobRequest.warnings` (returned under
`warnings`) so a typo stays visible. An image name may carry a relative subfolder
(`sub/test.png`, each segment a safe name), as ComfyUI's upload route does.
Refused: a workflow that is not a dict of nodes with `class_type` and `inputs`, input nested
deeper than `MAX_DEPTH`, file inputs of any node that point outside ComfyUI's input folder (`..`,
absolute paths, `[output]`/`[temp]` unless ALLOW_ANNOTATED_INPUTS), unsafe or duplicate image
names, content that is not a real PNG/JPEG/WebP, too many or too large images, decompression bombs
(every frame of an animated WebP/APNG counts). Every refusal is an `InputError` naming the field,
the value and what is allowed.

`job_upload_names(request, tag)` and `rewrite_image_refs(workflow, names)` place a job's uploads
in a folder of its own (`wanpod-<tag>/...`) and point the workflow at them: an upload never
overwrites a file the job did not create (ComfyUI's stock `example.png`, another job's input), so
clean-up never deletes one either, and workflows written for worker-comfyui (which refer to the
plain `name`) keep working.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import urllib.parse
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import InputError
from .settings import Secret, Settings

ALLOWED_KEYS = ("workflow", "images", "comfy_org_api_key")
IMAGE_KEYS = ("name", "image")
IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_EXTS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,199}$")
MAX_NAME_CHARS = 200
# Real workflows nest 4-6 levels (input > workflow > node > inputs > value > list); 64 leaves room
# for custom nodes' structured values and stays far below Python's recursion limit (json, repr
# and deepcopy of a 5,000-deep object raise RecursionError).
MAX_DEPTH = 64
UPLOAD_FOLDER_PREFIX = "wanpod-"
# Inputs that name a file ComfyUI reads (LoadImage's `image`, LoadVideo's `file`, ...); any other
# string input is a file reference too when it ends in a media extension.
FILE_INPUT_NAMES = frozenset(
    {"image", "mask", "video", "file", "audio", "image_path", "path", "latent"}  # LoadLatent's
)
_MEDIA_EXT = re.compile(
    r"\.(png|jpe?g|webp|gif|bmp|tiff?|mp4|webm|mov|mkv|avi|wav|mp3|flac|ogg|opus|m4a)$",
    re.IGNORECASE,
)
# ComfyUI's folder_paths.annotated_filepath: a name ending in "[output]" (or another folder's
# tag) reads that folder, the tag and ONE character before it cut ("x.png [output]" is meant,
# "x.png_[output]" reads output/x.png all the same)
_ANNOTATION = re.compile(r"(?s).?\[(input|output|temp|clipspace)\]$")
# Any `scheme://` prefix: base64 never contains ':', so such a value is meant as a URL.
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,15}://")
# Browsers and CDNs handle 8 KB; signed storage URLs run to ~2 KB.
MAX_URL_CHARS = 8192
_DATA_URI = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageInput:
    name: str  # as the client gave it: "a.png" or "sub/a.png"
    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    frames: int = 1

    @property
    def subfolder(self) -> str:
        return self.name.rpartition("/")[0]

    @property
    def filename(self) -> str:
        return self.name.rpartition("/")[2]


@dataclass(frozen=True)
class ImageURL:
    """An input image the worker downloads in its upload stage (worker/fetch.py) and then
    checks like a base64 one (`image_from_bytes`). `url` never goes to a log line: use
    `shown`, which drops the query (it often carries a signature)."""

    where: str  # "images[0]": what refusals name
    name: str
    url: str = field(repr=False)

    @property
    def shown(self) -> str:
        return url_for_logs(self.url)


@dataclass(frozen=True)
class JobRequest:
    workflow: dict[str, dict]
    images: tuple[ImageInput | ImageURL, ...] = ()
    comfy_org_api_key: Secret = field(default_factory=lambda: Secret(""))
    warnings: tuple[str, ...] = ()


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
    if raw is None or raw == "":
        raise InputError("input", "is missing", "an object with a 'workflow' key")
    if isinstance(raw, str):
        raw = _json("input", raw)
    if not isinstance(raw, Mapping):
        raise InputError("input", "must be an object", "keys " + ", ".join(ALLOWED_KEYS), raw)
    if not raw:
        raise InputError("input", "is an empty object", "an object with a 'workflow' key")
    _check_depth("input", raw)
    warns = [
        f"input: unknown key {k!r} ignored (known: {', '.join(ALLOWED_KEYS)})"
        for k in sorted(map(str, set(raw) - set(ALLOWED_KEYS)))
    ]
    workflow = _workflow(raw.get("workflow"))
    _check_file_refs(workflow, settings.allow_annotated_inputs)
    images = _images(raw.get("images"), settings, warns)
    key = raw.get("comfy_org_api_key")
    if key is not None and not isinstance(key, str):
        raise InputError("comfy_org_api_key", "must be a string", "a Comfy.org API key string")
    return JobRequest(
        workflow=workflow,
        images=images,
        comfy_org_api_key=Secret(key) if key else settings.comfy_org_api_key,
        warnings=tuple(warns),
    )


def _json(where: str, text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(where, f"is not valid JSON ({e.msg} at char {e.pos})") from None
    except RecursionError:
        raise InputError(
            where, "is nested too deeply to read", f"at most {MAX_DEPTH} levels of nesting"
        ) from None


def _check_depth(where: str, value: object) -> None:
    """Refuse objects/lists nested deeper than MAX_DEPTH (iteratively: no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(
                where,
                f"is nested deeper than {MAX_DEPTH} levels",
                f"at most {MAX_DEPTH} levels of nesting",
            )
        if isinstance(v, Mapping):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list | tuple):
            stack.extend((x, depth + 1) for x in v)


def _workflow(wf: object) -> dict[str, dict]:
    if wf is None:
        raise InputError("workflow", "is missing", "a ComfyUI workflow in API format (object)")
    if isinstance(wf, str):
        wf = _json("workflow", wf)
        _check_depth("workflow", wf)
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


def _file_ref_problem(value: str, allow_annotated: bool) -> str | None:
    """Why a file name a node would read lies outside ComfyUI's input folder (None: it does not)."""
    m = _ANNOTATION.search(value)
    name = value[: m.start()] if m else value
    if m and m.group(1) != "input" and not allow_annotated:
        return f"reads ComfyUI's {m.group(1)} folder (the '[{m.group(1)}]' annotation)"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "climbs out of the folder with '..'"
    return None


def _check_file_refs(workflow: Mapping[str, dict], allow_annotated: bool) -> None:
    """Refuse file inputs of any node that point outside ComfyUI's input folder: ComfyUI joins
    the name to the folder without a containment check, so `../x` or `/etc/x` would be read."""
    for node_id, node in workflow.items():
        for name, value in node["inputs"].items():
            if not isinstance(value, str):
                continue
            if name not in FILE_INPUT_NAMES:  # a file by its extension: not a prompt's text
                if "\n" in value or len(value) > 1024:
                    continue
                if not _MEDIA_EXT.search(_ANNOTATION.sub("", value)):
                    continue
            problem = _file_ref_problem(value, allow_annotated)
            if problem:
                raise InputError(
                    f"workflow[{node_id!r}] ({node['class_type']}) input {name!r}",
                    f"{problem}: it points outside ComfyUI's input folder",
                    "a file in the input folder (upload it with `images`)"
                    + (
                        "; '[output]'/'[temp]' with ALLOW_ANNOTATED_INPUTS=true"
                        if not allow_annotated
                        else ""
                    ),
                    value,
                )


def image_name_problem(name: object) -> str | None:
    """Why `name` is not a safe relative image name (None when it is)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        return "is not a file name"
    parts = name.split("/")
    if any(not _NAME_OK.match(p) or p.startswith("..") or p == "." for p in parts):
        return "is not a safe relative file name"
    return None


def job_upload_folder(tag: str) -> str:
    """The input subfolder this job's uploads go to (no other job or file shares it)."""
    return UPLOAD_FOLDER_PREFIX + "".join(c for c in tag if c.isalnum() or c in "-_")[:64]


def rewrite_image_refs(workflow: Mapping[str, dict], names: Mapping[str, str]) -> dict[str, dict]:
    """The workflow with every string input equal to an uploaded image's client name (or that
    name annotated ' [input]') replaced by where the upload really went."""
    out: dict[str, dict] = {}
    for node_id, node in workflow.items():
        inputs = dict(node["inputs"])
        for key, value in inputs.items():
            if isinstance(value, str):
                bare = value[: -len(" [input]")] if value.endswith(" [input]") else value
                if bare in names:
                    inputs[key] = names[bare]
        out[node_id] = {**node, "inputs": inputs}
    return out


def _images(
    images: object, settings: Settings, warns: list[str]
) -> tuple[ImageInput | ImageURL, ...]:
    if images is None:
        return ()
    if not isinstance(images, list):
        raise InputError("images", "must be a list", "a list of {name, image} objects", images)
    if len(images) > settings.max_images:
        raise InputError(
            "images", f"has {len(images)} items", f"at most {settings.max_images} (MAX_IMAGES)"
        )
    out: list[ImageInput | ImageURL] = []
    seen: set[str] = set()
    for i, item in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(item, Mapping) or not {"name", "image"} <= set(item):
            raise InputError(where, "must be an object with 'name' and 'image'", "")
        warns.extend(
            f"{where}: unknown key {k!r} ignored (known: {', '.join(IMAGE_KEYS)})"
            for k in sorted(map(str, set(item) - set(IMAGE_KEYS)))
        )
        name = item["name"]
        problem = image_name_problem(name)
        if problem:
            raise InputError(
                f"{where}.name",
                problem,
                "a file name or relative path: segments of letters, digits, space . _ ( ) + - "
                "separated by '/', no '\\', no '..', no leading '/', up to 200 chars",
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
        out.append(_image(where, name, item["image"], settings))
    return tuple(out)


def _image(where: str, name: str, value: object, settings: Settings) -> ImageInput | ImageURL:
    if isinstance(value, str) and _URL_SCHEME.match(value):
        problem = url_problem(value, settings.image_url_allow_http)
        if problem:
            raise InputError(
                f"{where}.image",
                problem,
                url_allowed(settings.image_url_allow_http),
                url_for_logs(value),
            )
        return ImageURL(where=where, name=name, url=value)
    return _decode_image(where, name, value, settings)


def _decode_image(where: str, name: str, b64: object, settings: Settings) -> ImageInput:
    if not isinstance(b64, str) or not b64:
        raise InputError(
            f"{where}.image", "must be a non-empty base64 string", "base64, a data URI or a URL"
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
        try:  # whitespace further on (a '\r', a space pasted in): left out, as worker-comfyui
            data = base64.b64decode("".join(b64.split()), validate=True)
        except (binascii.Error, ValueError):
            raise InputError(
                f"{where}.image", "is not valid base64", "standard base64 (RFC 4648) or a URL"
            ) from None
    return image_from_bytes(where, name, data, settings)


def image_from_bytes(where: str, name: str, data: bytes, settings: Settings) -> ImageInput:
    """The content checks every input image passes, however it came (base64 or a download):
    a real PNG/JPEG/WebP matching the name's extension, within MAX_IMAGE_PIXELS."""
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
    width, height, frames = _check_pixels(where, data, settings.max_image_pixels)
    return ImageInput(
        name=name, data=data, mime=IMAGE_TYPES[kind], width=width, height=height, frames=frames
    )


def url_for_logs(url: str, limit: int = 160) -> str:
    """`url` without its query, fragment and user info (a query often carries a signature):
    the only form of an image URL that reaches a log line or an error message."""
    try:
        p = urllib.parse.urlsplit(url)
        host = p.hostname or ""
        port = f":{p.port}" if p.port else ""
    except ValueError:
        return "<unparsable URL>"
    host = f"[{host}]" if ":" in host else host
    shown = f"{p.scheme}://{host}{port}{p.path}"
    if p.query:
        shown += "?<query hidden>"
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def url_allowed(allow_http: bool) -> str:
    """What an image URL may be (the `allowed` part of a refused URL)."""
    if allow_http:
        return "an https:// or http:// URL without user info, or base64"
    return "an https:// URL without user info (http:// with IMAGE_URL_ALLOW_HTTP=true), or base64"


def url_problem(url: str, allow_http: bool) -> str | None:
    """Why `url` cannot be downloaded as an input image (None: it may be fetched). Checked for
    the job's URL and again for every redirect target; the address is checked at connect time."""
    if len(url) > MAX_URL_CHARS:
        return f"is a URL of {len(url)} characters (at most {MAX_URL_CHARS})"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "is a URL with spaces or control characters"
    try:
        p = urllib.parse.urlsplit(url)
        p.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        return f"is not a valid URL ({e})"
    scheme = p.scheme.lower()
    if scheme == "http" and not allow_http:
        return "is a plain http:// URL (not encrypted)"
    if scheme not in ("http", "https"):
        return f"uses the {scheme}:// scheme"
    if not p.hostname:
        return "is a URL without a host"
    if p.username is not None or p.password is not None:
        return "is a URL with a user name or password in it"
    return None


def _check_pixels(where: str, data: bytes, max_pixels: int) -> tuple[int, int, int]:
    """Width, height and frame count; every frame of an animated WebP/APNG counts against
    `max_pixels` (LoadImage decodes them all)."""
    from PIL import Image  # Pillow ships in every ComfyUI image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                frames = int(getattr(img, "n_frames", 1) or 1)
                if w * h * frames > max_pixels:
                    shape = f"{w}x{h}" + (f" x {frames} frames" if frames > 1 else "")
                    raise InputError(
                        f"{where}.image",
                        f"is {shape} = {w * h * frames} pixels",
                        f"at most {max_pixels} pixels, all frames together (MAX_IMAGE_PIXELS)",
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
    return w, h, frames
