"""The form's endpoint-dependent part: the LoRA picker and the post-step options.

`Picker(form, offers)` builds, inside the form's column, an accordion with up to MAX_STACK picker
rows (a LoRA of the endpoint, paired by name: app/studio/offers.py; a strength, and for a pair the
low-noise expert's own; a file name typed into a row is a single file), the form's hidden `loras`
field (fill's `loras` as JSON: the API's named parameter, the recipe, what Reuse restores; its
refusals are said under the accordion's header), and the post-step fields `upscale`,
`upscale_model`, `interpolate`, `interpolate_model`. The rows are not form fields: a user's change
to a row writes the `loras` field (`compose`), and a form filled from values (Reuse, Draft ->
final) shows its `loras` in the rows (`show`, called by `Form.updates`). Choices come from the
endpoint's last inventory (`Studio.offers`), refreshed with the accordion's button; smooth motion
is offered only when the endpoint has the RIFE node, else its checkbox says what to install.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

import gradio as gr

from app.studio.forms import PipelineForm
from app.studio.offers import (
    Offers,
    Pick,
    files_of,
    is_pair,
    key_of,
    labels,
    picks_of,
    picks_text,
)
from app.ui.fields import Checkbox, Dropdown, Textbox
from app.ui.quiet import QUIET
from app.ui.toasts import stopped
from workflows.loras import MAX_STACK, STRENGTH_MAX, STRENGTH_MIN, STRENGTH_STEP
from workflows.poststeps import post_steps

NONE = ("— none —", "")
UPSCALE_LABEL = "Upscale ×2"
SMOOTH_LABEL = "Smooth motion ×2 (RIFE frame interpolation)"
EXTRAS_ID = "wp-extras"  # the accordion
PAIR_HINT = "pairs are for the 14B's two experts; the 5B takes single files"
# a checkbox and its model side by side, stacked where both do not fit (a phone): Gradio's
# checkbox takes no minimum width (its min_width is not applied), and was squeezed to a word a
# line beside the model's dropdown
CSS = """
#wp-upscale, #wp-interpolate {min-width: min(200px, 100%) !important;}
"""


class Picker:
    """The picker rows and post-step fields of one form (see the module doc)."""

    def __init__(self, form: Any, offers: Callable[[], Offers]) -> None:
        self.form = form
        self.offers = offers
        self.rows: list[tuple[Any, Any, Any, Any]] = []  # (row, dropdown, strength, low)
        self.box: Any = None
        self.note: Any = None
        self.refresh: Any = None

    # -- layout --------------------------------------------------------------------------------
    def build(self) -> Picker:
        steps = post_steps()
        with gr.Accordion(
            "Your LoRAs · upscale · smooth motion", open=False, elem_id=EXTRAS_ID
        ) as self.box:
            self.note = gr.Markdown(elem_id="wp-offers-note")
            self.refresh = gr.Button(
                "Refresh from the endpoint", size="sm", elem_id="wp-offers-refresh"
            )
            for i in range(MAX_STACK):
                with gr.Row(visible=i == 0, elem_id=f"wp-lora-row-{i + 1}") as row:
                    pick = gr.Dropdown(
                        [NONE], value="", label=f"LoRA {i + 1}", allow_custom_value=True,
                        elem_id=f"wp-lora-{i + 1}", scale=3,
                    )  # fmt: skip
                    strength = self._strength("strength", f"wp-lora-{i + 1}-strength", True)
                    low = self._strength("low-noise strength", f"wp-lora-{i + 1}-low", False)
                self.rows.append((row, pick, strength, low))
            loras = self.form.add(
                "loras", Textbox(label="LoRAs (JSON)", value="", visible=False, elem_id="wp-loras")
            )
            # never rendered: its refusals go under the accordion's header (app/ui/inputs.py),
            # seen open or closed
            loras.errors_at = EXTRAS_ID
            with gr.Row():
                self.form.add("upscale", Checkbox(label=UPSCALE_LABEL, elem_id="wp-upscale"))
                self.form.add(
                    "upscale_model",
                    Dropdown(
                        [steps.upscale.default_model], value=steps.upscale.default_model,
                        label="Upscale model (models/upscale_models)", allow_custom_value=True,
                        elem_id="wp-upscale-model", min_width=240,
                    ),
                )  # fmt: skip
            with gr.Row():
                self.form.add("interpolate", Checkbox(label=SMOOTH_LABEL, elem_id="wp-interpolate"))
                self.form.add(
                    "interpolate_model",
                    Dropdown(
                        list(steps.interpolate.models), value=steps.interpolate.default_model,
                        label="RIFE checkpoint", elem_id="wp-interpolate-model", min_width=240,
                    ),
                )  # fmt: skip
        return self

    @staticmethod
    def _strength(label: str, elem_id: str, visible: bool) -> Any:
        return gr.Slider(
            STRENGTH_MIN, STRENGTH_MAX, value=1.0, step=STRENGTH_STEP, label=label,
            visible=visible, elem_id=elem_id, scale=2,
        )  # fmt: skip

    @property
    def components(self) -> list[Any]:
        """What `layout`/`show` update beside the form's fields."""
        return [self.box, self.note, *(c for row in self.rows for c in row)]

    def _row_inputs(self) -> list[Any]:
        return [c for _, pick, strength, low in self.rows for c in (pick, strength, low)]

    def layout(self, form: PipelineForm) -> dict[Any, Any]:
        """The part for `form`'s pipeline: hidden for a bring-your-own workflow; choices and the
        smooth-motion option from the endpoint's inventory."""
        offers = self.offers()
        out: dict[Any, Any] = {self.box: gr.update(visible=not form.byo)}
        out[self.note] = gr.update(value=note(offers, form))
        for _, pick, _, _ in self.rows:
            out[pick] = gr.update(choices=choices(offers))
        ups = list(offers.upscale_models) or [post_steps().upscale.default_model]
        f = self.form
        out[f["upscale_model"]] = gr.update(choices=ups)
        smooth = not offers.interpolation
        out[f["interpolate"]] = gr.update(
            interactive=smooth, info=offers.interpolation or None, label=SMOOTH_LABEL
        )
        return out

    def show(self, text: str | None) -> dict[Any, Any]:
        """The rows showing the `loras` field's stack (a file the endpoint lacks is shown too,
        marked: pre-flight names it before a paid run)."""
        offers = self.offers()
        base = choices(offers)
        known = {v for _, v in base}
        out: dict[Any, Any] = {}
        picks = picks_of(text, len(self.rows))
        for i, ((row, pick, strength, low), p) in enumerate(zip(self.rows, picks, strict=True)):
            extra = [] if p.key in known else [(missing_label(p.key), p.key)]
            pair = is_pair(p.key)
            shown = i == 0 or bool(p.key) or bool(picks[i - 1].key)
            out[row] = gr.update(visible=shown)
            out[pick] = gr.update(choices=base + extra, value=p.key)
            out[strength] = gr.update(value=p.strength, label=_strength_label(pair))
            out[low] = gr.update(
                visible=pair, value=p.strength_low if p.strength_low is not None else p.strength
            )
        return out

    # -- events --------------------------------------------------------------------------------
    def compose(self, *values: Any) -> dict[Any, Any]:
        """A user's change to a row: the `loras` field, and the rows' shape (a pair shows its
        low-noise strength; the next row appears once a row is used)."""
        picks = []
        out: dict[Any, Any] = {}
        for i, (_, _, strength, low) in enumerate(self.rows):
            key, s, lo = values[3 * i : 3 * i + 3]
            pair = is_pair(key)
            picks.append(Pick(key or "", float(s if s is not None else 1.0), lo if pair else None))
            out[strength] = gr.update(label=_strength_label(pair))
            out[low] = gr.update(visible=pair)
            if i + 1 < len(self.rows):
                out[self.rows[i + 1][0]] = gr.update(visible=bool(key) or None)
        out[self.form["loras"]] = picks_text(picks)
        return out

    def wire(
        self,
        studio_refresh: Callable[[], Offers],
        pipeline: Any,
        message: Callable[[BaseException], str],
    ) -> None:
        """Row changes -> the `loras` field; the refresh button -> a new inventory (a failure
        said as `message` words it: the page's one wording, secrets scrubbed)."""
        rows = self._row_inputs()
        outs = [self.form["loras"], *(c for row in self.rows for c in (row[0], row[2], row[3]))]
        for _, pick, strength, low in self.rows:
            gr.on(
                [pick.input, strength.input, low.input],
                self.compose, rows, outs,
                api_visibility="private", **QUIET, trigger_mode="always_last",
            )  # fmt: skip

        def refreshed(pipeline_id: str) -> dict[Any, Any]:
            try:
                studio_refresh()
            except Exception as exc:  # the note says it; the old inventory stays in use
                stopped(f"inventory not refreshed: {message(exc)}")
            return self.layout(self.form.forms[pipeline_id])

        # its progress shows on the note only: a target stays in the page's loading statuses,
        # and the accordion as one made every later event's message visit all its fields
        # (app/ui/quiet.py)
        self.refresh.click(
            refreshed, pipeline, self.components[:2] + [r[1] for r in self.rows]
            + [self.form["upscale_model"], self.form["interpolate"]],
            api_visibility="private", show_progress="minimal", show_progress_on=[self.note],
        )  # fmt: skip


def choices(offers: Offers) -> list[tuple[str, str]]:
    words = labels(offers.loras)
    return [NONE, *((w, key_of(o)) for w, o in zip(words, offers.loras, strict=True))]


def _strength_label(pair: bool) -> str:
    return "high-noise strength" if pair else "strength"


def missing_label(key: str) -> str:
    files = " + ".join(files_of(key).values()) or key
    return f"{files} (not in the endpoint's last inventory)"


def note(offers: Offers, form: PipelineForm) -> str:
    """The accordion's first line: where the choices come from."""
    if not offers.known:
        return (
            "The endpoint's inventory has not been fetched yet (a cold start may take minutes): "
            "no LoRAs listed. A row takes a typed file name, as the API's `loras` parameter does; "
            "pre-flight checks them before a paid run."
        )
    pairs = sum(1 for o in offers.loras if o.kind == "pair")
    text = (
        f"From the endpoint's inventory: {len(offers.loras)} LoRA option"
        f"{'s' if len(offers.loras) != 1 else ''} ({pairs} pair{'s' if pairs != 1 else ''}), "
        f"{len(offers.upscale_models)} upscale model"
        f"{'s' if len(offers.upscale_models) != 1 else ''}."
    )
    if form.modes and "turbo" in form.modes and not form.byo:
        text += " LoRAs go after the 4-step LoRA in turbo mode."
    if form.family == "5b":
        text += f" This is the 5B: {PAIR_HINT}."
    if offers.interpolation:
        text += f" Smooth motion: {offers.interpolation}."
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(offers.fetched_at))
    return html.escape(text) + f" <small>(inventory of {stamp})</small>"
