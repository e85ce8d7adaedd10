"""Build the studio's pipeline forms from `workflows.catalog.load_catalog()`.

Everything the form offers (pipelines, modes, presets, duration range, fps, steps/cfg/shift/LoRA
ranges and defaults per mode, sampler and scheduler lists) is read from the catalog, so the form
cannot offer a value `workflows.fill.fill` would refuse. The bring-your-own entry appears when
`workflows.byo` is available.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from app.studio.forms import ADVANCED, POST_STEPS, FieldSpec, PipelineForm

BYO_ID = "byo"
_NAMES = (
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "seconds",
    "seed",
    "start_image",
    "end_image",
    *ADVANCED,
)


def _field(t: Any, p: Any, mode: str) -> FieldSpec:
    kind = "choice" if p.type == "choice" else ("int" if p.type == "int" else "float")
    return FieldSpec(
        kind=kind,
        default=t.default(p.name, mode),
        minimum=p.min,
        maximum=p.max,
        step=p.step,
        choices=tuple(p.choices),
        param=p.name,
    )


def form_for(t: Any) -> PipelineForm:
    modes = tuple([t.default_mode, *[m for m in t.modes if m != t.default_mode]])
    advanced = {
        mode: {
            key: _field(t, t.params[key], mode)
            for key in ADVANCED
            if key in t.params and mode in t.params[key].modes
        }
        for mode in modes
    }
    sec = t.params["seconds"]
    needs = set(t.needs) | set(t.optional)
    return PipelineForm(
        template_id=t.id,
        title=t.title,
        family=t.family,
        needs_start="start_image" in needs,
        needs_end="end_image" in needs,
        start_optional="start_image" in t.optional,
        modes=modes,
        presets=tuple(t.presets),
        default_preset=t.default_preset,
        fps=t.fps,
        seconds=(float(sec.min), float(sec.max), float(sec.step), float(sec.default)),
        advanced=advanced,
        negative_default=str(t.default("negative_prompt", t.default_mode) or ""),
        prompt_default="",
        negative_used={m: float(t.default("cfg", m) or 1) != 1.0 for m in modes},
        descriptions={n: t.params[n].description for n in _NAMES if n in t.params},
        names={
            "mode": "mode",
            "resolution": "resolution",
            **{n: n for n in _NAMES if n in t.params and n not in ("width", "height")},
            **{n: n for n in ("loras", *POST_STEPS)},  # fill takes them on every template
        },
    )


def load_forms() -> tuple[
    dict[str, PipelineForm], Callable[[Any, Mapping[str, object]], Any] | None
]:
    from workflows.catalog import load_catalog

    catalog = load_catalog()
    forms = {t.id: form_for(t) for t in catalog}
    byo_fill = None
    try:
        from app.studio.byo import byo_fill as _byo_fill

        forms[BYO_ID] = PipelineForm(
            template_id=BYO_ID,
            title="Bring your own API workflow",
            byo=True,
            modes=("as uploaded",),
            names={"prompt": "prompt", "negative_prompt": "negative_prompt", "seed": "seed"},
        )
        byo_fill = _byo_fill
    except ImportError:
        pass
    return forms, byo_fill
