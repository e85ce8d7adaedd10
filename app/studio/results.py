"""A finished job's outputs saved as files, by ONE rule for the studio's tracker and the CLI.

`save_outputs(output, folder)` takes worker-comfyui's output (`{"images": [{"filename", "type":
"base64" | "s3_url", "data", "kind"?, "mime"?, "node_id"?}, ...]}`) and writes each item into
`folder`: a `base64` item decoded (never fetched, whatever its data looks like), an `s3_url` item
downloaded here, server-side, through app/studio/fetch.py's guard (https or the configured S3
endpoint only, no private addresses, size and time capped; the URL never reaches a browser). A file
name keeps its last part only, with anything but letters, digits, `.`, `_` and `-` replaced (a name
like `../x/v.mp4` stays inside `folder`); a name an earlier item of the job took (two save nodes'
`x_00001_.png` in their own subfolders) is numbered before its extension, `-2`, `-3`..., as the
worker numbers its S3 keys. `main_video(saved)` is the item the page plays.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.errors import FetchRefused
from app.studio.fetch import Fetcher, FetchSettings

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SavedOutput:
    path: Path
    filename: str
    size: int
    kind: str | None = None
    mime: str | None = None
    node_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "path": str(self.path)}


def safe_name(name: str) -> str:
    return _SAFE_NAME.sub("_", Path(name).name) or "output"


def free_name(name: str, taken: set[str]) -> str:
    """`name`, or numbered (`x-2.png`, `x-3.png`...) when `taken` has it; added to `taken`."""
    stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    n, free = 1, name
    while free in taken:
        n += 1
        free = f"{stem}-{n}{dot}{ext}"
    taken.add(free)
    return free


def save_outputs(
    output: object, folder: Path, fetcher: Fetcher | None = None, keep_existing: bool = False
) -> list[SavedOutput]:
    """Every output item of `output` as a file in `folder` (created when there is one);
    `fetcher` downloads s3_url items (default: https only, default limits); `keep_existing`:
    the files already in `folder` are not overwritten (a folder several jobs are saved to:
    ComfyUI's counter starts again in each job the worker cleans up after)."""
    items = output.get("images") if isinstance(output, Mapping) else None
    saved: list[SavedOutput] = []
    taken: set[str] = set()
    if keep_existing and folder.is_dir():
        taken = {p.name for p in folder.iterdir()}
    for i, item in enumerate(items or []):
        if not isinstance(item, Mapping):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / free_name(safe_name(str(item.get("filename") or f"output_{i}")), taken)
        data = str(item.get("data") or "")
        if item.get("type") == "s3_url":
            (fetcher or Fetcher(FetchSettings())).download(data, path)
        else:
            try:
                raw = base64.b64decode(data, validate=True)
            except binascii.Error:
                raise FetchRefused(f"output {path.name}: its data is not base64") from None
            path.write_bytes(raw)
        saved.append(
            SavedOutput(
                path, path.name, path.stat().st_size, item.get("kind"), item.get("mime"),
                item.get("node_id"),
            )
        )  # fmt: skip
    return saved


def main_video(saved: Sequence[SavedOutput]) -> SavedOutput:
    """The first video among the saved outputs (else the first output)."""
    return next((s for s in saved if (s.mime or "").startswith("video")), saved[0])
