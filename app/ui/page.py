"""The studio's page: its layout and events (Gradio only). Nothing runs at import time.

`build_ui(studio, demo_mode)` returns the Blocks. The form is one object (app/ui/form.py) that
owns its components by `FormValues` field name; every event that reads it passes them by name
(`inputs_kwargs=form.kwargs`), so the API's parameters are the field names, each described.
Callbacks live in app/ui/callbacks.py, the status panel in app/ui/status.py, the History and
Batch sections in app/ui/history.py and app/ui/batch.py.

API names: `/quote`, `/generate` (submits, then streams the job until it is final), `/attach`
(streams an existing job by id), `/cancel` (cancels a live job by id), `/rerun` (the job's exact
workflow and seed as a new job, streamed like /generate), `/reuse` (a past job's form values),
the batch's `/batch_quote`, `/generate_batch`, `/batch_attach`, `/draft_final`, and the chains'
`/storyboard_quote`,
`/storyboard`, `/extend_quote`, `/extend`, `/chain`, `/cancel_chain`, `/rerun_chain_quote`,
`/rerun_chain`, `/reuse_chain` (app/ui/chain.py). The health panel
(app/studio/checks/health.py), the note under Generate and the spend line are painted by the
page itself from `/wanpod/health` (app/ui/health_route.py), not by Gradio events.

The page keeps its job id in `gr.BrowserState` (localStorage), so a closed and reopened tab, or a
restarted app, attaches to the same job again: the job itself lives in the ledger and is followed
by the server-side tracker, not by this page. Its batch's job ids are kept so too
(app/ui/batch.py).
"""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr

from app.studio.chains import Chains
from app.studio.jobs import Studio
from app.studio.owners import Caller
from app.ui import requote
from app.ui.batch import CSS as BATCH_CSS
from app.ui.batch import batch_panel, draft_final_panel, wire_batch
from app.ui.callbacks import Callbacks
from app.ui.chain import EXTEND_REQUOTE_JS, chain_panel, wire_chain
from app.ui.fields import Textbox, described
from app.ui.form import Form
from app.ui.health_route import FILL, HEALTH_JS
from app.ui.history import build_history
from app.ui.inline import click_here
from app.ui.inputs import CSS as INPUTS_CSS
from app.ui.inputs import FIELD_ERRORS_JS, SCROLL_TO_FORM_JS, Extras, field_errors_html
from app.ui.live_route import CANCEL_ID, END_ONLY, END_TRIGGER, LIVE_JS
from app.ui.offers import CSS as OFFERS_CSS
from app.ui.quiet import PRIVATE, QUIET
from app.ui.serving import cache_cleanup
from app.ui.status import CLOCK_JS, GENERATE_DONE_JS, SUBMIT_JS, job_buttons_js, status_html

CSS = (
    """
@media (min-width: 1024px) {
  #wp-result-col {position: sticky; top: 0; z-index: 5; flex: none !important;
                  background: var(--body-background-fill);}
  #wp-result-col #wp-details {max-height: 180px; overflow: auto;}
}
.gradio-container {overflow: clip !important;} /* hidden would make a scroller: no sticky */
#wp-status progress {width: 100%; height: 14px;}
/* the bar drawn the same in every browser, in the page's colours (Chromium's own: a dark grey
   track, green fill) */
:is(#wp-status, #wp-batch-status) progress {-webkit-appearance: none; appearance: none;
  border: none; border-radius: 7px; overflow: hidden; background: var(--border-color-primary);}
:is(#wp-status, #wp-batch-status) progress::-webkit-progress-bar {
  background: var(--border-color-primary);}
:is(#wp-status, #wp-batch-status) progress::-webkit-progress-value {
  background: var(--color-accent);}
:is(#wp-status, #wp-batch-status) progress::-moz-progress-bar {background: var(--color-accent);}
#wp-status .wp-line {font-size: 1.05em; margin-top: 4px; white-space: pre-line;}
#wp-status .wp-refused {color: #b42318; font-size: 0.92em; margin-top: 4px;}
/* the buttons a job switches (and Generate's focus ring) change at once: Gradio's 0.2 s
   transitions drew a dozen frames each, as the job starts and again as it ends */
#wp-generate, #wp-result-col button {transition: none;}
/* this session's strip scrolls sideways where its tiles overflow a narrow screen */
#wp-recent .grid-wrap {overflow-x: auto;}
#wp-demo {background: #fff4d6; border: 1px solid #e0b84a; padding: 8px 12px; border-radius: 6px;}
"""
    # Cancel, while there is nothing to cancel, looks like the other job buttons do unusable:
    # Gradio's faded red "stop" read as a live button beside "No job yet"
    + f"#{CANCEL_ID}:disabled {{background: var(--button-secondary-background-fill-hover);"
    " color: var(--button-secondary-text-color-hover);"
    " border-color: var(--button-secondary-border-color);}\n" + INPUTS_CSS + OFFERS_CSS + BATCH_CSS
)


# "Use this seed" shows while the seed line does
SEED_BUTTON_JS = "(line) => ({__type__: 'update', visible: !!(line || '').trim()})"


# Ctrl+Enter (Cmd+Enter) anywhere on the page presses Generate; on a small screen, pressing
# Generate scrolls the status panel (progress) into view. Runs once, as the keys element loads.
KEYS_JS = """
document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
    const b = document.querySelector("#wp-generate");
    if (b && !b.disabled) { e.preventDefault(); b.click(); }
  }
});
document.addEventListener("click", (e) => {
  if (e.target.closest && e.target.closest("#wp-generate") && window.innerWidth < 1024) {
    const s = document.querySelector("#wp-status-box");
    if (s) s.scrollIntoView({behavior: "instant", block: "start"});
  }
}, true);
"""
RESULT_TEXT = "the job as data: job_id, state, seed, parameters, quote, actual_cost, video, error"
JOB_ID_TEXT = "a job of this studio, by the id /generate answered (wp-...)"


def build_ui(
    studio: Studio, demo_mode: bool, browser_key: str = "", chains: Chains | None = None
) -> gr.Blocks:
    """The page. `browser_key` keys Gradio's (client-side) encryption of the remembered job id in
    localStorage; it must survive restarts so a reopened tab finds its job again. It is not a
    secret (the browser holds it) and must not be one of ours."""
    form = Form(studio.forms, offers=studio.offers)
    chains = chains or Chains(studio)
    cb = Callbacks(studio, form, chains)
    extras = Extras(cb)
    with gr.Blocks(
        title="WanPod studio",
        analytics_enabled=False,
        delete_cache=cache_cleanup(studio.settings.gradio_cache_s),
    ) as blocks:
        gr.Markdown("# WanPod studio · Wan 2.2 on RunPod serverless")
        if demo_mode:
            from app.demo import banner  # the emulator's video size, read where it is set

            gr.Markdown(banner(), elem_id="wp-demo")
        gr.HTML("", js_on_load=KEYS_JS, elem_id="wp-keys", padding=False)
        job_store = gr.BrowserState("", storage_key="wanpod_job", secret=browser_key or None)
        with gr.Row(equal_height=True):  # the result column as tall as the form: room to stick
            with gr.Column(scale=5):
                form_note = gr.Markdown(elem_id="wp-form-note")
                form.build()
                quote_md = gr.Markdown(elem_id="wp-quote")
                shown = gr.State(None)  # what the quote line shows (app/studio/shown.py)
                field_errors = gr.HTML(js_on_load=FIELD_ERRORS_JS, elem_id="wp-field-errors")
                gr.HTML(FILL, elem_id="wp-generate-note", padding=False)
                generate_btn = gr.Button(
                    "Generate (Ctrl+Enter)", variant="primary", elem_id="wp-generate"
                )
                gr.HTML(FILL, visible=not demo_mode, elem_id="wp-spend", padding=False)
                batch = batch_panel(cb, browser_key)
                chain = chain_panel()
                with gr.Accordion("Result as data (the API's answer)", open=False):
                    result = gr.JSON(label="Result", elem_id="wp-result")
                with gr.Accordion(
                    "Job management · Open a job by id", open=False, elem_id="wp-manage"
                ):
                    job_id = described(
                        Textbox(label="Job", interactive=False, elem_id="wp-job"), JOB_ID_TEXT
                    )
                    attach_id = described(
                        Textbox(label="Job id", elem_id="wp-attach-id"), JOB_ID_TEXT
                    )
                    attach_btn = gr.Button("Open", size="sm", elem_id="wp-attach")
                with gr.Accordion("Endpoint health", open=True):
                    gr.HTML(FILL, js_on_load=HEALTH_JS, elem_id="wp-health-box")
            with gr.Column(scale=5), gr.Column(elem_id="wp-result-col"):  # sticky when wide
                status = gr.HTML(
                    status_html(None),
                    js_on_load=CLOCK_JS + SUBMIT_JS + LIVE_JS + EXTEND_REQUOTE_JS,
                    elem_id="wp-status-box",
                    label="Status",
                )
                video = gr.Video(
                    label="Result",
                    interactive=False,
                    elem_id="wp-video",
                    buttons=["download"],
                    height=320,
                )
                recent = gr.Gallery(
                    label="This session's results",
                    elem_id="wp-recent",
                    columns=6,
                    fit_columns=False,  # one result is a tile, not a crop of the column's width
                    height=110,
                    allow_preview=False,
                    interactive=False,
                    buttons=[],  # "download all" would give the tiles' stills, not the videos
                )
                recent_rids = gr.State([])
                with gr.Row():
                    cancel_btn = gr.Button(
                        "Cancel job",
                        size="sm",
                        variant="stop",
                        elem_id=CANCEL_ID,
                        interactive=False,
                    )
                    rerun_btn = gr.Button(
                        "Rerun exactly", size="sm", elem_id="wp-rerun", interactive=False
                    )
                    reuse_btn = gr.Button(
                        "Reuse settings", size="sm", elem_id="wp-reuse", interactive=False
                    )
                rerun_note = gr.Markdown(elem_id="wp-rerun-note")
                confirm_btn = gr.Button(
                    "Confirm rerun", size="sm", visible=False, elem_id="wp-rerun-confirm"
                )
                final = draft_final_panel()
                details = gr.Markdown(elem_id="wp-details", label="Details")
                # clicked by the status panel's script when its live stream ends the job
                # (app/ui/live_route.py): rendered, so that they can be clicked, never seen;
                # the first also refreshes History's gallery (when the gallery is on screen)
                end_trigger = gr.Button("Job ended", visible="hidden", elem_id=END_TRIGGER)
                end_only = gr.Button("Job ended", visible="hidden", elem_id=END_ONLY)
                with gr.Row():
                    seed_md = gr.Markdown(elem_id="wp-ran-seed")
                    use_seed_btn = gr.Button(
                        "Use this seed", size="sm", visible=False, elem_id="wp-use-seed"
                    )
        job_buttons = [cancel_btn, rerun_btn, reuse_btn, final.button, chain.extend]
        # Cancel, Rerun, Reuse, Draft -> final and "Extend the shown job" need a job, "Use
        # this seed" a seed line: the page sets them itself as the job id or the seed line
        # changes (listeners that run only in the browser). From the studio, each would be a
        # new component built per answer (Gradio validates a property update so), a tenth of
        # its CPU at 64 users.
        job_id.change(None, job_id, job_buttons, js=job_buttons_js(len(job_buttons)), **PRIVATE)
        seed_md.change(None, seed_md, use_seed_btn, js=SEED_BUTTON_JS, **PRIVATE)

        def job_shown(caller: Caller, rid: str) -> list[Any]:
            # the seed the job runs with: set by the events that answer a job id (an event of
            # its own would cost the page a full pass over its components)
            return [extras.ran_seed(caller, rid)]

        # the page's own events: the live job follows app/ui/live_route.py, a new job id sets
        # the seed line (and, in the page, the job's buttons)
        page = cb.live(job_shown)
        shown_out = [seed_md]

        def page_quote(request: gr.Request, **fields: Any) -> tuple[str, Any, str]:
            # the quote line, what it shows (Generate sends only that job) and its refusal next
            # to its field, from one reading of the form
            line, kept = cb.quoted(fields, request)
            return line, kept, field_errors_html(form, kept)

        # the quote lines follow the form in order (app/ui/requote.py); the API's /quote
        # answers the line only
        requote.line(requote.FORM, cb.quote, form.kwargs, [quote_md], api_name="quote",
                     page=(page_quote, [quote_md, shown, field_errors]))  # fmt: skip
        requote.on(c.change for c in form.inputs if c not in (form["pipeline"], form["mode"]))

        def after_fill(event, source=job_id):
            # a form filled from the job (or chain) whose id `source` holds: the page's own job
            # unless said (History's opened job, the chain shown): quote, frame note, its note
            requote.after(event)
            note = form.show_frames(event).then(
                extras.filled, inputs_kwargs={"job_id": source, **form.kwargs},
                outputs=form_note, **PRIVATE,
            )  # fmt: skip
            return note.then(None, js=SCROLL_TO_FORM_JS, **PRIVATE)

        def after_chain_fill(event):  # Reuse chain settings: the chain shown
            return after_fill(event, chain.chain_id)

        watch_out = [status, video, details, job_id, job_store, result]
        # the page's events that answer a job: its view, what follows its id, and this
        # session's strip's job ids (in and out: the job joins them, Callbacks.live)
        page_out = [*watch_out, *shown_out, recent_rids]
        history = build_history(
            page, blocks, watch_out=page_out, watch_in=[recent_rids], after_fill=after_fill
        )
        laid_out = gr.on(  # a user's choice only: a programmatic change (Reuse) keeps the form
            [form["pipeline"].input, form["mode"].input], form.layout,
            inputs_kwargs={"pipeline": form["pipeline"], "mode": form["mode"]},
            outputs=form.outputs, **PRIVATE,
        )  # fmt: skip
        requote.after(laid_out)
        form.show_frames(laid_out)
        form["seconds"].change(
            form.frames_note,
            inputs_kwargs={"pipeline": form["pipeline"], "seconds": form["seconds"]},
            outputs=form.frames_md,
            **PRIVATE,
        )
        # its 24 fields processed in its call (app/ui/inline.py); one request, not Gradio's
        # queue (~5 ms of the studio's CPU and up to a queue tick, 50 ms, per Generate): a
        # refusal is its answer, in the status panel (Callbacks.refused, said_in_panel)
        generated = click_here(
            generate_btn,
            page.generate,
            {**form.kwargs, "shown": shown, "recent": recent_rids},
            page_out,
            api_name="page_generate",
            queue=False,
            **PRIVATE,
        )
        for ended_as in (generated.then, generated.failure):  # the panel's "Submitting…" ends
            ended_as(None, js=GENERATE_DONE_JS, **PRIVATE)
        attach_btn.click(page.attach, [attach_id, recent_rids], page_out, api_name="page_attach",
                         **PRIVATE)  # fmt: skip
        said = gr.Textbox(visible=False, label="Outcome")  # /cancel's answer (a toast here)
        cancel_btn.click(cb.cancel, job_id, said, api_name="cancel", **QUIET)
        rerun_btn.click(extras.rerun_ask, job_id, [rerun_note, confirm_btn],
                        api_name="rerun_quote", **QUIET)  # fmt: skip
        confirm_btn.click(extras.rerun_sent, None, [rerun_note, confirm_btn], **PRIVATE).then(
            page.rerun, [job_id, recent_rids], page_out, api_name="page_rerun", **PRIVATE
        )

        # the end of a job the page followed (Generate, Rerun, Open, a reload): its final view,
        # this session's strip (newest first) and, with the gallery on screen, the gallery, in one
        # event; with the gallery off screen, the page refreshes it once it shows
        ended_in = [job_id, recent_rids]
        ended_out = [status, video, details, result, recent, recent_rids]
        history.refresh_on(end_trigger, (page.ended, ended_in, ended_out), "page_final")
        # one request, not Gradio's queue (a join, an event stream and its messages): about
        # half the studio's CPU for the event, and the end runs no longer than a page's read
        click_here(end_only, page.ended, ended_in, ended_out, api_name="page_final_only",
                   queue=False, **PRIVATE)  # fmt: skip
        form["start_image"].upload(
            extras.match_preset,
            inputs_kwargs={"pipeline": form["pipeline"], "start_image": form["start_image"]},
            outputs=form["resolution"],
            **PRIVATE,
        )
        use_seed_btn.click(extras.use_seed, job_id, [form["seed"], form["randomize"]], **PRIVATE)
        form.picker.wire(studio.refresh_offers, form["pipeline"], cb.message)
        history.wire_reuse(reuse_btn, job_id)
        wire_batch(cb, batch, final, blocks=blocks, job_id=job_id, after_fill=after_fill,
                   history=history, recent=(recent, recent_rids))  # fmt: skip
        wire_chain(cb, chains, chain, job_id=job_id, history=history, after_fill=after_chain_fill)
        loaded = blocks.load(
            form.layout,
            inputs_kwargs={"pipeline": form["pipeline"], "mode": form["mode"]},
            outputs=form.outputs,
            **PRIVATE,
        )
        requote.after(loaded)
        blocks.load(page.attach, [job_store, recent_rids], page_out, api_name="load_attach",
                    **PRIVATE)  # fmt: skip
        # The API's /generate, /attach and /rerun stream every update of the job (an API client
        # has no live stream to follow); their triggers are hidden: the page runs its own above.
        api = {"outputs": watch_out, **QUIET}
        hidden = functools.partial(gr.Button, visible=False)
        hidden(elem_id="wp-api-generate").click(
            cb.generate, inputs_kwargs={**form.kwargs, "shown": shown}, api_name="generate", **api
        )
        hidden(elem_id="wp-api-attach").click(cb.attach, attach_id, api_name="attach", **api)
        hidden(elem_id="wp-api-rerun").click(cb.rerun, job_id, api_name="rerun", **api)
    return blocks
