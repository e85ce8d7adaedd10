"""What the form offers for each pipeline, derived from the workflows catalog (never invented here).

`build_forms(catalog)` turns `workflows.catalog.Catalog` into one `PipelineForm` per template plus
the bring-your-own entry; `to_params(form, values)` turns the page's values into the named
parameters `workflows.fill.fill` takes. The UI only offers values inside each field's range and
choices, so `fill` refuses nothing the form lets through (fill stays the judge either way).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.errors import InputError
from app.studio.offers import parse_field
from workflows.catalog import Preset, frames_for

ADVANCED = ("steps", "cfg", "shift", "sampler", "scheduler", "lora_high", "lora_low")
LABELS = {
    "prompt": "prompt",
    "negative_prompt": "negative prompt",
    "seed": "seed",
    "width": "resolution",
    "height": "resolution",
    "resolution": "resolution",
    "seconds": "duration",
    "duration": "duration",
    "frames": "duration",
    "length": "duration",
    "steps": "steps",
    "cfg": "cfg",
    "shift": "shift",
    "sampler": "sampler",
    "scheduler": "scheduler",
    "lora_high": "LoRA strength (high noise)",
    "lora_low": "LoRA strength (low noise)",
    "start_image": "start image",
    "end_image": "end image",
    "workflow": "workflow file",
    "workflow_file": "workflow file",
    "mode": "mode",
    "loras": "LoRAs",
    "upscale": "upscale",
    "upscale_model": "upscale model",
    "interpolate": "smooth motion",
    "interpolate_model": "smooth motion model",
    "start_image_url": "start image URL",
}
POST_STEPS = ("upscale", "upscale_model", "interpolate", "interpolate_model")  # fill's names
FILE_FIELDS = ("start_image", "end_image", "workflow_file")  # files: optional, as on the form
MAX_SEED = 2**53 - 1  # what a browser's number input carries exactly


def field_of(label: str) -> str:
    """The `FormValues` field an error's label names ("duration" -> "seconds"), or ""."""
    names = set(FormValues.__dataclass_fields__)
    for text in (label, label.split(" (")[0]):  # "LoRAs (LoRA 2, high)" -> "LoRAs"
        if text in names:
            return text
        found = next((k for k, v in LABELS.items() if v == text and k in names), "")
        if found:
            return found
    return ""


@dataclass(frozen=True)
class FieldSpec:
    kind: str  # "int" | "float" | "choice"
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()
    param: str = ""  # the fill parameter name


@dataclass(frozen=True)
class PipelineForm:
    template_id: str
    title: str
    byo: bool = False
    family: str = "14b"  # "14b" (two experts) | "5b" (one model): which LoRAs fit
    needs_start: bool = False
    needs_end: bool = False
    start_optional: bool = False  # shown, but the pipeline also runs without it (TI2V 5B)
    modes: tuple[str, ...] = ("turbo", "quality")
    presets: tuple[Preset, ...] = ()
    default_preset: str = ""
    fps: int = 16
    seconds: tuple[float, float, float, float] = (1.0, 10.0, 0.25, 5.0)  # lo, hi, step, default
    advanced: Mapping[str, Mapping[str, FieldSpec]] = field(default_factory=dict)  # by mode
    negative_default: str = ""
    prompt_default: str = ""
    negative_used: Mapping[str, bool] = field(default_factory=dict)  # by mode
    names: Mapping[str, str] = field(default_factory=dict)  # our key -> fill param name
    descriptions: Mapping[str, str] = field(default_factory=dict)  # our key -> the catalog's

    def label_of(self, param: str) -> str:
        """The form's words for a fill parameter (`loras[1].high` -> "LoRAs (LoRA 2, high)")."""
        where = re.fullmatch(r"(\w+)\[(\d+)\](?:\.(\w+))?", param)
        if where:
            base, i, part = where.groups()
            item = f"LoRA {int(i) + 1}" if base == "loras" else f"item {int(i) + 1}"
            return f"{self.label_of(base)} ({item}{', ' + part if part else ''})"
        for ours, theirs in self.names.items():
            if theirs == param:
                return LABELS.get(ours, ours)
        return LABELS.get(param, param)

    def frames(self, seconds: float) -> int:
        """The frame count `seconds` snaps to: 4k+1 frames at this pipeline's fps."""
        return frames_for(seconds, self.fps)

    def preset(self, label: str) -> Preset | None:
        return next((p for p in self.presets if p.label == label), None)


@dataclass(frozen=True)
class FormValues:
    pipeline: str
    mode: str = "turbo"
    prompt: str = ""
    negative_prompt: str = ""
    start_image: str | None = None
    end_image: str | None = None
    workflow_file: str | None = None
    resolution: str = ""
    seconds: float = 5.0
    seed: int | None = None
    randomize: bool = True
    steps: int | None = None
    cfg: float | None = None
    shift: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    lora_high: float | None = None
    lora_low: float | None = None
    # new fields go last: an API client's positional arguments keep their places
    loras: str = ""  # fill's `loras` as JSON text (app/studio/offers.py)
    upscale: bool = False
    upscale_model: str | None = None
    interpolate: bool = False
    interpolate_model: str | None = None
    start_image_url: str | None = None  # an https:// URL the worker downloads (no upload)

    def image_for(self, param: str) -> str | None:
        return self.end_image if "end" in param or "last" in param else self.start_image


def resolve_seed(values: FormValues) -> int:
    if values.randomize or values.seed is None:
        return random.randint(0, MAX_SEED)
    return int(values.seed)


def to_params(
    form: PipelineForm, values: FormValues, images: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The page's values as `fill` parameters (only the ones this pipeline has).

    `images` maps "start_image"/"end_image" to the file names the worker will upload them as."""
    if values.mode not in form.modes:
        raise InputError(
            "mode", f"{values.mode!r} is not offered; allowed: {', '.join(form.modes)}"
        )
    n = form.names
    out: dict[str, Any] = {}
    if "mode" in n:
        out[n["mode"]] = values.mode
    if not values.prompt.strip():
        raise InputError("prompt", "is empty; describe the video you want")
    out[n.get("prompt", "prompt")] = values.prompt
    if "negative_prompt" in n:  # empty is honoured: no negative prompt (not Wan's default)
        out[n["negative_prompt"]] = values.negative_prompt
    if form.presets:
        preset = form.preset(values.resolution)
        if preset is None:
            allowed = ", ".join(p.label for p in form.presets)
            raise InputError(
                "resolution", f"{values.resolution!r} is not offered; allowed: {allowed}"
            )
        if "resolution" in n:
            out[n["resolution"]] = preset.label
        else:
            out[n.get("width", "width")] = preset.width
            out[n.get("height", "height")] = preset.height
    if "seconds" in n:
        out[n["seconds"]] = values.seconds
    elif "frames" in n:
        out[n["frames"]] = form.frames(values.seconds)
    if "seed" in n:
        out[n["seed"]] = resolve_seed(values)
    for key, name in (images or {}).items():
        if key in n:
            out[n[key]] = name
    for key in ADVANCED:
        value = getattr(values, key)
        if key in n and value is not None and key in (form.advanced.get(values.mode) or {}):
            out[n[key]] = value
    out.update(_extras(form, values))
    return out


def _extras(form: PipelineForm, values: FormValues) -> dict[str, Any]:
    """The user's LoRAs and the post-steps, as fill takes them (fill judges the values)."""
    loras = parse_field(values.loras)
    asked = {
        "loras": loras or None,
        "upscale": values.upscale or None,
        "upscale_model": values.upscale_model if values.upscale else None,
        "interpolate": values.interpolate or None,
        "interpolate_model": values.interpolate_model if values.interpolate else None,
    }
    asked = {k: v for k, v in asked.items() if v is not None}
    for key in asked:
        if key not in form.names:
            raise InputError(
                LABELS[key],
                f"{form.title} runs the workflow as uploaded; add the nodes to the workflow "
                "itself (allowed: the catalog's pipelines)",
            )
    return {form.names[k]: v for k, v in asked.items()}
