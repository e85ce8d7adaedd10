"""Draft → final: a finished turbo job (a draft) promoted to the quality mode at a larger size.

`promote(studio, rid, caller, inputs_dir=)` -> `Promotion`: the draft's pipeline, prompt, negative
prompt, seed, duration (same frame count) and input images (its kept copies, restored as files
under `inputs_dir`), with mode "quality", the quality mode's own defaults for steps/cfg/shift/
sampler/scheduler, and the next bigger resolution preset of the pipeline in the same orientation
(480p square -> 720p square); plus that final job's own quote (`Studio.prepare`) next to the
draft's. Nothing is sent: the caller submits `promotion.values` on the operator's confirm
(`Studio.submit`, so limits and pre-flight apply).

Refusals (InputError naming "job", what was wrong and what is allowed): an unknown job (or
another user's: `Studio.row` takes the caller), a job not
COMPLETED, a job not in turbo mode, a pipeline without a quality mode (bring-your-own), a draft
already at the pipeline's largest size, a draft whose input images were not kept.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.endpoint.states import JobState
from app.errors import InputError
from app.studio.cost import Quote
from app.studio.forms import ADVANCED, FormValues, PipelineForm
from app.studio.history import restore_input
from workflows.catalog import Preset

DRAFT_MODE = "turbo"
FINAL_MODE = "quality"


@dataclass(frozen=True)
class Promotion:
    draft: str  # the draft's row id
    draft_resolution: str
    draft_quote: Quote | None  # as stored with the draft
    values: FormValues  # the final job's form values
    quote: Quote  # the final job's own quote

    def summary(self) -> str:
        v = self.values
        dq = self.draft_quote.dollars if self.draft_quote else 0.0
        return (
            f"**Draft → final** from `{self.draft}`: {DRAFT_MODE} {self.draft_resolution} → "
            f"**{v.mode} {v.resolution}**, same seed {v.seed} and prompt. Draft quote "
            f"${dq:.4f}; **final quote:** {self.quote.summary()}. "
            "Press Generate to send it."
        )


def orientation(p: Preset) -> int:
    return (p.width > p.height) - (p.width < p.height)


def larger_preset(form: PipelineForm, label: str) -> Preset | None:
    """The next bigger preset of `form` with the orientation of `label` (None: none bigger)."""
    here = form.preset(label)
    if here is None:
        return None
    area = here.width * here.height
    bigger = [
        p for p in form.presets if orientation(p) == orientation(here) and p.width * p.height > area
    ]
    return min(bigger, key=lambda p: p.width * p.height, default=None)


def _refuse(rid: str, why: str) -> InputError:
    return InputError(
        "job", f"{rid} {why}; allowed: a COMPLETED {DRAFT_MODE} job of a pipeline with a "
        f"{FINAL_MODE} mode and a larger size",
    )  # fmt: skip


def final_values(
    studio: Any, rid: str, caller: Any, inputs_dir: Path | None = None
) -> tuple[FormValues, str, Any]:
    """The final job's form values for draft `rid`, the draft's resolution label and its row."""
    rid = (rid or "").strip()
    row = studio.row(rid, caller)
    if row.state is not JobState.COMPLETED:
        raise _refuse(rid, f"is {row.state}, not finished")
    form = studio.forms.get(row.template)
    if form is None or form.byo or FINAL_MODE not in form.modes:
        raise _refuse(rid, f"ran on {row.template}, which has no {FINAL_MODE} mode")
    if DRAFT_MODE not in form.modes:
        only = "/".join(form.modes)
        raise _refuse(rid, f"ran on {form.title}, which is {only} only: it has no drafts")
    if row.mode != DRAFT_MODE:
        raise _refuse(rid, f"ran in {row.mode} mode, not as a {DRAFT_MODE} draft")
    draft = studio.reuse(rid, caller)
    if form.preset(draft.resolution) is None:  # an older row: a size no longer a preset
        offered = ", ".join(p.label for p in form.presets)
        raise _refuse(rid, f"ran at a size that is not one of {form.title}'s presets "
                      f"({draft.resolution or 'none recorded'}; they are {offered})")  # fmt: skip
    bigger = larger_preset(form, draft.resolution)
    if bigger is None:
        raise _refuse(rid, f"is already at the largest size of {form.title} ({draft.resolution})")
    quality = form.advanced.get(FINAL_MODE) or {}
    images: dict[str, str | None] = {"start_image": None, "end_image": None}
    for param, used in (("start_image", form.needs_start), ("end_image", form.needs_end)):
        name = str((row.params or {}).get(param) or "")
        if not used or not name:
            continue
        kept = studio.kept_input(rid, Path(name).name)
        out = Path(inputs_dir or Path(studio.settings.data_dir) / "results" / rid / "inputs")
        restored = restore_input(kept, out / Path(name).name) if kept else None
        if restored is None:
            raise _refuse(rid, f"has no kept {param.replace('_', ' ')} ({name})")
        images[param] = str(restored)
    values = dataclasses.replace(
        draft,
        mode=FINAL_MODE,
        resolution=bigger.label,
        randomize=False,
        **images,
        **{k: (quality[k].default if k in quality else None) for k in ADVANCED},
    )
    return values, draft.resolution, row


def promote(studio: Any, rid: str, caller: Any, inputs_dir: Path | None = None) -> Promotion:
    """The final job for draft `rid` (a job `caller` may see) with its own quote (nothing sent)."""
    values, draft_resolution, row = final_values(studio, rid, caller, inputs_dir)
    quote = studio.prepare(values).quote
    return Promotion(row.id, draft_resolution, row.quote, values, quote)
