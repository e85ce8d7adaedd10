"""Bring-your-own workflow: read a user's API-format workflow, check it, find what a form can fill.

- `parse_workflow(data) -> dict`: JSON text/bytes or an already-parsed object; also accepts the
  `/prompt` body (`{"prompt": {...}}`) and a worker job (`{"input": {"workflow": {...}}}`). The UI
  "save" format (`nodes` + `links`) is refused with WorkflowFormatError saying how to export the
  API format (converting it is out of scope).
- `detect(workflow, schema=None) -> Detected`: the fillable slots (node + input) for positive and
  negative prompt (traced from the samplers' positive/negative links back to text encoders, through
  conditioning nodes such as WanImageToVideo), seeds, width/height/length, LoadImage inputs, fps
  and SaveVideo/SaveImage prefixes.
- `fill_byo(workflow, params, schema=None) -> FilledWorkflow`: writes prompt, negative_prompt,
  seed (fresh unless given), width/height, frames or seconds (snapped to 4n+1 at the detected fps),
  fps, image names and a unique output prefix into a copy. `check` (workflows.schema) stays the
  judge of everything else.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.catalog import frames_for, snap_frames
from workflows.errors import ParamError, WorkflowFormatError
from workflows.fill import NEGATIVE_IGNORED, SAFE_NAME, SAFE_PREFIX, FilledWorkflow, text_param

EXPORT_HINT = (
    "this is ComfyUI's UI (save) format, not the API format; in ComfyUI open the workflow and use "
    "Workflow > Export (API) (older menus: enable Dev mode in the settings, then 'Save (API "
    "Format)'), and upload that file"
)
SEED_INPUTS = ("seed", "noise_seed")
TEXT_CLASSES_HINT = "TextEncode"
PREFIX_INPUT = "filename_prefix"


@dataclass(frozen=True)
class Slot:
    node: str
    input: str
    value: Any
    class_type: str

    def __str__(self) -> str:
        return f"{self.node}.{self.input} ({self.class_type})"


@dataclass(frozen=True)
class Detected:
    positive: tuple[Slot, ...] = ()
    negative: tuple[Slot, ...] = ()
    seeds: tuple[Slot, ...] = ()
    width: tuple[Slot, ...] = ()
    height: tuple[Slot, ...] = ()
    length: tuple[Slot, ...] = ()
    images: tuple[Slot, ...] = ()
    fps: tuple[Slot, ...] = ()
    prefixes: tuple[Slot, ...] = ()
    cfg: tuple[Slot, ...] = field(default=())

    @property
    def params(self) -> tuple[str, ...]:
        """Names of the parameters fill_byo can set on this workflow."""
        out = []
        for name, slots in (
            ("prompt", self.positive),
            ("negative_prompt", self.negative),
            ("seed", self.seeds),
            ("width", self.width),
            ("height", self.height),
            ("frames", self.length),
            ("seconds", self.length),
            ("fps", self.fps),
            ("start_image", self.images[:1]),
            ("end_image", self.images[1:2]),
            ("output_prefix", self.prefixes),
        ):
            if slots:
                out.append(name)
        return tuple(out)


def parse_workflow(data: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """The API-format workflow in `data`, or WorkflowFormatError saying what is wrong."""
    if isinstance(data, bytes | bytearray):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise WorkflowFormatError("the workflow file is not UTF-8 JSON text") from None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise WorkflowFormatError(f"the workflow file is not valid JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise WorkflowFormatError("the workflow must be a JSON object of nodes")
    if isinstance(data.get("input"), Mapping) and "workflow" in data["input"]:
        data = data["input"]["workflow"]
    elif isinstance(data.get("prompt"), Mapping) and "class_type" not in data:
        data = data["prompt"]
    if isinstance(data.get("nodes"), list) and "links" in data:
        raise WorkflowFormatError(EXPORT_HINT)
    if not data:
        raise WorkflowFormatError("the workflow has no nodes")
    for node_id, node in data.items():
        if not isinstance(node, Mapping) or "class_type" not in node:
            raise WorkflowFormatError(
                f"node {node_id!r} has no class_type: not an API-format workflow ({EXPORT_HINT})"
            )
        if not isinstance(node.get("inputs", {}), Mapping):
            raise WorkflowFormatError(f"node {node_id!r}: inputs must be an object")
    return {str(k): v for k, v in data.items()}


def _is_link(v: object) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[1], int)


def _trace_text(wf, link, want: str, schema, depth: int = 0) -> list[Slot]:
    """Text encoder slots feeding `link`, following conditioning nodes (want: positive/negative)."""
    if depth > 12 or not _is_link(link):
        return []
    node_id, slot = str(link[0]), link[1]
    node = wf.get(node_id)
    if not isinstance(node, Mapping):
        return []
    inputs = node.get("inputs", {})
    cls = node.get("class_type", "")
    texts = [k for k, v in inputs.items() if isinstance(v, str) and k in ("text", "prompt")]
    if texts and (TEXT_CLASSES_HINT in cls or "text" in inputs):
        return [Slot(node_id, texts[0], inputs[texts[0]], cls)]
    out_name = None
    info = (schema or {}).get(cls) or {}
    names = info.get("output_name") or []
    if slot < len(names):
        out_name = str(names[slot]).lower()
    if out_name not in ("positive", "negative"):
        out_name = {0: "positive", 1: "negative"}.get(slot) if "negative" in inputs else None
    for key in (out_name, "conditioning", "conditioning_to", "conditioning_1", want):
        if key and _is_link(inputs.get(key)):
            found = _trace_text(wf, inputs[key], want, schema, depth + 1)
            if found:
                return found
    return []


def detect(workflow: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> Detected:
    """Fillable slots of an API-format workflow (see module docstring)."""
    wf = workflow
    found: dict[str, list[Slot]] = {k: [] for k in Detected.__dataclass_fields__}
    for node_id, node in wf.items():
        cls = node.get("class_type", "")
        inputs = node.get("inputs", {})
        for want in ("positive", "negative"):
            if _is_link(inputs.get(want)):  # samplers, guiders, conditioning nodes
                for s in _trace_text(wf, inputs[want], want, schema):
                    if s not in found[want]:
                        found[want].append(s)
        for name, value in inputs.items():
            if _is_link(value):
                continue
            slot = Slot(str(node_id), name, value, cls)
            if name in SEED_INPUTS and isinstance(value, int):
                found["seeds"].append(slot)
            elif name in ("width", "height", "length") and isinstance(value, int):
                found[name].append(slot)
            elif name == "image" and cls.startswith("LoadImage"):
                found["images"].append(slot)
            elif name in ("fps", "frame_rate") and isinstance(value, int | float):
                found["fps"].append(slot)
            elif name == PREFIX_INPUT and isinstance(value, str):
                found["prefixes"].append(slot)
            elif name == "cfg" and isinstance(value, int | float):
                found["cfg"].append(slot)
    return Detected(**{k: tuple(v) for k, v in found.items()})


def fill_byo(
    workflow: Mapping[str, Any] | bytes | str,
    params: Mapping[str, object],
    schema: Mapping[str, Any] | None = None,
    *,
    rng: random.Random | None = None,
) -> FilledWorkflow:
    """A filled copy of a user's workflow. Params it cannot place raise ParamError."""
    wf = copy.deepcopy(parse_workflow(workflow))
    d = detect(wf, schema)
    given = {k: v for k, v in params.items() if v is not None and k != "mode"}
    job = uuid.uuid4().hex[:12]
    notes: list[str] = []
    resolved: dict[str, Any] = {}

    def put(slots: tuple[Slot, ...], value: object) -> None:
        for s in slots:
            wf[s.node]["inputs"][s.input] = value

    unknown = set(given) - set(d.params)
    if unknown:
        name = sorted(unknown)[0]
        allowed = ", ".join(d.params) or "nothing (no fillable inputs detected)"
        raise ParamError(name, given[name], f"parameters this workflow has: {allowed}")
    for name, slots in (("prompt", d.positive), ("negative_prompt", d.negative)):
        if name in given:
            text_param(name, given[name])
            put(slots, given[name])
            resolved[name] = given[name]
    for name, slots in (("width", d.width), ("height", d.height)):
        if name in given:
            value = given[name]
            step = _step(schema, slots[0], 8)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % step:
                raise ParamError(name, value, f"positive multiples of {step}")
            put(slots, value)
            resolved[name] = value
    fps = float(given.get("fps", d.fps[0].value if d.fps else 16))
    if "fps" in given:
        if isinstance(given["fps"], bool) or not 1 <= fps <= 120:
            raise ParamError("fps", given["fps"], "1 to 120")
        put(d.fps, given["fps"])
    resolved["fps"] = fps
    if "frames" in given or "seconds" in given:
        if "frames" in given and "seconds" in given:
            raise ParamError("frames", given["frames"], "either seconds or frames, not both")
        if "frames" in given:
            raw = given["frames"]
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
                raise ParamError("frames", raw, "a whole number of frames, 4n+1")
            frames = snap_frames(raw)
            if frames != raw:
                notes.append(f"frames {raw} snapped to {frames} (Wan needs 4n+1 frames)")
        else:
            raw = given["seconds"]
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw <= 60:
                raise ParamError("seconds", raw, "more than 0 and up to 60")
            frames = frames_for(float(raw), fps)
            notes.append(f"{raw:g} s at {fps:g} fps -> {frames} frames (4n+1)")
        put(d.length, frames)
        resolved["frames"] = frames
    if d.seeds:
        if "seed" in given:
            seed = given["seed"]
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
                raise ParamError("seed", seed, "0 to 18446744073709551615")
        else:
            seed = (rng or random.SystemRandom()).randint(0, 2**53 - 1)
            notes.append(f"fresh seed {seed}")
        put(d.seeds, seed)
        resolved["seed"] = seed
    images: dict[str, str] = {}
    for name, slots in (("start_image", d.images[:1]), ("end_image", d.images[1:2])):
        if not slots:
            continue
        raw = given.get(name, True)
        image = f"wanpod_{job}_{name.split('_')[0]}.png" if raw is True else raw
        if not isinstance(image, str) or not SAFE_NAME.match(image):
            raise ParamError(name, raw, "a file name like start.png (letters, digits, . _ -)")
        put(slots, image)
        images[image] = name
        resolved[name] = image
    prefix = given.get("output_prefix", "video/wanpod_byo")
    if not isinstance(prefix, str) or not SAFE_PREFIX.match(prefix):
        raise ParamError("output_prefix", prefix, "letters, digits, _ and - in /-separated parts")
    resolved["output_prefix"] = f"{prefix}_{job}"
    for i, s in enumerate(d.prefixes):
        wf[s.node]["inputs"][s.input] = resolved["output_prefix"] + (f"_{i}" if i else "")
    if d.negative and d.cfg and all(s.value == 1 for s in d.cfg):
        notes.append(NEGATIVE_IGNORED)
    return FilledWorkflow(
        template_id="byo",
        mode="as uploaded",
        workflow=wf,
        params=resolved,
        notes=notes,
        images=images,
        output_prefix=resolved["output_prefix"],
    )


def _step(schema: Mapping[str, Any] | None, slot: Slot, fallback: int) -> int:
    spec = ((schema or {}).get(slot.class_type) or {}).get("input", {})
    for part in ("required", "optional"):
        entry = (spec.get(part) or {}).get(slot.input)
        if isinstance(entry, list) and len(entry) > 1 and isinstance(entry[1], Mapping):
            return int(entry[1].get("step", fallback))
    return fallback
