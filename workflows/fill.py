"""Fill a catalog template from named parameters: `fill(template_id, params) -> FilledWorkflow`.

Pure apart from two deliberate draws per call: a fresh seed (unless `seed` is given) and a unique
job id for the SaveVideo prefix and upload names (so ComfyUI never serves a cached result).
Parameters (see workflows/catalog.yaml for ranges and defaults per template and mode):
mode, prompt, negative_prompt, resolution (preset label) or width/height, seconds or frames, fps,
steps, split, cfg, shift, sampler, scheduler, seed, lora_high, lora_low, start_image, end_image,
output_prefix; on every template also `loras` (the user's own LoRAs, workflows/loras.py) and the
post-steps upscale, upscale_model, interpolate, interpolate_model (workflows/poststeps.py).
`None` means "not given". What fill guarantees:
- duration snaps to 4n+1 frames at the fps (a note says what it did); sizes must be on the model's
  grid (16 for 14B, 32 for 5B); every value within its range and step, else ParamError naming the
  parameter, the value and what is allowed;
- both experts share steps, cfg, sampler and scheduler; expert 1 ends where expert 2 starts (split,
  default steps/2); quality mode removes the LoRA nodes; the VAE is the template's (wan_2.1 for 14B,
  wan2.2 for 5B) and cannot be changed;
- `.images` maps each LoadImage file name the worker must upload to "start_image"/"end_image";
- user LoRAs: a LoraLoaderModelOnly chain on each expert's model path, right after the template's
  own LoRA (turbo) or the UNETLoader (quality), before ModelSamplingSD3: a pair's high file on the
  high-noise expert, its low file on the low-noise one, a single on both; the 5B takes singles;
- post-steps between VAEDecode and CreateVideo; `.output` is the video the job writes (size,
  frames, fps after the post-steps) and `.post_nodes` names the inserted nodes' step; `.params`
  records `loras` and the post-step choices only when used (fill takes them back unchanged);
- a note when cfg is 1 (negative prompt has no effect).
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows import poststeps
from workflows.catalog import (
    LOADER_FOLDERS,
    ModelFile,
    ParamSpec,
    Template,
    load_catalog,
    snap_frames,
)
from workflows.errors import ParamError
from workflows.loras import EXPERTS_14B, ONE_MODEL, LoraUse, parse_loras

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.(png|jpg|jpeg|webp)$", re.IGNORECASE)
SAFE_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
EXTRA = ("mode", "resolution", "loras", *poststeps.PARAMS)
SNAPPED = ("seconds",)  # any value in range; snapped to 4n+1 frames, not refused
TO_THE_END = 10000  # KSamplerAdvanced end_at_step meaning "run to the last step"
NEGATIVE_IGNORED = (
    "cfg is 1, so the negative prompt has no effect (ComfyUI skips the unconditional pass)"
)


@dataclass(frozen=True)
class FilledWorkflow:
    template_id: str
    mode: str
    workflow: dict[str, Any]  # API format, ready for /prompt
    params: dict[str, Any]  # resolved values: seed, frames, fps, seconds, width, height, ...
    notes: list[str] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # LoadImage name -> "start_image"/...
    output_prefix: str = ""
    model_files: tuple[ModelFile, ...] = ()
    post_nodes: dict[str, str] = field(default_factory=dict)  # node id -> post-step name
    output: poststeps.Output | None = None  # the video written: size, frames, fps

    @property
    def seed(self) -> int:
        return int(self.params["seed"])


def fill(
    template_id: str, params: Mapping[str, object], *, rng: random.Random | None = None
) -> FilledWorkflow:
    """Fill `template_id` with `params` (see module docstring). Raises ParamError."""
    t = load_catalog().get(template_id)
    given = {k: v for k, v in params.items() if v is not None}
    mode = _mode(t, given.pop("mode", t.default_mode))
    for key in given:
        if key in EXTRA:
            continue
        if key not in t.params:
            raise ParamError(key, given[key], "parameters of " + t.id + ": " + ", ".join(t.params))
        if mode not in t.params[key].modes:
            modes = " or ".join(t.params[key].modes)
            raise ParamError(key, given[key], f"only in {modes} mode (this job is {mode})")
    job = uuid.uuid4().hex[:12]
    notes: list[str] = []
    v: dict[str, Any] = {"mode": mode}

    for name in ("prompt", "negative_prompt"):
        v[name] = _text(t, name, given.get(name, t.default(name, mode)), empty_ok=name != "prompt")
    v["width"], v["height"] = _size(t, given)
    v["fps"] = _number(t.param("fps"), given.get("fps", t.fps))
    if v["fps"] != t.fps:
        notes.append(f"fps {v['fps']} differs from the model's native {t.fps} fps (playback speed)")
    v["frames"] = _frames(t, given, v["fps"], notes)
    v["seconds"] = round(v["frames"] / v["fps"], 3)
    for name in ("steps", "cfg", "shift", "sampler", "scheduler", "lora_high", "lora_low"):
        if name in t.params and mode in t.params[name].modes:
            v[name] = _value(t.param(name), given.get(name, t.default(name, mode)))
    if "split" in t.params:
        v["split"] = _split(t, mode, given, v["steps"], notes)
    if "seed" in given:
        v["seed"] = _number(t.param("seed"), given["seed"])
    else:
        v["seed"] = (rng or random.SystemRandom()).randint(0, int(t.param("seed").max))
        notes.append(f"fresh seed {v['seed']}")
    if v["cfg"] == 1:
        notes.append(NEGATIVE_IGNORED)

    images: dict[str, str] = {}
    for name in ("start_image", "end_image"):
        if name not in t.params:
            continue
        spec = t.params[name]
        raw = given.get(name)
        if raw is None or raw is False:
            if not spec.required:
                continue
            raw = True
        image = f"wanpod_{job}_{name.split('_')[0]}.png" if raw is True else _image_name(name, raw)
        v[name] = image
        images[image] = name

    prefix = given.get("output_prefix", t.default("output_prefix", mode))
    if not isinstance(prefix, str) or not SAFE_PREFIX.match(prefix) or len(prefix) > 100:
        raise ParamError("output_prefix", prefix, "letters, digits, _ and - in /-separated parts")
    v["output_prefix"] = f"{prefix}_{t.id}_{job}"
    loras = parse_loras(given.get("loras", ()), _experts(t), _reserved(t, v))
    if loras:
        v["loras"] = [use.to_json() for use in loras]
    choice = poststeps.choose(given)
    v.update(choice.to_params())

    workflow = _build(t, mode, v)
    _add_loras(workflow, _experts(t), loras)
    post = poststeps.apply(
        workflow,
        choice,
        t.param("fps").lands[0].node,
        v["width"],
        v["height"],
        v["frames"],
        v["fps"],
    )
    notes.extend(post.notes)
    return FilledWorkflow(
        template_id=t.id,
        mode=mode,
        workflow=workflow,
        params=v,
        notes=notes,
        images=images,
        output_prefix=v["output_prefix"],
        model_files=_model_files(workflow),
        post_nodes=post.nodes,
        output=post.output,
    )


# -- resolution of single values --------------------------------------------------------------


def _mode(t: Template, mode: object) -> str:
    if mode in t.modes:
        return str(mode)
    allowed = ", ".join(t.modes)
    if mode in t.unavailable_modes:
        allowed += f" ({mode} is not offered for {t.id}: {t.unavailable_modes[mode]})"
    raise ParamError("mode", mode, allowed)


def _text(t: Template, name: str, value: object, empty_ok: bool) -> str:
    text = text_param(name, value)
    if not empty_ok and not text.strip():
        raise ParamError(name, value, "non-empty text")
    return text


def text_param(name: str, value: object) -> str:
    """A prompt's text: a string without NUL (U+0000), which PostgreSQL's JSON cannot hold (the
    ledger's search reads `params` as jsonb) and no prompt means, and without a lone surrogate
    (U+D800..U+DFFF, which JSON's \\u escapes can carry): no UTF-8 encodes one, so ComfyUI's
    video writer fails on it after the job was paid for, and every answer echoing it fails."""
    if not isinstance(value, str):
        raise ParamError(name, value, "text")
    if "\0" in value:
        raise ParamError(name, value, "text without NUL characters (U+0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ParamError(name, value, "text without lone surrogates (U+D800..U+DFFF)") from None
    return value


def _number(spec: ParamSpec, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ParamError(spec.name, value, f"a number, {spec.allowed()}")
    raw = value
    if spec.type == "int":
        if value != int(value):
            raise ParamError(spec.name, raw, f"a whole number, {spec.allowed()}")
        value = int(value)
    else:
        value = float(value)
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise ParamError(spec.name, raw, spec.allowed())
    if spec.step and spec.type == "float" and spec.name not in SNAPPED:
        k = (value - (spec.min or 0)) / spec.step
        if abs(k - round(k)) > 1e-6:
            raise ParamError(spec.name, raw, spec.allowed())
    return value


def _value(spec: ParamSpec, value: object) -> Any:
    if spec.type == "choice":
        if value not in spec.choices:
            raise ParamError(spec.name, value, spec.allowed())
        return value
    return _number(spec, value)


def _size(t: Template, given: Mapping[str, object]) -> tuple[int, int]:
    preset = t.preset(str(given.get("resolution", t.default_preset)))
    out = []
    for name, fallback in (("width", preset.width), ("height", preset.height)):
        spec = t.param(name)
        value = _number(spec, given.get(name, fallback))
        if value % t.grid:
            lo, hi = value // t.grid * t.grid, (value // t.grid + 1) * t.grid
            raise ParamError(
                name,
                value,
                f"multiples of {t.grid} for the {t.family.upper()} model from {spec.min} to "
                f"{spec.max} (nearest: {lo} or {hi})",
            )
        out.append(int(value))
    return out[0], out[1]


def _frames(t: Template, given: Mapping[str, object], fps: float, notes: list[str]) -> int:
    spec = t.param("frames")
    if "frames" in given and "seconds" in given:
        raise ParamError("frames", given["frames"], "either seconds or frames, not both")
    if "frames" in given:
        raw = given["frames"]
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw != int(raw):
            raise ParamError("frames", raw, f"a whole number of frames, 4n+1, {spec.allowed()}")
        frames = snap_frames(int(raw))
        if frames != raw:
            notes.append(f"frames {int(raw)} snapped to {frames} (Wan needs 4n+1 frames)")
    else:
        seconds = _number(t.param("seconds"), given.get("seconds", t.default("seconds", "")))
        frames = t.frames_for(seconds, fps)
        notes.append(f"{seconds:g} s at {fps:g} fps -> {frames} frames (4n+1)")
    if not spec.min <= frames <= spec.max:
        name = "frames" if "frames" in given else "seconds"
        raise ParamError(
            name,
            given.get(name, frames),
            f"{spec.min} to {spec.max} frames (4n+1), i.e. up to {spec.max / fps:.2f} s at "
            f"{fps:g} fps",
        )
    return frames


def _split(t: Template, mode: str, given: Mapping[str, object], steps: int, notes: list) -> int:
    spec = t.param("split")
    if "split" in given:
        split = _number(spec, given["split"])
    elif "steps" in given:
        split = max(1, steps // 2)
        if steps != t.default("steps", mode):
            notes.append(f"split set to {split} of {steps} steps (steps/2)")
    else:
        split = t.default("split", mode)
    if not 1 <= split <= steps - 1:
        raise ParamError("split", split, f"1 to {steps - 1} (must be below steps={steps})")
    return int(split)


def _image_name(name: str, value: object) -> str:
    if not isinstance(value, str) or not SAFE_NAME.match(value):
        raise ParamError(name, value, "a file name like start.png (letters, digits, . _ -)")
    return value


# -- building the graph ------------------------------------------------------------------------


def _build(t: Template, mode: str, v: Mapping[str, Any]) -> dict[str, Any]:
    wf = t.workflow_copy()
    for node_id, input_name in t.modes[mode].bypass.items():
        _drop(wf, node_id, replacement=wf[node_id]["inputs"][input_name])
    for name in ("start_image", "end_image"):
        if name in t.params and name not in v:
            for land in t.params[name].lands:
                _drop(wf, land.node, replacement=None)
    for name, spec in t.params.items():
        if name not in v:
            continue
        for land in spec.lands:  # seconds lands nowhere: frames carries the length
            if land.node in wf:
                wf[land.node]["inputs"][land.input] = v[name]
    if "split" in v:  # expert 2 runs to the end: keep the template's 10000, else = steps
        low = t.params["split"].lands[1].node
        if wf[low]["inputs"]["end_at_step"] != TO_THE_END:
            wf[low]["inputs"]["end_at_step"] = v["steps"]
    return wf


def _drop(wf: dict[str, Any], node_id: str, replacement: object) -> None:
    """Remove a node; links to it are rewired to `replacement` (or removed when None)."""
    del wf[node_id]
    for node in wf.values():
        for key, value in list(node["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == node_id:
                if replacement is None:
                    del node["inputs"][key]
                else:
                    node["inputs"][key] = list(replacement)


# -- user LoRAs ---------------------------------------------------------------------------------


def _experts(t: Template) -> dict[str, str]:
    """Expert -> its sampler node: the split's two samplers (high first) or the one sampler."""
    if "split" in t.params:
        high, low = (land.node for land in t.params["split"].lands)
        return dict(zip(EXPERTS_14B, (high, low), strict=True))
    return {ONE_MODEL[0]: t.param("seed").lands[0].node}


def _reserved(t: Template, v: Mapping[str, Any]) -> dict[str, str]:
    """The template's own LoRA files in this mode -> the parameter that sets their strength."""
    out = {}
    for name in ("lora_high", "lora_low"):
        if name in v:
            node = t.workflow[t.params[name].lands[0].node]
            out[str(node["inputs"]["lora_name"])] = name
    return out


def _add_loras(wf: dict[str, Any], experts: Mapping[str, str], loras: tuple[LoraUse, ...]) -> None:
    """Chain each expert's LoRAs after its UNETLoader or the template's LoRA, in stack order."""
    for expert, sampler in experts.items():
        chain = [placed for use in loras if (placed := use.on(expert)) is not None]
        if not chain:
            continue
        consumer, anchor = sampler, wf[sampler]["inputs"]["model"][0]
        while wf[anchor]["class_type"] not in ("UNETLoader", "LoraLoaderModelOnly"):
            consumer, anchor = anchor, wf[anchor]["inputs"]["model"][0]
        tip = anchor
        for i, (name, strength) in enumerate(chain, 1):
            node_id = poststeps.new_id(wf)
            where = f"{expert} noise" if expert in EXPERTS_14B else expert
            wf[node_id] = {
                "class_type": "LoraLoaderModelOnly",
                "inputs": {"model": [tip, 0], "lora_name": name, "strength_model": strength},
                "_meta": {"title": f"LoRA {i} ({where})"},
            }
            tip = node_id
        wf[consumer]["inputs"]["model"] = [tip, 0]


def _model_files(wf: Mapping[str, Any]) -> tuple[ModelFile, ...]:
    """Every loader's file with its folder, in node order (template files first)."""
    out = [
        ModelFile(node["inputs"][name], folder)
        for node in wf.values()
        for name, folder in LOADER_FOLDERS.get(node["class_type"], {}).items()
    ]
    return tuple(dict.fromkeys(out))
