"""The page's honest-inputs and money wiring (Gradio only; the rules live in app/studio):

- `field_errors_html(form, shown)` + FIELD_ERRORS_JS: the quote line's refusal also shown next
  to its field (`.wp-field-error` inside the field's block, once the user has acted on the
  form; a Generate pressed meanwhile says it in the status panel, "Not submitted: …");
- `Extras.ran_seed` / `use_seed`: the seed the shown job ran with, and "Use this seed" (fills the
  seed box, Randomize off);
- `Extras.rerun_ask`: "Rerun exactly" first shows the rerun's quote and asks; "Confirm rerun"
  sends it (`/rerun`);
- `Extras.filled`: after Reuse settings or Draft → final, a note saying what the form now holds
  (the page scrolls the form into view, SCROLL_TO_FORM_JS);
- `Extras.match_preset`: an uploaded start image selects the preset of its aspect ratio;
- `Extras.spend`: in RunPod mode, the endpoint, the GPU price and today's spend vs the budget.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from app.studio.chain_history import is_chain
from app.studio.checks.health import ColdStart
from app.studio.inputs import matching_preset
from app.studio.markup import md_short, md_text
from app.studio.owners import Caller
from app.studio.shown import Shown
from app.ui.callbacks import caller_of, over_limits, user_of
from app.ui.health_route import cold_attrs
from app.ui.toasts import refusal

# Places each `[data-field]` message of the (hidden) errors box inside its field's block, once
# the user has acted on the form (changed a field, pressed a button other than a section's
# toggle, Ctrl+Enter): a fresh page's empty prompt is said on the quote line, not in red under a
# field nobody has touched yet (nor as soon as the prompt is clicked into, before any typing).
FIELD_ERRORS_JS = """
let acted = false;
const ACTS = ["input", "change", "click", "keydown"];
const acts = (e) => e.type === "input" || e.type === "change"
  || (e.type === "click" && e.target.closest && e.target.closest("button:not(.label-wrap)"))
  || (e.type === "keydown" && (e.ctrlKey || e.metaKey) && e.key === "Enter");
const place = () => {
  document.querySelectorAll(".wp-field-error").forEach((e) => e.remove());
  if (!acted) return;
  element.querySelectorAll("[data-target]").forEach((src) => {
    const target = document.getElementById(src.dataset.target);
    if (!target) return;
    const note = document.createElement("div");
    note.className = "wp-field-error";
    note.setAttribute("role", "alert");
    note.dataset.field = src.dataset.field;
    note.textContent = src.textContent;
    // an accordion (the LoRA picker's, for its hidden `loras` field): under its header, seen
    // open or closed
    const head = [...target.children].find((c) => c.classList.contains("label-wrap"));
    if (head) head.after(note); else target.appendChild(note);
  });
};
const act = (e) => {
  if (acted || !e.isTrusted || !acts(e)) return;
  acted = true;
  ACTS.forEach((t) => document.removeEventListener(t, act, true));
  place();
};
ACTS.forEach((t) => document.addEventListener(t, act, true));
if (typeof watch === "function") watch("value", place);
place();
"""
SCROLL_TO_FORM_JS = (
    "() => { const f = document.querySelector('#wp-form-note');"
    " if (f) f.scrollIntoView({block: 'start'}); }"
)
CSS = """
#wp-field-errors {display: none;}
.wp-field-error {color: #b42318; font-size: 0.92em; margin-top: 4px;}
"""


def field_errors_html(form: Any, shown: Shown | None) -> str:
    """The refusal the quote line shows, addressed to its field's component (by elem_id, or the
    block a hidden field names as `errors_at`: the picker's `loras`); for a quoted job (one
    refused for its prompt alone is quoted too), its cold start, which prices the health panel's
    note (app/ui/health_route.py)."""
    quote = shown.quote if shown is not None else None
    cold = cold_attrs(ColdStart.from_quote(quote)) if quote is not None else ""
    if shown is None or not shown.problem or shown.field not in form.names:
        return f"<div {cold}></div>"
    field = form[shown.field]
    target = getattr(field, "errors_at", None) or field.elem_id
    return (
        f'<div {cold}><span data-field="{shown.field}" data-target="{html.escape(target)}">'
        f"⚠️ {html.escape(shown.problem)}</span></div>"
    )


class Extras:
    """Thin callbacks over the `Studio` for the seed, rerun and filled-form lines."""

    def __init__(self, cb: Any) -> None:
        self.cb = cb
        self.studio = cb.studio

    def ran_seed(self, caller: Caller, job_id: str | None) -> str:
        """The seed line for the job shown (the page's job_shown; its button shows with it)."""
        seed = self._seed(caller, job_id)
        return "" if seed is None else f"**Seed that ran:** `{seed}`"

    def use_seed(self, request: gr.Request, job_id: str | None) -> tuple[Any, Any]:
        """The shown job's seed in the seed box, Randomize off (the next job repeats it)."""
        seed = self._seed(caller_of(self.studio, request), job_id)
        if seed is None:
            raise refusal("job: no job with a seed is shown; allowed: a finished or live job")
        gr.Info(f"Seed {seed} is in the seed box; Randomize seed is off.")
        return seed, False

    def _seed(self, caller: Caller, job_id: str | None) -> int | None:
        """The seed of the job shown, when the caller may see it."""
        if not (job_id or "").strip():
            return None
        try:
            row = self.studio.row(job_id, caller, workflow=False)
        except Exception:  # not this caller's job: no seed to offer
            return None
        seed = (row.params or {}).get("seed")
        return int(seed) if isinstance(seed, int | float) else None

    def rerun_ask(self, request: gr.Request, job_id: str | None) -> tuple[str, Any]:
        """The rerun's quote (its own workflow and seed, priced now), the limits it would break
        (as the form's quote line says them), and the confirm button."""
        try:
            row = self.studio.row(job_id, caller_of(self.studio, request))
            _, q = self.studio.rerun_quote(row)
            refusals = self.studio.rerun_refusals(row, user_of(request))
        except Exception as exc:
            raise self.cb.error(exc) from None
        seed = (row.params or {}).get("seed", "-")
        note = (
            f"**Rerun job `{row.id}` exactly** (same workflow, seed {seed}): {q.summary()}. "
            "Press **Confirm rerun** to send it."
        )
        return note + over_limits(refusals, "Confirm rerun"), gr.update(visible=True)

    def rerun_sent(self) -> tuple[str, Any]:
        return "", gr.update(visible=False)

    def filled(self, job_id: str | None, **fields: Any) -> str:
        """What the form now holds, after Reuse settings or Draft → final."""
        try:
            v = self.cb.form.values(fields)
        except Exception:
            return ""
        form = self.studio.forms.get(v.pipeline)
        title = form.title if form is not None else v.pipeline
        seed = "random seed" if v.randomize else f"seed {v.seed}"
        size = f", {v.resolution}" if v.resolution else ""
        source = (job_id or "").strip()
        chain = is_chain(source)
        shown = f"`{source}`" if source.replace("-", "").isalnum() else md_text(source)
        # the prompt as text (Markdown would render an image link and fetch it), cut at a word
        return (
            f"✅ **Form filled from {'chain' if chain else 'job'} {shown}:** {title}, {v.mode}"
            f"{size}, {v.seconds:g} s, {seed}, prompt “{md_short(v.prompt, 60)}”. Check the "
            f"quote, then {'Run storyboard' if chain else 'Generate'}."
        )

    def match_preset(self, request: gr.Request, pipeline: str, start_image: Any) -> Any:
        """On an uploaded start image: the resolution preset matching its aspect ratio."""
        form = self.studio.forms.get(pipeline)
        if form is None or not start_image:
            return gr.skip()
        caller = caller_of(self.studio, request)
        if not self.studio.may_read(str(start_image), caller):  # the quote line says why
            return gr.skip()
        try:
            label = matching_preset(form, start_image)  # a file path (type="filepath")
        except Exception:  # an unreadable image: the quote line says why
            return gr.skip()
        if not label:
            return gr.skip()
        gr.Info(f"Resolution set to “{label}”, the preset matching the start image's shape.")
        return label
