"""The studio's Batch section and its "Draft → final" action (Gradio wiring only).

`app.ui.page.build_ui` calls, inside its Blocks:
- `batch_panel(cb)` in the form column: a "Batch" accordion with the number of seeds, an
  optional seed list, prompts one per line, the combined quote and "Generate batch", then the
  batch's jobs (id, seed, prompt, state, progress) and their videos as they finish;
- `draft_final_panel()` under the job buttons: the "Draft → final" button and its note;
- `wire_batch(cb, batch, final, inputs=..., job_id=..., frames_md=...)` after the form's inputs
  exist, to wire both.

API names: `/batch_quote` (form values + number of seeds, seed list, prompts -> the combined
quote, with every limit the batch would break), `/generate_batch` (the same inputs; refuses the
whole batch up front or sends every job through `Studio.submit`, then streams the batch's table,
videos and job ids until every job is final), `/draft_final` (a job id -> the final job's form
values and a note with the draft's and the final's quotes; the page then shows the final's own
quote in the quote line and the operator presses Generate to send it). Planning and arithmetic
live in app/studio/batch.py and app/studio/promote.py.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.errors import user_message
from app.studio.batch import BatchRun, BatchService
from app.studio.forms import ADVANCED
from app.studio.promote import promote
from app.ui.history import HistoryCallbacks

BATCH_TICK_S = 0.5  # the batch table's refresh while jobs run
_N_FORM = 11 + len(ADVANCED)  # the page's form inputs before the batch's own three


class BatchCallbacks:
    """Thin functions over `BatchService` and `promote`; errors go through `cb._error`."""

    def __init__(self, cb: Any) -> None:
        self.cb = cb
        self.studio = cb.studio
        self.service = BatchService(cb.studio)
        self.form = HistoryCallbacks(cb)  # its form_for(values): the whole form in one answer

    def _plan(self, args: tuple[Any, ...]):
        values = self.cb.values(*args[:_N_FORM])
        count, seeds, prompts = args[_N_FORM:]
        return self.service.plan(values, count, seeds, prompts)

    def quote(self, request: gr.Request, *args: Any) -> str:
        user = getattr(request, "username", None) if request is not None else None
        count, seeds, prompts = args[_N_FORM:]
        if (count in (None, "", 1, 1.0)) and not (seeds or "").strip() and not prompts:
            return (
                "Set a number of seeds, a seed list or several prompts (one per line): each "
                "becomes its own job, quoted here together before you press Generate batch."
            )
        try:
            checked = self.service.check(self._plan(args), user)
        except Exception as exc:
            return f"⚠️ {user_message(exc, self.studio.settings.secret_values())}"
        line = f"**Batch of {checked.plan.describe()}:** {checked.quote.summary()}"
        if checked.refusals:
            line += (
                "\n\n⚠️ **Over the studio's limits** (Generate batch would be refused): "
                + "; ".join(html.escape(str(r), quote=False) for r in checked.refusals)
            )
        return line

    def generate(self, request: gr.Request, *args: Any) -> Iterator[tuple[Any, ...]]:
        user = getattr(request, "username", None) if request is not None else None
        try:
            run = self.service.submit(self._plan(args), user=user)
        except Exception as exc:
            raise self.cb._error(exc) from None
        if run.error:
            gr.Warning(run.error)
        yield from self.follow(run)

    def follow(self, run: BatchRun) -> Iterator[tuple[Any, ...]]:
        """Stream the batch's table until every job is final; videos as they finish."""
        tracker = self.studio.tracker
        ids = ", ".join(run.rids)
        shown: list[str] = []
        first = True
        while True:
            views = [(rid, self.studio.view(rid), self.studio.ledger.get(rid)) for rid in run.rids]
            done = all(v is None or v.final for _, v, _ in views)
            videos = [(v.video, f"{rid} · seed {_seed(row)}") for rid, v, row in views
                      if v is not None and v.video]  # fmt: skip
            table = batch_html(run, views)
            paths = [p for p, _ in videos]
            gallery: Any = videos if (paths != shown or first or done) else gr.skip()
            shown = paths
            yield table, gallery, ids if first or done else gr.skip()
            first = False
            if done:
                return
            live = next(rid for rid, v, _ in views if v is not None and not v.final)
            tracker.wait(live, tracker.version(live), BATCH_TICK_S)

    def draft_final(self, rid: str | None) -> tuple[Any, ...]:
        """The final job's form values (plain, for API clients) and the draft → final note."""
        try:
            p = promote(self.studio, (rid or "").strip())
        except Exception as exc:
            raise self.cb._error(exc) from None
        v = p.values
        return (
            v.pipeline, v.mode, v.prompt, v.negative_prompt, v.start_image, v.end_image, None,
            v.resolution, v.seconds, v.seed, v.randomize, *(getattr(v, k) for k in ADVANCED),
            p.summary(),
        )  # fmt: skip

    def draft_final_form(self, rid: str | None) -> tuple[Any, ...]:
        """The same values with the pipeline's visibility, choices and ranges for its quality
        mode (the page's form_update runs only on a user's own pipeline/mode choice)."""
        try:
            p = promote(self.studio, (rid or "").strip())
        except Exception as exc:
            raise self.cb._error(exc) from None
        return self.form.form_for(p.values)


def _seed(row: Any) -> str:
    return str((getattr(row, "params", None) or {}).get("seed", "-"))


def batch_html(run: BatchRun, views: list[tuple[str, Any, Any]]) -> str:
    """The batch's table: one row per job with its id, seed, prompt, state and progress."""
    states = [v.state if v is not None else "UNKNOWN" for _, v, _ in views]
    final = sum(1 for _, v, _ in views if v is None or v.final)
    completed = states.count("COMPLETED")
    actual = sum(
        row.cost.dollars for _, _, row in views if row is not None and row.cost is not None
    )
    line = (
        f"Batch of {len(run.rids)} job{'s' if len(run.rids) != 1 else ''}: {final} finished "
        f"({completed} completed) · quote ${run.quote.dollars:.4f}"
        + (f" · actual ${actual:.4f} billed so far" if actual else "")
    )
    rows = []
    for k, (rid, view, row) in enumerate(views, 1):
        prompt = str((getattr(row, "params", None) or {}).get("prompt", ""))
        short = prompt if len(prompt) <= 60 else prompt[:59] + "…"
        state = view.state if view is not None else "UNKNOWN"
        frac = view.progress.fraction if view is not None else 0.0
        text = view.progress.line if view is not None else "unknown job"
        rows.append(
            f'<tr data-rid="{html.escape(rid)}" data-state="{html.escape(state)}" '
            f'data-seed="{html.escape(_seed(row))}"><td>{k}</td><td><code>{html.escape(rid)}'
            f"</code></td><td>{html.escape(_seed(row))}</td><td>{html.escape(short)}</td>"
            f'<td>{html.escape(state)}</td><td><progress value="{frac:.4f}" max="1">'
            f"</progress> {html.escape(text)}</td></tr>"
        )
    error = f'<div class="wp-batch-error">⚠️ {html.escape(run.error)}</div>' if run.error else ""
    return (
        f'<div id="wp-batch-status" data-total="{len(run.rids)}" data-final="{final}" '
        f'data-completed="{completed}" data-rids="{html.escape(",".join(run.rids))}">'
        f'<div class="wp-line">{html.escape(line)}</div>{error}'
        "<table><tr><th>#</th><th>Job</th><th>Seed</th><th>Prompt</th><th>State</th>"
        f"<th>Progress</th></tr>{''.join(rows)}</table></div>"
    )


@dataclass
class BatchPanel:
    count: Any
    seeds: Any
    prompts: Any
    quote: Any
    button: Any
    status: Any
    gallery: Any
    ids: Any


@dataclass
class DraftFinalPanel:
    button: Any
    note: Any


def batch_panel(cb: Any) -> BatchPanel:
    """The Batch accordion (inside the page's form column)."""
    most = int(getattr(cb.studio.settings, "batch_max", 16))
    with gr.Accordion("Batch: several seeds or prompts", open=False, elem_id="wp-batch"):
        with gr.Row():
            count = gr.Number(
                value=1,
                precision=None,
                label=f"Number of seeds (1..{most})",
                info="random ones with Randomize seed, else the seed and the ones after it",
                elem_id="wp-batch-count",
            )
            seeds = gr.Textbox(
                label="Seed list (optional; replaces the number)",
                placeholder="e.g. 11, 12, 13",
                elem_id="wp-batch-seeds",
            )
        prompts = gr.Textbox(
            label="Prompts, one per line (empty: the form's prompt)",
            lines=3,
            elem_id="wp-batch-prompts",
        )
        quote = gr.Markdown(elem_id="wp-batch-quote")
        button = gr.Button("Generate batch", elem_id="wp-batch-generate")
        status = gr.HTML(elem_id="wp-batch-status-box")
        gallery = gr.Gallery(
            label="Batch videos",
            columns=4,
            height="auto",
            interactive=False,
            elem_id="wp-batch-gallery",
        )
        ids = gr.Textbox(label="Batch job ids", interactive=False, elem_id="wp-batch-ids")
    return BatchPanel(count, seeds, prompts, quote, button, status, gallery, ids)


def draft_final_panel() -> DraftFinalPanel:
    """ "Draft → final" for the job shown (under the page's job buttons)."""
    button = gr.Button("Draft → final (quality, larger size)", size="sm", elem_id="wp-draft-final")
    note = gr.Markdown(elem_id="wp-draft-final-note")
    return DraftFinalPanel(button, note)


def wire_batch(
    cb: Any,
    batch: BatchPanel,
    final: DraftFinalPanel,
    *,
    inputs: list[Any],
    job_id: Any,
    frames_md: Any,
) -> BatchCallbacks:
    bc = BatchCallbacks(cb)
    batch_inputs = [*inputs, batch.count, batch.seeds, batch.prompts]
    gr.on(
        [batch.count.change, batch.seeds.change, batch.prompts.change, *(c.change for c in inputs)],
        bc.quote,
        batch_inputs,
        batch.quote,
        api_name="batch_quote",
        show_progress="hidden",
        trigger_mode="always_last",
    )
    batch.button.click(
        bc.generate,
        batch_inputs,
        [batch.status, batch.gallery, batch.ids],
        api_name="generate_batch",
        show_progress="hidden",
    )
    final.button.click(
        bc.draft_final,
        job_id,
        [*inputs, final.note],
        api_name="draft_final",
        show_progress="hidden",
    ).then(
        bc.draft_final_form,
        job_id,
        inputs,
        api_name="draft_final_form",
        api_visibility="private",
        show_progress="hidden",
    ).then(
        cb.frames_note,
        [inputs[0], inputs[8]],  # pipeline, seconds
        frames_md,
        api_name="draft_final_frames",
        api_visibility="private",
        show_progress="hidden",
    )
    return bc
