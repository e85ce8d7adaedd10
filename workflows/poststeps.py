"""Optional post-steps after decoding, before the video is written: upscale x2, smooth motion x2.

Both are named fill parameters (see workflows/fill.py) on every template, read from the catalog's
`post_steps` section:
- `upscale` (true/false) and `upscale_model` (a file of the endpoint's `upscale_models` folder,
  default the catalog's): UpscaleModelLoader -> ImageUpscaleWithModel (the model's own factor,
  often 4x) -> ImageScale to exactly 2x the generated width and height. Core nodes.
- `interpolate` (true/false) and `interpolate_model` (one of the RIFE node's checkpoints): the
  RIFE VFI node of ComfyUI-Frame-Interpolation with multiplier 2, so N frames become 2N - 1 and
  the video's fps doubles. A custom node: its schema is recorded from source in
  workflows/data/ (`custom_schema(nodes)` merges it only for an endpoint whose inventory has the
  class) and `unavailable(nodes)` says what to install when it is missing.
`choose(given)` checks the parameters (ParamError naming the parameter); `apply(...)` inserts the
nodes into a workflow and returns the video they make (`Output`: size, frames, fps).
`native_factor(name)`: an upscale model's own factor as its file name says it (`4x-UltraSharp.pth`,
`RealESRGAN_x2plus.pth`; 4 when the name does not say: most published upscale models are 4x), the
rule the quote and the ComfyUI emulator share (real ComfyUI reads it from the weights). Pure.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from workflows.catalog import PACKAGE, load_catalog
from workflows.errors import ParamError

PARAMS = ("upscale", "upscale_model", "interpolate", "interpolate_model")
MODEL_FILE = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[^\\\x00-\x1f]{1,255}$")
UPSCALE_EXTENSIONS = (".pth", ".safetensors", ".pt", ".ckpt", ".bin", ".pkl", ".sft", ".pt2")
UPSCALE_FACTOR = re.compile(r"(?:^|[^0-9a-z])(?:([1-8])x|x([1-8])(?![0-9]))")
DEFAULT_UPSCALE = 4  # most published upscale models (ESRGAN, UltraSharp, Nomos...) are 4x


def native_factor(name: str) -> int:
    """The upscale model's own factor read from its file name (`2x_...`, `..._x2plus`), else 4."""
    m = UPSCALE_FACTOR.search(name.rsplit("/", 1)[-1].lower())
    return int(m.group(1) or m.group(2)) if m else DEFAULT_UPSCALE


@dataclass(frozen=True)
class Upscale:
    factor: int
    method: str  # ImageScale upscale_method from the model's size to exactly factor x
    default_model: str
    title: str = ""


@dataclass(frozen=True)
class Interpolate:
    node: str  # the custom node's class name
    multiplier: int
    default_model: str
    package: str
    install: str
    schema: Mapping[str, Any]  # the recorded /object_info entries of the package's node(s)
    title: str = ""

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.schema[self.node]["input"]["required"]["ckpt_name"][0])

    def frames(self, frames: int) -> int:
        """Frames out of the node for `frames` in (read from its source: every pair of frames
        gets multiplier - 1 new ones between them, the last frame is kept once)."""
        return (frames - 1) * self.multiplier + 1 if frames > 1 else frames


@dataclass(frozen=True)
class PostSteps:
    upscale: Upscale
    interpolate: Interpolate


@dataclass(frozen=True)
class Choice:
    """What a job asked for: None = the step is off."""

    upscale_model: str | None = None
    interpolate_model: str | None = None

    def to_params(self) -> dict[str, Any]:
        """The recipe: only the steps that are on (fill takes this back unchanged)."""
        out: dict[str, Any] = {}
        if self.upscale_model is not None:
            out.update(upscale=True, upscale_model=self.upscale_model)
        if self.interpolate_model is not None:
            out.update(interpolate=True, interpolate_model=self.interpolate_model)
        return out


@dataclass(frozen=True)
class Output:
    """The video a filled workflow writes (after the post-steps)."""

    width: int
    height: int
    frames: int
    fps: float


@dataclass(frozen=True)
class Applied:
    output: Output
    nodes: dict[str, str] = field(default_factory=dict)  # node id -> "upscale" | "interpolate"
    notes: tuple[str, ...] = ()


@cache
def post_steps() -> PostSteps:
    raw = load_catalog().post_steps
    up, it = dict(raw["upscale"]), dict(raw["interpolate"])
    doc = json.loads((PACKAGE / it.pop("schema")).read_text(encoding="utf-8"))
    it.pop("description", None)
    up.pop("description", None)
    return PostSteps(Upscale(**up), Interpolate(schema=doc["nodes"], **it))


def custom_schema(nodes: Iterable[str]) -> dict[str, Any]:
    """Recorded schemas of the custom node classes in `nodes` (an inventory's class names), to
    merge into an /object_info before `check`; empty when the endpoint lacks them."""
    schema = post_steps().interpolate.schema
    have = set(nodes)
    return {cls: copy.deepcopy(info) for cls, info in schema.items() if cls in have}


def unavailable(nodes: Iterable[str]) -> dict[str, str]:
    """Post-step -> why it cannot run on an endpoint with these node classes (and what to do)."""
    it = post_steps().interpolate
    if it.node in set(nodes):
        return {}
    return {
        "interpolate": f"the endpoint's ComfyUI has no {it.node!r} node: install the {it.package} "
        f"custom nodes ({it.install}) in the worker image"
    }


def choose(given: Mapping[str, object]) -> Choice:
    """The post-step parameters of `given` checked (ParamError naming the parameter)."""
    steps = post_steps()
    on = {name: _flag(name, given.get(name, False)) for name in ("upscale", "interpolate")}
    up = given.get("upscale_model")
    if up is not None and not on["upscale"]:
        raise ParamError("upscale_model", up, "only with upscale: true")
    it = given.get("interpolate_model")
    if it is not None and not on["interpolate"]:
        raise ParamError("interpolate_model", it, "only with interpolate: true")
    if on["upscale"]:
        up = steps.upscale.default_model if up is None else up
        if not (
            isinstance(up, str) and MODEL_FILE.match(up) and up.lower().endswith(UPSCALE_EXTENSIONS)
        ):
            raise ParamError(
                "upscale_model",
                up,
                "a file of the endpoint's upscale_models folder, nested ones as sub/file ("
                + " ".join(UPSCALE_EXTENSIONS)
                + f"), e.g. {steps.upscale.default_model}",
            )
    if on["interpolate"]:
        it = steps.interpolate.default_model if it is None else it
        if it not in steps.interpolate.models:
            raise ParamError(
                "interpolate_model", it, ", ".join(steps.interpolate.models) + " (RIFE checkpoints)"
            )
    return Choice(str(up) if on["upscale"] else None, str(it) if on["interpolate"] else None)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ParamError(name, value, "true or false")
    return value


def apply(
    wf: dict[str, Any],
    choice: Choice,
    video_node: str,
    width: int,
    height: int,
    frames: int,
    fps: float,
) -> Applied:
    """Insert the chosen steps before `video_node`'s (CreateVideo's) images input; set its fps."""
    steps = post_steps()
    tip = wf[video_node]["inputs"]["images"]
    nodes: dict[str, str] = {}
    notes: list[str] = []
    if choice.upscale_model is not None:
        u = steps.upscale
        loader = _add(wf, "UpscaleModelLoader", {"model_name": choice.upscale_model}, "Upscale")
        up = _add(
            wf,
            "ImageUpscaleWithModel",
            {"upscale_model": [loader, 0], "image": tip},
            "Upscale with model",
        )
        width, height = width * u.factor, height * u.factor
        scale = _add(
            wf,
            "ImageScale",
            {
                "image": [up, 0],
                "upscale_method": u.method,
                "width": width,
                "height": height,
                "crop": "disabled",
            },
            f"Scale to exactly {u.factor}x",
        )
        nodes.update({loader: "upscale", up: "upscale", scale: "upscale"})
        notes.append(f"upscale x{u.factor} with {choice.upscale_model}: {width}x{height}")
        tip = [scale, 0]
    if choice.interpolate_model is not None:
        it = steps.interpolate
        inputs = _defaults(it.schema[it.node])
        inputs.update(ckpt_name=choice.interpolate_model, frames=tip, multiplier=it.multiplier)
        rife = _add(wf, it.node, inputs, f"Smooth motion x{it.multiplier}")
        nodes[rife] = "interpolate"
        out, fps_out = it.frames(frames), fps * it.multiplier
        notes.append(
            f"smooth motion x{it.multiplier} ({choice.interpolate_model}): {frames} -> {out} "
            f"frames, {fps:g} -> {fps_out:g} fps"
        )
        frames, fps = out, fps_out
        tip = [rife, 0]
    wf[video_node]["inputs"]["images"] = tip
    wf[video_node]["inputs"]["fps"] = fps
    return Applied(Output(width, height, frames, fps), nodes, tuple(notes))


def _defaults(info: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's default for every required input that has one (links are set by the caller)."""
    out = {}
    for name, spec in info["input"]["required"].items():
        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
        if "default" in opts:
            out[name] = opts["default"]
    return out


def new_id(wf: Mapping[str, Any]) -> str:
    """The next free numeric node id (ComfyUI's own ids are numbers; any string would do)."""
    return str(max((int(k) for k in wf if str(k).isdigit()), default=0) + 1)


def _add(wf: dict[str, Any], cls: str, inputs: dict[str, Any], title: str) -> str:
    node_id = new_id(wf)
    wf[node_id] = {"class_type": cls, "inputs": inputs, "_meta": {"title": title}}
    return node_id
