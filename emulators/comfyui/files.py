"""`GET /view` and `POST /upload/image` with ComfyUI's rules.

/view: `filename` (optionally annotated " [output]"), `type` (default output), `subfolder`;
a name with `..` or starting with `/` → 400, a subfolder outside the folder → 403, a missing file →
404 with an empty body; the bytes with `Content-Type` from the extension and
`Content-Disposition: filename="<name>"`; `preview=webp;Q` / `jpeg;Q` re-encodes, `channel=rgb`/`a`
gives the colour or alpha channel as PNG.
/upload/image (multipart `image`, `overwrite`, `type`, `subfolder`): without overwrite a name clash
becomes "name (1).ext" unless the bytes are identical (then the name is kept); a missing file, a
`../` name or a subfolder outside the folder → 400 with an empty body; content is not checked.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from .state import get_state


def server_error() -> web.Response:
    """aiohttp's answer to an unhandled exception, which is what ComfyUI sends then."""
    return web.Response(
        status=500,
        text="500 Internal Server Error\n\nServer got itself in trouble",
        content_type="text/plain",
    )


def _inside(base: Path, path: Path) -> bool:
    return os.path.commonpath((str(base), str(path))) == str(base)


async def view(request: web.Request) -> web.StreamResponse:
    st = get_state(request)
    q = request.rel_url.query
    if "filename" not in q:
        return web.Response(status=404)
    filename = q["filename"]
    base: Path | None = None
    for typ in ("output", "input", "temp"):
        if filename.endswith(f" [{typ}]"):
            filename, base = filename[: -len(typ) - 3], st.dir_by_type(typ)
    if not filename or filename[0] == "/" or ".." in filename:
        return web.Response(status=400)
    if base is None:
        base = st.dir_by_type(q.get("type", "output"))
    if base is None:
        return web.Response(status=400)
    if "subfolder" in q:
        full = Path(os.path.abspath(base / q["subfolder"]))
        if not _inside(base, full):
            return web.Response(status=403)
        base = full
    filename = os.path.basename(filename)
    path = base / filename
    if not path.is_file():
        return web.Response(status=404)
    disposition = {"Content-Disposition": f'filename="{filename}"'}
    if "preview" in q:
        return _preview(path, q, disposition)
    if q.get("channel") in ("rgb", "a"):
        return _channel(path, q["channel"], disposition)
    ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if ctype in {
        "text/html",
        "text/html-sandboxed",
        "application/xhtml+xml",
        "text/javascript",
        "text/css",
    }:
        ctype = "application/octet-stream"
    return web.FileResponse(path, headers={**disposition, "Content-Type": ctype})


def _preview(path: Path, q: Any, headers: dict[str, str]) -> web.Response:
    info = q["preview"].split(";")
    fmt = info[0] if info[0] in ("webp", "jpeg") and "a" not in q.get("channel", "") else "webp"
    quality = int(info[-1]) if info[-1].isdigit() else 90
    with Image.open(path) as img:
        if fmt == "jpeg" or q.get("channel", "") == "rgb":
            img = img.convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format=fmt, quality=quality)
    return web.Response(body=buf.getvalue(), content_type=f"image/{fmt}", headers=headers)


async def upload_image(request: web.Request) -> web.Response:
    st = get_state(request)
    post = await request.post()
    image = post.get("image")
    overwrite = post.get("overwrite")
    typ = str(post.get("type", "input"))
    upload_dir = st.dir_by_type(typ) if typ else None  # an empty type is unknown to ComfyUI too
    if upload_dir is None or (image and not hasattr(image, "file")):
        # ComfyUI crashes here (unbound folder for an unknown type / a text field named image)
        return server_error()
    if not image:
        return web.Response(status=400)
    filename = image.filename
    if not filename:
        return web.Response(status=400)
    subfolder = str(post.get("subfolder", ""))
    folder = Path(os.path.join(upload_dir, os.path.normpath(subfolder)))
    filepath = Path(os.path.abspath(folder / filename))
    if not _inside(upload_dir, filepath):
        return web.Response(status=400)
    data = image.file.read()
    folder.mkdir(parents=True, exist_ok=True)
    stem, ext = os.path.splitext(filename)
    duplicate = False
    if overwrite not in ("true", "1"):
        i = 1
        while filepath.exists():
            if hashlib.sha256(filepath.read_bytes()).digest() == hashlib.sha256(data).digest():
                duplicate = True
                break
            filename = f"{stem} ({i}){ext}"
            filepath = folder / filename
            i += 1
    if not duplicate:
        filepath.write_bytes(data)
    return web.json_response({"name": filename, "subfolder": subfolder, "type": typ})


def _channel(path: Path, channel: str, headers: dict[str, str]) -> web.Response:
    """`channel=rgb`: the picture without alpha; `channel=a`: its alpha as an RGBA PNG."""
    with Image.open(path) as img:
        if channel == "rgb":
            out = img.convert("RGB")
        else:
            alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
            out = Image.new("RGBA", img.size)
            out.putalpha(alpha)
        buf = io.BytesIO()
        out.save(buf, format="PNG")
    return web.Response(body=buf.getvalue(), content_type="image/png", headers=headers)
