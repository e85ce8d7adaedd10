"""Collect every non-temp output file ComfyUI reported, as typed `OutputFile`s.

Input: `{node_id: output}` from `executed` messages or `/history` (`outputs`). Each output may hold
`images` (with `animated: [true]` meaning an animation/video, e.g. core SaveVideo's mp4), `gifs`
(VideoHelperSuite's VHS_VideoCombine), `videos`, `audio`. Temp files (previews) are skipped; the
same file (type, subfolder, name) is returned once. Kind and MIME type come from the extension.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FILE_KEYS = ("images", "gifs", "videos", "video", "audio")
_VIDEO = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"}
_AUDIO = {".flac", ".mp3", ".wav", ".opus", ".ogg", ".m4a", ".aac"}
_ANIM = {".gif", ".apng"}
_MIME = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".png": "image/png",
    ".apng": "image/apng",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".opus": "audio/ogg",
    ".ogg": "audio/ogg",
    ".json": "application/json",
    ".txt": "text/plain",
}


@dataclass(frozen=True)
class OutputFile:
    node_id: str
    filename: str
    subfolder: str
    type: str
    kind: str  # video | image | audio | animation | file
    mime: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.type, self.subfolder, self.filename)


def classify(filename: str, animated: bool) -> tuple[str, str]:
    ext = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    mime = _MIME.get(ext) or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if ext in _VIDEO:
        kind = "video"
    elif ext in _AUDIO:
        kind = "audio"
    elif ext in _ANIM or (animated and mime.startswith("image/")):
        kind = "animation"
    elif mime.startswith("image/"):
        kind = "image"
    else:
        kind = "file"
    return kind, mime


def collect(outputs: Mapping[str, Mapping]) -> list[OutputFile]:
    """Every non-temp file of every output node, deduplicated, in node then file order."""
    seen: set[tuple[str, str, str]] = set()
    files: list[OutputFile] = []
    for node_id, out in outputs.items():
        if not isinstance(out, Mapping):
            continue
        animated_flags = out.get("animated") or []
        animated = (
            any(bool(a) for a in animated_flags) if isinstance(animated_flags, list) else False
        )
        for key in FILE_KEYS:
            items = out.get(key)
            if not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, Mapping) or not item.get("filename"):
                    continue
                ftype = item.get("type") or "output"
                if ftype == "temp":
                    continue
                fname = str(item["filename"])
                kind, mime = classify(fname, animated and key == "images")
                f = OutputFile(
                    str(node_id), fname, str(item.get("subfolder") or ""), ftype, kind, mime
                )
                if f.key in seen:
                    continue
                seen.add(f.key)
                files.append(f)
    return files


def websocket_files(images: Sequence[tuple[str, str, bytes]]) -> list[tuple[OutputFile, bytes]]:
    """Images a websocket output node sent (node id, mime, bytes) as output files named
    `websocket_<node>_<n>_.<ext>` (counted per node, like ComfyUI's save names)."""
    counts: dict[str, int] = {}
    out: list[tuple[OutputFile, bytes]] = []
    for node_id, mime, data in images:
        counts[node_id] = counts.get(node_id, 0) + 1
        ext = "jpg" if mime == "image/jpeg" else "png"
        name = f"websocket_{node_id}_{counts[node_id]:05}_.{ext}"
        out.append((OutputFile(node_id, name, "", "websocket", "image", mime), data))
    return out
