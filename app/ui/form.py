"""The studio's form: one object owns its components, by `FormValues` field name.

`Form.build()` lays the components out inside the page's Blocks; each is registered with `add`
under the `FormValues` field it fills, with the description its API parameter carries. Every
callback reaches the form through this object, never through a list position:
- `kwargs`: {field name: component}, in `FormValues` order: the `inputs_kwargs` of every event
  that reads the form, so the API's parameters are the field names (`/generate`, `/quote`, ...);
- `values(fields)`: those components' values as a typed `FormValues`; a value of another type
  than its field's (an API client's "false" for a checkbox, an object for a prompt, 4.5 steps)
  is refused, never converted (an InputError naming the field, the value as sent and what is
  allowed: the components pass such a value on as sent, `typed_by_form`, app/ui/fields.py);
- `layout(pipeline, mode)`: visibility, choices, ranges and defaults of a pipeline's form;
- `updates(values)`: that layout with `values` in it, for every component (reuse, draft -> final);
- `plain(values)`: the bare values, for what an API client gets back.

Adding a field: a `FormValues` field (the service's typed shape) and one `add` in `build`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr

from app.errors import InputError
from app.studio.forms import ADVANCED, LABELS, FormValues, PipelineForm
from app.studio.offers import Offers
from app.ui.fields import (
    Checkbox,
    Dropdown,
    File,
    Image,
    Number,
    Radio,
    Slider,
    Textbox,
    described,
    options,
)
from app.ui.offers import Picker
from app.ui.quiet import QUIET
from workflows.errors import as_sent

ADVANCED_LABELS = {
    "steps": "Steps",
    "cfg": "CFG",
    "shift": "Shift (ModelSampling)",
    "sampler": "Sampler",
    "scheduler": "Scheduler",
    "lora_high": "LoRA strength, high-noise expert",
    "lora_low": "LoRA strength, low-noise expert",
}
# What the form's API parameters say where the catalog's words do not fit the form (the catalog
# describes the workflow's parameters: prompt, negative prompt, duration, seed, the advanced
# ones; for it an image is a file name the worker uploads).
OWN_TEXT = {
    "mode": "the pipeline's mode: turbo (few steps with a distillation LoRA, cfg 1) or quality; "
    "each pipeline offers its own (the README's template table)",
    "start_image": "the first frame, for the pipelines that take one; PNG, JPEG or WebP",
    "end_image": "the last frame, for the pipelines that take one; PNG, JPEG or WebP",
    "workflow_file": "a ComfyUI workflow saved with Export (API), for the bring-your-own pipeline",
    "resolution": "one of the pipeline's size presets, e.g. '480p square'",
    "randomize": "true: a fresh random seed for the job (the seed field is ignored)",
    "loras": 'the user\'s LoRAs as a JSON list of up to 4, each {"file": name, "strength": '
    's} (a single file, every expert) or {"high": name, "low": name, "strength": s} (a '
    "14B pair; strength_high / strength_low per expert); names as the endpoint's loras folder "
    "lists them (sub/file); strengths -2 to 2; empty: none",
    "upscale": "true: upscale the video x2 with an upscale model before it is written",
    "upscale_model": "a file of the endpoint's upscale_models folder (default: the catalog's)",
    "interpolate": "true: smooth motion x2 (RIFE frame interpolation: doubles the fps); needs "
    "the ComfyUI-Frame-Interpolation custom nodes on the endpoint",
    "interpolate_model": "the RIFE checkpoint for smooth motion (default: the catalog's)",
    "start_image_url": "the first frame as an https:// URL the worker downloads, instead of an "
    "uploaded start_image",
}
ADVANCED_HINT = " (empty, or not offered in this mode: the mode's own)"
NEGATIVE_INFO = (
    "Wan's recommended default (in Chinese, as Wan 2.2 was trained); clear it to send no "
    "negative prompt"
)


def negative_label(used: bool) -> str:
    return "Negative prompt" + ("" if used else " (ignored in turbo: cfg = 1)")


def mode_info(form: PipelineForm) -> str:
    """Why a pipeline offers no turbo mode (the modes come from the catalog)."""
    if form.byo:
        return "the uploaded workflow runs with its own settings"
    if "turbo" not in form.modes:
        return f"quality only: {form.title} has no 4-step (turbo) distillation LoRA"
    return "turbo: 4 steps with a distillation LoRA, cfg 1; quality: the full schedule"


class Form:
    """The form's components by `FormValues` field name (see the module doc)."""

    def __init__(
        self,
        forms: Mapping[str, PipelineForm],
        shape: type = FormValues,
        offers: Callable[[], Offers] = Offers,
    ) -> None:
        self.forms = dict(forms)
        self.shape = shape
        self.picker = Picker(self, offers)  # the LoRA rows and post-steps (app/ui/offers.py)
        self._fields = [f.name for f in dataclasses.fields(shape)]
        self._types = typing.get_type_hints(shape)
        self._by_name: dict[str, Any] = {}
        self.frames_md: Any = None

    # -- the components by name --------------------------------------------------------------
    def add(self, name: str, component: Any, description: str = "") -> Any:
        """Register `component` as the field `name` (a `FormValues` field), described for the API
        (by default as `describe(name)` says)."""
        if name not in self._fields:
            raise ValueError(f"{name!r} is not a field of {self.shape.__name__}")
        if name in self._by_name:
            raise ValueError(f"the form has a {name!r} field already")
        self._by_name[name] = described(component, description or self.describe(name))
        component.typed_by_form = True  # a value of another type reaches `values`, refused there
        return component

    def describe(self, name: str) -> str:
        """A field's API description: the form's own words (for what the catalog does not
        describe as the form asks it: pipeline, mode, images, ...), else the catalog's."""
        catalog = (f.descriptions.get(name) for f in self.forms.values())
        text = OWN_TEXT.get(name) or next((t for t in catalog if t), "")
        return text + ADVANCED_HINT if name in ADVANCED else text

    def __getitem__(self, name: str) -> Any:
        return self._by_name[name]

    @property
    def names(self) -> list[str]:
        """The form's field names, in `FormValues` order (the API's parameter order)."""
        return [n for n in self._fields if n in self._by_name]

    @property
    def inputs(self) -> list[Any]:
        return [self._by_name[n] for n in self.names]

    @property
    def outputs(self) -> list[Any]:
        """What `layout` and `updates` answer: the fields and the picker's rows."""
        return [*self.inputs, *self.picker.components]

    @property
    def kwargs(self) -> dict[str, Any]:
        return {n: self._by_name[n] for n in self.names}

    # -- values both ways ----------------------------------------------------------------------
    def values(self, fields: Mapping[str, Any]) -> FormValues:
        """The components' values (`fields`: by name, as an event with `kwargs` passes them),
        each of its field's type; a value of another type is an InputError naming the field
        (as the service's refusals do), the value as sent and what is allowed."""
        typed = {}
        for name in self.names:
            raw = fields[name]
            value = _typed(self._types[name], raw, self._uploads(name))
            if isinstance(value, _WrongType):
                allowed = self._allowed(name, value.kind, fields)
                raise InputError(
                    LABELS.get(name, name), f"{as_sent(raw)} is not allowed; allowed: {allowed}"
                )
            typed[name] = value
        return self.shape(**typed)

    def _uploads(self, name: str) -> bool:
        return isinstance(self._by_name[name], gr.Image | gr.File)

    def _allowed(self, name: str, kind: type, fields: Mapping[str, Any]) -> str:
        """What a field of type `kind` takes: for a number, the range of the job's pipeline and
        mode (else the component's); for a choice, the component's choices."""
        component = self._by_name[name]
        if kind is bool:
            return "true or false"
        if kind is str:
            if self._uploads(name):
                return "an uploaded file"
            choices = getattr(component, "choices", None)
            custom = getattr(component, "allow_custom_value", False)
            return options(choices) if choices and not custom else "text"
        what = "a whole number" if kind is int else "a number"
        span = self._span(name, fields)
        return f"{what}, {span}" if span else what

    def _span(self, name: str, fields: Mapping[str, Any]) -> str:
        pipeline, mode = fields.get("pipeline"), fields.get("mode")
        form = self.forms.get(pipeline) if isinstance(pipeline, str) else None
        lo = hi = None
        if form is not None and name == "seconds":
            lo, hi = form.seconds[:2]
        elif form is not None and isinstance(mode, str):
            spec = (form.advanced.get(mode) or {}).get(name)
            lo, hi = (spec.minimum, spec.maximum) if spec is not None else (None, None)
        if lo is None or hi is None:
            component = self._by_name[name]
            if isinstance(component, gr.Slider):
                lo, hi = component.minimum, component.maximum
        return f"{_num(lo)} to {_num(hi)}" if lo is not None and hi is not None else ""

    def plain(self, values: FormValues) -> dict[Any, Any]:
        """Every component set to its field's value (what an API client gets back)."""
        return {c: getattr(values, n) for n, c in self.kwargs.items()}

    def updates(self, values: FormValues) -> dict[Any, Any]:
        """Every component showing `values` in the form of `values.pipeline` and `values.mode`:
        that form's visibility, choices and ranges, with the values in it; an empty value (None
        or "") keeps what the layout gives (the mode's default, the pipeline's default preset).
        One answer, so nothing resets a value afterwards."""
        out = self.layout(values.pipeline, values.mode)
        for name, component in self.kwargs.items():
            update = out.setdefault(component, gr.update())
            value = getattr(values, name)
            if value in (None, "") and "value" in update:
                continue
            update["value"] = value
        if "loras" in self._by_name:
            out.update(self.picker.show(values.loras))
        return out

    def shown(self, event: Any, values: Any) -> Any:
        """`event` followed by the whole form showing the `FormValues` it left in the State
        `values` (the layout of their pipeline and mode, with them in it)."""
        return event.then(
            self.updates,
            values,
            self.outputs,
            api_visibility="private",
            **QUIET,
        )

    def layout(self, pipeline: str, mode: str) -> dict[Any, Any]:
        """Visibility, choices, ranges and defaults for the chosen pipeline and mode (from the
        catalog); the components it does not change are not in the answer."""
        form = self.forms[pipeline]
        mode = mode if mode in form.modes else form.modes[0]
        adv = form.advanced.get(mode) or {}
        lo, hi, step, default = form.seconds
        neg_used = form.negative_used.get(mode, mode != "turbo")
        out = {
            "mode": gr.update(choices=list(form.modes), value=mode, info=mode_info(form)),
            "start_image": gr.update(visible=form.needs_start),
            "start_image_url": gr.update(visible=form.needs_start),
            "end_image": gr.update(visible=form.needs_end),
            "workflow_file": gr.update(visible=form.byo),
            "resolution": gr.update(
                visible=bool(form.presets),
                choices=[p.label for p in form.presets],
                value=form.default_preset or (form.presets[0].label if form.presets else None),
            ),
            "seconds": gr.update(
                visible=not form.byo, minimum=lo, maximum=hi, step=step, value=default
            ),
            "negative_prompt": gr.update(label=negative_label(neg_used), visible=not form.byo),
        }
        for key in ADVANCED:
            spec = adv.get(key)
            if spec is None:
                out[key] = gr.update(visible=False)
            elif spec.kind == "choice":
                out[key] = gr.update(visible=True, choices=list(spec.choices), value=spec.default)
            else:
                out[key] = gr.update(
                    visible=True,
                    minimum=spec.minimum,
                    maximum=spec.maximum,
                    step=spec.step,
                    value=spec.default,
                )
        fields = {self._by_name[k]: u for k, u in out.items() if k in self._by_name}
        if "loras" in self._by_name:
            for component, update in self.picker.layout(form).items():
                fields[component] = {**fields.get(component, {}), **update}
        return fields

    def frames_note(self, pipeline: str, seconds: float) -> str:
        """The frame count the duration snaps to, under the slider."""
        form = self.forms.get(pipeline)
        if form is None or form.byo:
            return ""
        n = form.frames(float(seconds or 0))
        return f"{seconds:g} s → **{n} frames** at {form.fps} fps ({(n - 1) / form.fps:.2f} s)"

    def show_frames(self, event: Any) -> Any:
        """`event` followed by the frame note for the form's pipeline and duration."""
        return event.then(
            self.frames_note,
            inputs_kwargs={"pipeline": self["pipeline"], "seconds": self["seconds"]},
            outputs=self.frames_md,
            api_visibility="private",
            **QUIET,
        )

    # -- the layout ----------------------------------------------------------------------------
    def build(self) -> Form:
        """The form's components, laid out in the current Blocks column (first pipeline shown)."""
        forms = self.forms
        first = next(iter(forms.values()))
        pipelines = ", ".join(f"{k} ({f.title})" for k, f in forms.items())
        self.add(
            "pipeline",
            Dropdown(
                [(f.title, k) for k, f in forms.items()],
                value=first.template_id,
                label="Pipeline",
                elem_id="wp-pipeline",
            ),
            f"the pipeline to run, one of: {pipelines}",
        )
        # choices span every pipeline (the API accepts what some form offers); the page narrows
        # them to the chosen pipeline's (layout)
        all_modes = list(dict.fromkeys(m for f in forms.values() for m in f.modes))
        self.add(
            "mode",
            Radio(
                all_modes,
                value=first.modes[0],
                label="Mode",
                info=mode_info(first),
                elem_id="wp-mode",
            ),
        )
        self.add(
            "prompt",
            Textbox(
                label="Prompt", lines=3, value=first.prompt_default or None, elem_id="wp-prompt"
            ),
        )
        # no default: the API page's snippet shows (and runs) this example prompt, not ""
        self["prompt"].api_example = "a red fox running through fresh snow, cinematic"
        with gr.Row():
            self.add(
                "start_image",
                Image(
                    label="Start image",
                    type="filepath",
                    visible=first.needs_start,
                    elem_id="wp-start",
                ),
            )
            self.add(
                "end_image",
                Image(
                    label="End image", type="filepath", visible=first.needs_end, elem_id="wp-end"
                ),
            )
        self.add(
            "start_image_url",
            Textbox(
                label="…or a start image URL (https://, downloaded by the worker)",
                placeholder="https://example.com/frame.png",
                value="",
                visible=first.needs_start,
                elem_id="wp-start-url",
            ),
        )
        self.add(
            "workflow_file",
            File(
                label="API workflow (.json)",
                file_types=[".json"],
                type="filepath",
                visible=first.byo,
                elem_id="wp-workflow",
            ),
        )
        self.add(
            "resolution",
            Dropdown(
                list(dict.fromkeys(p.label for f in forms.values() for p in f.presets)),
                value=first.default_preset or None,
                label="Resolution",
                elem_id="wp-resolution",
            ),
        )
        lo, hi, step, default = first.seconds
        self.add(
            "seconds",
            Slider(
                lo, hi, value=default, step=step, label="Duration (seconds)", elem_id="wp-seconds"
            ),
        )
        self.frames_md = gr.Markdown(
            self.frames_note(first.template_id, default), elem_id="wp-frames"
        )
        with gr.Row():
            self.add("seed", Number(value=0, precision=0, label="Seed", elem_id="wp-seed"))
            self.add(
                "randomize", Checkbox(value=True, label="Randomize seed", elem_id="wp-randomize")
            )
        with gr.Accordion("Advanced", open=False, elem_id="wp-advanced"):
            self.add(
                "negative_prompt",
                Textbox(
                    label=negative_label(first.negative_used.get(first.modes[0], True)),
                    info=NEGATIVE_INFO,
                    lines=2,
                    value=first.negative_default,
                    elem_id="wp-negative",
                ),
            )
            for key in ADVANCED:
                self.add(key, self._advanced(key, first))
        self.picker.build()
        return self

    def _advanced(self, key: str, first: PipelineForm) -> Any:
        """An advanced field spanning every pipeline's range (the page narrows it per mode)."""
        specs = [m[key] for f in self.forms.values() for m in f.advanced.values() if key in m]
        start = (first.advanced.get(first.modes[0]) or {}).get(key)
        common = {
            "label": ADVANCED_LABELS[key],
            "visible": start is not None,
            "elem_id": f"wp-{key}",
        }
        if key in ("sampler", "scheduler"):
            union = list(dict.fromkeys(c for sp in specs for c in sp.choices))
            return Dropdown(union, value=start.default if start else None, **common)
        lo = min((sp.minimum for sp in specs if sp.minimum is not None), default=0)
        hi = max((sp.maximum for sp in specs if sp.maximum is not None), default=1)
        return Slider(
            lo,
            hi,
            value=start.default if start else lo,
            step=min((sp.step for sp in specs if sp.step), default=None),
            **common,
        )


@dataclasses.dataclass(frozen=True)
class _WrongType:  # what `_typed` answers for such a value; `Form.values` refuses it
    """A value that is not of its field's type (`kind`)."""

    kind: type


def _typed(hint: Any, raw: Any, upload: bool = False) -> Any:
    """A component's value as its `FormValues` field's type (`str`, `float`, `int`, `bool`, or
    one of them or None), or a _WrongType: never converted into another value (bool("false") is
    True, int(4.5) 4, str of an object its repr). None is the field's empty value, and so is
    "" but for a bool; a whole float is an int; an upload (`upload`: a file or image field)
    arrives as a path, or an upload object or dict with one."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = set(typing.get_args(hint)) if union else {hint}
    optional = type(None) in args
    kinds = args - {type(None)}
    if len(kinds) != 1:
        raise TypeError(f"a form field's type must be one type or None, not {hint}")
    kind = kinds.pop()
    if kind not in (str, int, float, bool):
        raise TypeError(f"a form field's type must be str, int, float or bool, not {kind}")
    if raw is None or (isinstance(raw, str) and raw == "" and kind is not bool):
        return None if optional else kind()
    if kind is bool:
        if isinstance(raw, bool):
            return raw
    elif kind is str:
        path = _path(raw) if upload else raw
        if isinstance(path, str):
            return path
    elif isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        if kind is float:
            return float(raw)
        if raw == int(raw):  # 6.0 is 6; 4.5 is refused, not truncated
            return int(raw)
    return _WrongType(kind)


def _path(value: Any) -> Any:
    """An upload's path: the value itself (a path), or the `path` (or `name`) of an upload
    object or dict; None where it has neither."""
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return getattr(value, "path", None) or getattr(value, "name", None) or value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
