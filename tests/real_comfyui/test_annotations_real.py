"""Annotated file names ("x.png [output]") as real ComfyUI reads them, beside the emulator and the
worker's input rule. Each folder holds its own a.png, of its own size, so the size of the image
a LoadImage → SaveImage prompt saves says which folder the name was read from. Real ComfyUI
cuts "[output]", "[temp]", "[input]" or "[clipspace]" with whatever one character stands before
it (`folder_paths.annotated_filepath`), and refuses at /prompt a name whose file is not there.
The emulator must read every name where real ComfyUI does, and the worker, with
ALLOW_ANNOTATED_INPUTS off, must refuse every name real ComfyUI reads outside its input folder."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.real_comfyui.helpers import wait_for
from tests.real_comfyui.server import RealComfyUI
from tests.worker.conftest import Comfy, get_json
from worker.errors import InputError
from worker.inputs import parse_job_input
from worker.settings import Settings

SIZES = {"input": (4, 4), "output": (10, 6), "temp": (6, 10), "clipspace": (12, 12)}
NAMES = [
    "a.png",
    "a.png [input]",
    "a.png [output]",
    "a.png_[output]",  # any one character before the tag is cut with it
    "a.png[output]",  # no character before the tag: "a.pn" is looked for
    "a.png__[output]",  # two characters: "a.png_" is looked for
    "a.png\n[output]",
    "a.png [temp]",
    "a.png [clipspace]",
    "a.png [OUTPUT]",  # the tags are lower case only
    "a.png [output] ",  # the tag must end the name
]


def fill(comfy: Comfy) -> None:
    """An a.png of each folder's own size in each of the server's folders."""
    folders = {"input": comfy.input, "output": comfy.output, "temp": comfy.temp,
               "clipspace": comfy.input / "clipspace"}  # fmt: skip
    for name, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", SIZES[name]).save(folder / "a.png")


def read_from(comfy: Comfy, name: str) -> str:
    """Which folder `name` was read from ('refused' when /prompt refuses it)."""
    wf = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "a"}},
    }
    body = json.dumps({"prompt": wf, "client_id": "annotations"}).encode()
    req = urllib.request.Request(
        comfy.url + "/prompt", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            pid = json.loads(r.read())["prompt_id"]
    except urllib.error.HTTPError as e:
        assert e.code == 400, e.read()
        return "refused"
    entry = wait_for(lambda: get_json(f"{comfy.url}/history/{pid}"), "the prompt to end", 120)
    [item] = entry[pid]["outputs"]["2"]["images"]
    with Image.open(Path(comfy.output) / item["subfolder"] / item["filename"]) as img:
        return next(folder for folder, size in SIZES.items() if size == img.size)


def worker_refuses(name: str) -> bool:
    wf = {"1": {"class_type": "LoadImage", "inputs": {"image": name}}}
    try:
        parse_job_input({"workflow": wf}, Settings())
    except InputError:
        return True
    return False


@pytest.fixture
def emulator(tmp_path) -> Comfy:
    c = Comfy(tmp_path / "emulator")
    yield c
    c.stop()


def test_annotated_names_are_read_as_real_comfyui_reads_them(real: RealComfyUI, emulator: Comfy):
    for comfy in (real, emulator):
        fill(comfy)
    rows = {name: (read_from(real, name), read_from(emulator, name)) for name in NAMES}
    for name, (r, e) in rows.items():
        print(f"\nROW | {name!r} | real: {r} | emulator: {e}", end="")
    assert {n: e for n, (_, e) in rows.items()} == {n: r for n, (r, _) in rows.items()}
    # what real ComfyUI showed (0.3.64), so that a change on either side is seen
    assert rows["a.png_[output]"][0] == "output" and rows["a.png\n[output]"][0] == "output"
    assert rows["a.png[output]"][0] == rows["a.png__[output]"][0] == "refused"
    outside = [n for n, (r, _) in rows.items() if r in ("output", "temp")]
    assert outside and all(worker_refuses(n) for n in outside), outside
    assert not worker_refuses("a.png") and not worker_refuses("a.png [input]")
