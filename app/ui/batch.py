"""The studio's Batch section and its "Draft → final" action (Gradio wiring only).

`app.ui.page.build_ui` calls, inside its Blocks:
- `batch_panel(cb)` in the form column: a "Batch" accordion with the number of seeds, an
  optional seed list, prompts one per line, the combined quote and "Generate batch", then the
  batch's jobs (id, seed, prompt, state, progress) and their videos as they finish;
- `draft_final_panel()` under the job buttons: the "Draft → final" button and its note;
- `wire_batch(cb, batch, final, job_id=..., after_fill=...)` after the form exists, to wire both.

API names: `/batch_quote` (the form's fields + count, seeds, prompts -> the combined
quote, with every limit the batch would break), `/generate_batch` (the same inputs; refuses the
whole batch up front or sends every job through `Studio.submit`, then streams the batch's table,
videos and job ids until every job is final), `/batch_attach` (the job ids /generate_batch
answered -> the same stream; the caller's own jobs only, as /attach: another's is an unknown
row), `/draft_final` (a job id -> the final job's form
values and a note with the draft's and the final's quotes; the page then shows them in the
final's form, with its own quote in the quote line, and the operator presses Generate to send it;
the service is asked once per click). Planning and arithmetic
live in app/studio/batch.py and app/studio/promote.py.

As for one job (app/ui/page.py), the page keeps its batch's job ids in `gr.BrowserState`
(localStorage): a reload shows the batch again, running or ended, and follows it to its end (the
jobs live in the ledger, not in the page), and a batch's jobs join this session's strip once it
has ended.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.errors import InputError
from app.studio.batch import BatchPlan, BatchService
from app.studio.forms import field_of
from app.studio.owners import Caller
from app.studio.promote import promote
from app.studio.shown import BatchShown, priced
from app.ui import requote
from app.ui.callbacks import (
    PRICED_PROMPT,
    caller_of,
    files_optional,
    over_limits,
    strip_ids,
    user_of,
    warned,
)
from app.ui.fields import Number, Textbox, described
from app.ui.quiet import PRIVATE, QUIET
from app.ui.toasts import stopped
from workflows.errors import as_sent

BATCH_TICK_S = 0.5  # the batch table's refresh while jobs run
IDS_TEXT = "the job ids /generate_batch answered (wp-..., separated by commas)"
STORE_KEY = "wanpod_batch"  # the localStorage key of the page's batch's job ids


@dataclass
class BatchPanel:
    accordion: Any
    count: Any
    seeds: Any
    prompts: Any
    quote: Any
    drawn: Any  # a gr.State: what the batch quote showed (a BatchShown: seeds, jobs, total)
    button: Any
    status: Any
    gallery: Any
    ids: Any
    store: Any  # a gr.BrowserState: the batch's job ids, followed again after a reload


@dataclass
class DraftFinalPanel:
    button: Any
    note: Any
    values: Any  # a gr.State: the final's FormValues, for the page's form


class BatchCallbacks:
    """Thin functions over `BatchService` and `promote`; errors go through `cb.error`. The batch
    events read the form by name (`cb.form.kwargs`) plus the batch's own count, seeds, prompts."""

    def __init__(self, cb: Any, final: DraftFinalPanel) -> None:
        self.cb = cb
        self.studio = cb.studio
        self.service = BatchService(cb.studio)
        self.final = final

    def _plan(
        self,
        request: gr.Request | None,
        count: Any,
        seeds: Any,
        prompts: Any,
        fields: dict[str, Any],
        drawn: Any = None,
    ) -> BatchPlan:
        values = self.cb.values(fields, request)
        shown = priced(drawn)
        return self.service.plan(values, count, seeds, prompts, shown.seeds if shown else ())

    @files_optional
    def quote(
        self, request: gr.Request, count: Any, seeds: Any, prompts: Any, **fields: Any
    ) -> tuple[str, BatchShown | None]:
        """The batch's combined quote (each job quoted, then added up) and every limit the
        batch would break; with what it showed (a State: Generate batch runs the seeds it
        drew, and is refused unless it sends the jobs it priced, or when it showed no price)."""
        if (count in (None, "", 1, 1.0)) and not (seeds or "").strip() and not prompts:
            return (
                "Set a number of seeds, a seed list or several prompts (one per line): each "
                "becomes its own job, quoted here together before you press Generate batch."
            ), BatchShown(
                problem=f"number of seeds {as_sent(count)} with no seed list and no prompts is "
                "one job, not a batch: set a number of seeds of 2 or more, a seed list or "
                "several prompts, one per line"
            )
        try:
            line, drawn = self._line(request, count, seeds, prompts, fields)
        except Exception as exc:
            message = self.cb.message(exc)
            refusal = warned(message)
            if field_of(str(getattr(exc, "field", ""))) != "prompt":
                return refusal, BatchShown(problem=message)
            # refused for the form's prompt alone (a batch of seeds): priced as the form's own
            # quote line is (Callbacks.quoted), the refusal under the price; Generate batch
            # checks the form again
            try:
                line, drawn = self._line(
                    request, count, seeds, prompts, {**fields, "prompt": PRICED_PROMPT}
                )
            except Exception:
                return refusal, BatchShown(problem=message)
            return f"{line}\n\n{refusal}", drawn
        return line + self.cb.images_refusal(fields, request), drawn

    @files_optional
    def quote_line(
        self, request: gr.Request, count: Any, seeds: Any, prompts: Any, **fields: Any
    ) -> str:
        """The API's /batch_quote: the line only (an API client is not held to a quote)."""
        return self.quote(request, count, seeds, prompts, **fields)[0]

    def _line(
        self, request: gr.Request, count: Any, seeds: Any, prompts: Any, fields: dict[str, Any]
    ) -> tuple[str, BatchShown]:
        plan = self._plan(request, count, seeds, prompts, fields)
        checked = self.service.check(plan, user_of(request))
        line = f"**Batch of {checked.plan.describe()}:** {checked.quote.summary()}"
        return line + over_limits(checked.refusals, "Generate batch"), checked.shown()

    @files_optional
    def generate(
        self,
        request: gr.Request,
        count: Any,
        seeds: Any,
        prompts: Any,
        drawn: Any = None,
        **fields: Any,
    ) -> Iterator[tuple[Any, ...]]:
        """Refuse the whole batch up front, or send every job; then stream the batch's table,
        videos and job ids until every job is final. `drawn`: what the batch quote showed (a
        State: its seeds are run, and a batch other than the one it priced, or one pressed while
        it showed no price, is refused; None for an API client, whose random seeds are drawn
        now)."""
        try:
            plan = self._plan(request, count, seeds, prompts, fields, drawn)
            run = self.service.submit(plan, user=user_of(request), shown=priced(drawn))
        except Exception as exc:
            raise self.cb.error(exc) from None
        if run.error:
            stopped(run.error)
        yield from self.follow(run.rids, caller_of(self.studio, request), run.error)

    def attach(self, request: gr.Request, ids: str | None) -> Iterator[tuple[Any, ...]]:
        """The API's /batch_attach: a batch's jobs by id (as /generate_batch answered them),
        streamed as /generate_batch streams them; an id the caller may not see is an unknown
        row (as /attach answers it: whose it is is not said)."""
        try:
            rids = self.service.ids(ids)
        except Exception as exc:
            raise self.cb.error(exc) from None
        yield from self.follow(rids, caller_of(self.studio, request))

    def page_attach(self, request: gr.Request, stored: str | None) -> Iterator[tuple[Any, ...]]:
        """The page's batch at load (its ids kept in the browser): its accordion opened and
        its table followed to its end, running or ended (a job the caller may not see is an
        unknown row, as /batch_attach answers it); none kept (or unreadable) shows nothing.
        Opened whatever its jobs' states: the table lives in the accordion, which the page
        does not mount while it is closed, and a batch that ended while the page reloaded
        (before this read it) is still the page's batch."""
        try:
            rids = self.service.ids(stored)
        except InputError:
            yield (gr.skip(),) * 4
            return
        opened: Any = gr.Accordion(open=True)
        for answer in self.follow(rids, caller_of(self.studio, request)):
            yield (*answer, opened)
            opened = gr.skip()

    def strip(
        self, request: gr.Request, ids: str | None, rids: list[str] | None
    ) -> tuple[Any, ...]:
        """This session's strip once a batch the page followed has ended: its jobs join it (the
        last one first, as the newest), shown as `Callbacks.recent` shows a job's end."""
        try:
            batch = self.service.ids(ids)
        except InputError:
            return gr.skip(), gr.skip()
        for rid in batch:
            rids = strip_ids(rids, rid)
        return self.cb.recent(request, None, rids)

    def _views(self, rids: tuple[str, ...], caller: Caller) -> list[tuple[str, Any, Any]]:
        """Each job's view and row (None, None: not one of the caller's)."""
        return [(r, self.studio.view(r, caller), self._row(r, caller)) for r in rids]

    def follow(
        self, rids: tuple[str, ...], caller: Caller, error: str = ""
    ) -> Iterator[tuple[Any, ...]]:
        """Stream the batch's table until every job is final; videos as they finish. `error`:
        why the batch stopped before its end (`BatchRun.error`)."""
        tracker = self.studio.tracker
        ids = ", ".join(rids)
        shown: list[str] = []
        first = True
        while True:
            views = self._views(rids, caller)
            done = all(v is None or v.final for _, v, _ in views)
            videos = [(v.video, f"{rid} · seed {_seed(row)}") for rid, v, row in views
                      if v is not None and v.video]  # fmt: skip
            table = batch_html(rids, views, error)
            paths = [p for p, _ in videos]
            gallery: Any = videos if (paths != shown or first or done) else gr.skip()
            shown = paths
            yield table, gallery, ids if first or done else gr.skip()
            first = False
            if done:
                return
            live = next(rid for rid, v, _ in views if v is not None and not v.final)
            tracker.wait(live, tracker.version(live), BATCH_TICK_S)

    def _row(self, rid: str, caller: Caller) -> Any:
        try:
            return self.studio.row(rid, caller, workflow=False)
        except InputError:
            return None

    def draft_final(self, request: gr.Request, job_id: str | None) -> dict[Any, Any]:
        """A finished turbo draft's final: its form values in quality mode at the next bigger
        size (same seed and prompt), and a note with the draft's and the final's quotes."""
        try:
            p = promote(self.studio, (job_id or "").strip(), caller_of(self.studio, request))
        except Exception as exc:
            raise self.cb.error(exc) from None
        final = {self.final.note: p.summary(), self.final.values: p.values}
        return {**self.cb.form.plain(p.values), **final}


def _seed(row: Any) -> str:
    return str((getattr(row, "params", None) or {}).get("seed", "-"))


# the table fits the form's column on a desktop; on a phone each job is a card of a few lines,
# its state and progress first (six columns there scrolled sideways, the state out of view)
CSS = """
#wp-batch-status .wp-batch-table {overflow-x: auto; max-width: 100%;}
#wp-batch-status table {font-size: 0.85em; margin: 4px 0;}
#wp-batch-status th, #wp-batch-status td {padding: 4px 6px;}
#wp-batch-status td code {white-space: nowrap; font-size: 0.95em;}
#wp-batch-status td progress {display: block; width: 100%; min-width: 4em; height: 8px;}
@media (max-width: 640px) {
  #wp-batch-status :is(table, tbody) {display: block; width: 100%; border: none;}
  #wp-batch-status thead {display: none;}
  #wp-batch-status tbody tr {display: flex; flex-wrap: wrap; align-items: center; gap: 0 8px;
    padding: 6px 0; border: none; border-bottom: 1px solid var(--border-color-primary);}
  #wp-batch-status tbody td {display: block; padding: 0; border: none; min-width: 0;
    line-height: 1.4;}
  #wp-batch-status td.wp-k {order: 0;}
  #wp-batch-status td.wp-state {order: 1; font-weight: 600;}
  #wp-batch-status td.wp-progress {display: contents;}
  #wp-batch-status td.wp-progress progress {order: 2; flex: 1 1 3em;}
  #wp-batch-status td.wp-progress span {order: 3; flex: 1 1 100%;}
  #wp-batch-status :is(td.wp-job, td.wp-seed) {order: 4; font-size: 0.9em;}
  #wp-batch-status td.wp-job code {padding: 0;}
  #wp-batch-status td.wp-seed::before {content: "seed ";}
  #wp-batch-status td.wp-prompt {order: 5; flex: 1 1 100%; overflow: hidden;
    text-overflow: ellipsis; white-space: nowrap;}
}
/* the videos' gallery as tall as its rows (Gradio keeps an "auto" height at 320-450 px) except
   while a video is previewed (the preview fills that height), in two columns on a phone (four
   of at least 100 px overflow it) */
#wp-batch-gallery:not(:has(.preview)) .grid-wrap.fixed-height {min-height: 0;}
@media (max-width: 640px) {
  #wp-batch-gallery .grid-container {grid-template-columns: repeat(2, minmax(0, 1fr));}
}
"""


def batch_html(rids: tuple[str, ...], views: list[tuple[str, Any, Any]], error: str = "") -> str:
    """The batch's table: one row per job with its id, seed, prompt, state and progress; the
    quote is its jobs' own (each kept in its ledger row, the price its line showed), so a
    batch followed again after a reload says the same."""
    states = [v.state if v is not None else "UNKNOWN" for _, v, _ in views]
    final = sum(1 for _, v, _ in views if v is None or v.final)
    completed = states.count("COMPLETED")
    rows = [row for _, _, row in views if row is not None]
    quoted = sum(row.quote.dollars for row in rows if row.quote is not None)
    actual = sum(row.cost.dollars for row in rows if row.cost is not None)
    billed = f" · actual ${actual:.4f} billed" if actual else ""
    line = (
        f"Batch of {len(rids)} job{'s' if len(rids) != 1 else ''}: {final} finished "
        f"({completed} completed) · quote ${quoted:.4f}"
        + billed
        + (" so far" if billed and final < len(rids) else "")
    )
    cells = []
    for k, (rid, view, row) in enumerate(views, 1):
        prompt = str((getattr(row, "params", None) or {}).get("prompt", ""))
        short = prompt if len(prompt) <= 60 else prompt[:59] + "…"
        state = view.state if view is not None else "UNKNOWN"
        frac = view.progress.fraction if view is not None else 0.0
        text = view.progress.line if view is not None else "unknown job"
        cells.append(
            f'<tr data-rid="{html.escape(rid)}" data-state="{html.escape(state)}" '
            f'data-seed="{html.escape(_seed(row))}"><td class="wp-k">{k}</td>'
            f'<td class="wp-job"><code>{html.escape(rid)}</code></td>'
            f'<td class="wp-seed">{html.escape(_seed(row))}</td>'
            f'<td class="wp-prompt">{html.escape(short)}</td>'
            f'<td class="wp-state">{html.escape(state)}</td><td class="wp-progress">'
            f'<progress value="{frac:.4f}" max="1"></progress> <span>{html.escape(text)}</span>'
            "</td></tr>"
        )
    stop = f'<div class="wp-batch-error">⚠️ {html.escape(error)}</div>' if error else ""
    return (
        f'<div id="wp-batch-status" data-total="{len(rids)}" data-final="{final}" '
        f'data-completed="{completed}" data-rids="{html.escape(",".join(rids))}">'
        f'<div class="wp-line">{html.escape(line)}</div>{stop}'
        '<div class="wp-batch-table"><table><thead><tr><th>#</th><th>Job</th><th>Seed</th>'
        "<th>Prompt</th><th>State</th>"
        f"<th>Progress</th></tr></thead><tbody>{''.join(cells)}</tbody></table></div></div>"
    )


def batch_panel(cb: Any, browser_key: str = "") -> BatchPanel:
    """The Batch accordion (inside the page's form column). `browser_key`: as the page's job
    store's (app/ui/page.py), for the batch's job ids kept in the browser."""
    most = int(getattr(cb.studio.settings, "batch_max", 16))
    with gr.Accordion(
        "Batch: several seeds or prompts", open=False, elem_id="wp-batch"
    ) as accordion:
        with gr.Row():
            count = Number(
                value=1,
                precision=None,
                label=f"Number of seeds (1..{most})",
                info="random ones with Randomize seed, else the seed and the ones after it",
                elem_id="wp-batch-count",
            )
            seeds = Textbox(  # value "": optional in the API as on the form (not "Hello!!")
                "",
                label="Seed list (optional; replaces the number)",
                placeholder="e.g. 11, 12, 13",
                elem_id="wp-batch-seeds",
            )
        prompts = Textbox(
            "",
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
            fit_columns=False,  # a tile is a quarter of the row, however few videos there are
            height="auto",
            interactive=False,
            buttons=["fullscreen"],  # not "download all": each video has its own download
            elem_id="wp-batch-gallery",
        )
        ids = Textbox(label="Batch job ids", interactive=False, elem_id="wp-batch-ids")
    # outside the accordion: a closed one does not mount it, and it reads the browser's copy as
    # it mounts
    store = gr.BrowserState("", storage_key=STORE_KEY, secret=browser_key or None)
    described(ids, IDS_TEXT)
    described(count, f"how many seeds (1..{most}): random ones when randomize is true, else the "
              "form's seed and the ones after it")  # fmt: skip
    described(seeds, "the seeds, separated by commas or spaces; replaces count when given")
    described(prompts, "prompts, one per line, each run with every seed; empty: the form's")
    return BatchPanel(
        accordion, count, seeds, prompts, quote, gr.State(None), button, status, gallery, ids, store
    )


def draft_final_panel() -> DraftFinalPanel:
    """ "Draft → final" for the job shown (under the page's job buttons)."""
    button = gr.Button("Draft → final (quality, larger size)", size="sm", elem_id="wp-draft-final")
    note = gr.Markdown(elem_id="wp-draft-final-note")
    return DraftFinalPanel(button, note, gr.State(None))


def wire_batch(
    cb: Any,
    batch: BatchPanel,
    final: DraftFinalPanel,
    *,
    blocks: Any,
    job_id: Any,
    after_fill: Callable[[Any], Any],
    history: Any = None,
    recent: tuple[Any, Any] | None = None,
) -> BatchCallbacks:
    """The batch's and draft -> final's events; `after_fill(event)` chains what follows a filled
    form (its quote and frame note); `history` (app/ui/history.py's History): its gallery is
    refreshed once the batch has ended, as after a job the page followed; `recent`: this
    session's strip and its job ids (a State), which the batch's jobs join once it has ended.
    Call inside the page's Blocks (`blocks`): the batch is followed again at its load (its ids
    kept in the browser), and /batch_attach has a hidden trigger of its own."""
    bc = BatchCallbacks(cb, final)
    form = cb.form
    batch_inputs = {**form.kwargs, "count": batch.count, "seeds": batch.seeds,
                    "prompts": batch.prompts}  # fmt: skip
    # its quote follows the form's and its own fields in order (app/ui/requote.py: the page's
    # form listener asks for every quote line)
    requote.line(requote.BATCH, bc.quote_line, batch_inputs, [batch.quote],
                 api_name="batch_quote", page=(bc.quote, [batch.quote, batch.drawn]))  # fmt: skip
    requote.on([batch.count.change, batch.seeds.change, batch.prompts.change])
    ran = batch.button.click(
        bc.generate,
        inputs_kwargs={**batch_inputs, "drawn": batch.drawn},
        outputs=[batch.status, batch.gallery, batch.ids],
        api_name="generate_batch",
        **QUIET,
    )
    # the page keeps the batch's ids (in the browser only: no request)
    batch.ids.change(None, batch.ids, batch.store, js="(ids) => ids", **PRIVATE)
    attached = blocks.load(  # the page's batch, followed again at load
        bc.page_attach, batch.store, [batch.status, batch.gallery, batch.ids, batch.accordion],
        api_name="load_batch_attach", **PRIVATE,
    )  # fmt: skip
    gr.Button(visible=False, elem_id="wp-api-batch-attach").click(
        bc.attach, batch.ids, [batch.status, batch.gallery, batch.ids],
        api_name="batch_attach", **QUIET,
    )  # fmt: skip
    strip = (bc.strip, [batch.ids, recent[1]], list(recent)) if recent is not None else None
    if history is not None:
        history.refresh_after(ran, strip)
    elif strip is not None:
        ran.then(*strip, **PRIVATE)
    if strip is not None:
        attached.then(*strip, **PRIVATE)
    event = final.button.click(
        bc.draft_final,
        job_id,
        [*form.inputs, final.note, final.values],
        api_name="draft_final",
        **QUIET,
    )
    after_fill(form.shown(event, final.values))
    return bc
