"""What the user asked, kept for reuse: the form values a job is stored with, and the one-time
migration of ledger rows written before the ledger kept them.

`asked(values, seed)` is the FormValues a ledger row keeps: the user's values with the seed the
job actually ran with (fixed, not randomized) and without the upload paths (the images are kept
per job in the data folder and restored from there). `Studio.reuse(rid)` gives it back as it was.

`migrate_forms(ledger, forms)` gives every older row (no `form` column yet) its values ONCE
(the ledger's schema step 3, app/studio/migrations.py, runs it when the ledger is opened), read
back from what was sent: width x height -> the pipeline's preset label, frames -> the duration
slider's value. This reverse mapping lives here only, for those rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from app.studio.forms import FormValues, PipelineForm
from app.studio.history import form_seconds
from app.studio.ledger import JobRow, Ledger


def asked(values: FormValues, seed: int | None) -> FormValues:
    """The values a ledger row keeps: the seed it ran with, no upload paths."""
    return dataclasses.replace(values, seed=seed, randomize=False, start_image=None, end_image=None)


def legacy_form(row: JobRow, forms: Mapping[str, PipelineForm]) -> FormValues:
    """The form values of a row stored before the ledger kept them, read back from its params."""
    p = dict(row.params or {})
    form = forms.get(row.template)
    resolution = ""
    seconds = float(p.get("seconds") or 5.0)
    if form is not None:
        size = (p.get("width"), p.get("height"))
        resolution = next((pr.label for pr in form.presets if (pr.width, pr.height) == size), "")
        if not form.byo:
            seconds = form_seconds(seconds, p.get("frames"), form.seconds, form.fps)
    return FormValues(
        pipeline=row.template if form is not None else next(iter(forms)),
        mode=row.mode,
        prompt=str(p.get("prompt", "")),
        negative_prompt=str(p.get("negative_prompt", "")),
        resolution=resolution,
        seconds=seconds,
        seed=p.get("seed"),
        randomize=False,
        steps=p.get("steps"),
        cfg=p.get("cfg"),
        shift=p.get("shift"),
        sampler=p.get("sampler"),
        scheduler=p.get("scheduler"),
        lora_high=p.get("lora_high"),
        lora_low=p.get("lora_low"),
    )


def migrate_forms(ledger: Ledger, forms: Mapping[str, PipelineForm]) -> int:
    """Give every row without stored form values its values (once); returns how many."""
    rows = ledger.without_form()
    for row in rows:
        ledger.update(row.id, form=legacy_form(row, forms))
    return len(rows)
