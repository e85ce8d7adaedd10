"""The studio's History section: a filterable gallery of past jobs, one opened job, reuse, rerun.

`build_history(cb, blocks, watch_out=..., watch_in=..., after_fill=...)` is called by
`app.ui.page.build_ui` inside the Blocks (after the form and result column, so it spans the
page). It renders and wires:
- filters (text in the prompt or job or chain id, pipeline, status group) and a Refresh button
  over a `gr.Gallery` of thumbnails (app/studio/history.py: first frame JPEGs, placeholders for
  jobs without a video), newest first, at most GALLERY_LIMIT items (a chain is one:
  app/studio/chain_history.py), the note saying when older ones match too;
- the opened job (a click on a thumbnail): its video, its details (app.studio.records.details:
  state, parameters, quote, timings, actual cost, error; a missing video said) and recipe, its
  filled workflow as JSON and as a download; a live job's "Follow live" shows it in the page's
  status panel (nothing keeps this panel current);
- "Reuse settings" (the opened job's form values, its pipeline and kept input images included)
  and "Rerun exactly" (the same filled workflow and seed as a new job, streamed into the page's
  status panel like Generate).
`History.wire_reuse(button, job_id)` wires the page's own "Reuse settings" (API `/reuse`);
`History.refresh_after(event)` chains a gallery refresh after an event (`refresh_chain_after`: and
the opened chain's panel, after a chain's events: app/ui/chain.py), `History.refresh_on(
trigger, also, api_name)` refreshes it (with more of the page) on a button's click (the page's
end of a job, app/ui/page.py, when the gallery is on screen; otherwise the page clicks Refresh
once the gallery comes into view: a gallery of up to GALLERY_LIMIT thumbnails is the costliest
answer a job's end has, for the studio and for the page).

Reuse across pipelines: the form's `layout` (visibility, choices, ranges and defaults of a
pipeline) runs on the pipeline/mode `.input` events (a user's choice), never on a programmatic
change, and a reuse answers `Form.updates(values)`: that same layout for the job's pipeline and
mode with the job's values in it; one answer, so no later default can overwrite a reused value.
Either way the service is asked once per click (`HistoryCallbacks.reused`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from app.errors import InputError
from app.studio import chain_history
from app.studio import history as hist
from app.studio.forms import FormValues
from app.studio.owners import Caller
from app.ui.callbacks import caller_of
from app.ui.inline import click_here
from app.ui.quiet import PRIVATE, QUIET

GALLERY_LIMIT = 48
GALLERY_ID = "wp-hist-gallery"  # a job's end refreshes the gallery only when it is on screen
REFRESH_ID = "wp-hist-refresh"  # its Refresh (clicked by the page once a stale History shows)
CSS = """
#wp-hist-gallery .caption-label {white-space: normal; max-width: calc(100% - 8px);
  font-size: 11px; line-height: 1.25; opacity: 0.92;}
/* a phone: four columns of at least 100 px overflowed the gallery (the third cut, the fourth
   off screen); two fit, and a caption cut to four lines leaves the picture in view */
@media (max-width: 640px) {
  #wp-hist-gallery .grid-container {grid-template-columns: repeat(2, minmax(0, 1fr));}
  #wp-hist-gallery .caption-label {display: -webkit-box; -webkit-box-orient: vertical;
    -webkit-line-clamp: 4; overflow: hidden;
    padding-bottom: 0; border-bottom: 4px solid transparent;} /* no 5th line in the padding */
}
"""


def open_answer(
    rid: str,
    video: str | None,
    text: str,
    workflow: Any,
    file: str | None,
    live: bool = False,
    chain: bool = False,
) -> tuple[Any, ...]:
    """What opening `rid` ("": nothing opened) answers: the opened id, its video, details,
    workflow and workflow file, then its buttons: Reuse settings, Rerun exactly and Extend
    usable while a job or chain is opened (the service says why one cannot be reused, rerun or
    extended), the workflow's download while there is a file, Follow live shown for a live job;
    last the filled workflow's accordion, hidden for a `chain` (one workflow per segment: its
    panel lists them, each opened by its id)."""
    usable = gr.update(interactive=bool(rid))
    return (
        rid, video, text, workflow, gr.update(value=file, interactive=file is not None),
        usable, usable, usable, gr.update(visible=live), gr.update(visible=not chain),
    )  # fmt: skip


def note(listed: chain_history.Listing, filt: hist.HistoryFilter) -> str:
    """The line over the gallery: how many are shown, and whether older ones match too."""
    n = len(listed.entries)
    if not n:
        return "No job matches these filters." if filt.active else "No jobs yet."
    more = " (the newest; narrow the filters for older ones)" if listed.more else ""
    return f"{n} job{'s' if n != 1 else ''} shown, newest first{more}."


class HistoryCallbacks:
    """Thin functions over the ledger and `app.studio.history`; errors become gr.Error via `cb`."""

    def __init__(self, cb: Any) -> None:
        self.cb = cb
        self.studio = cb.studio
        self.values: Any = None  # a gr.State (build_history): what /reuse gave the page

    @property
    def results_dir(self) -> Path:
        return Path(self.studio.settings.data_dir) / "results"

    def titles(self) -> dict[str, str]:
        return {k: f.title for k, f in self.studio.forms.items()}

    def refresh(
        self,
        request: gr.Request,
        text: str | None,
        pipeline: str | None,
        status: str | None,
        opened: str | None = None,
    ) -> tuple[Any, list[str], str]:
        """The gallery for the filters, its items' ids and the note over it. The tile marked
        selected is the opened job's (`opened`), wherever it now is: Gradio keeps its selected
        index across a new value, which marked another job once a newer one came. An opened
        job no longer listed cannot be unmarked so: Gradio drops a None from an update, and
        the page keeps its index (clamped to the new list)."""
        try:
            filt = hist.HistoryFilter.from_ui(text, pipeline, status)
        except ValueError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        caller = caller_of(self.studio, request)
        chains = getattr(self.cb, "chains", None)  # a chain's segments are one item
        listed = chain_history.listing(self.studio.ledger, chains, filt, caller, GALLERY_LIMIT)
        local = self.studio.tracker.store.local  # fetched from object storage when there
        items = chain_history.items(listed.entries, self.titles(), self.results_dir, local)
        rids = [i.rid for i in items]
        selected = rids.index(opened) if opened in rids else None
        gallery = gr.update(value=[(i.image, i.caption) for i in items], selected_index=selected)
        return gallery, rids, note(listed, filt)

    def open(
        self, request: gr.Request, rids: list[str] | None, evt: gr.SelectData
    ) -> tuple[Any, ...]:
        index = evt.index if isinstance(evt.index, int) else (evt.index or [0])[0]
        rid = (rids or [])[index] if 0 <= index < len(rids or []) else ""
        return self.open_job(rid, caller_of(self.studio, request))

    def open_job(self, rid: str, caller: Caller) -> tuple[Any, ...]:
        try:
            if chain_history.is_chain(rid) and getattr(self.cb, "chains", None) is not None:
                view = self.cb.chains.view(rid, caller)  # the chain: its segments, its video
                return open_answer(rid, view.video, view.line, {}, None, chain=True)
            row = self.studio.row(rid, caller) if rid else None
        except InputError:
            row = None
        if row is None:
            return open_answer("", None, "Pick a job in the gallery.", None, None)
        video = hist.video_of(row, self.studio.tracker.store.local)
        text = hist.opened_markdown(row, video)
        file = self._workflow_file(row)
        return open_answer(rid, str(video) if video else None, text, row.workflow, file, row.live)

    def _workflow_file(self, row: Any) -> str | None:
        """The filled workflow as a file in the served results folder (written once)."""
        path = self.results_dir / row.id / f"workflow_{row.id}.json"
        try:
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(row.workflow, indent=2))
            return str(path)
        except OSError:
            return None

    def _kept_image(self, row: Any, param: str) -> str | None:
        name = str((row.params or {}).get(param) or "")
        kept = self.studio.kept_input(row.id, name)
        if kept is None:  # not kept, or not a plain file name
            return None
        out = hist.restore_input(kept, self.results_dir / row.id / "inputs" / name)
        return str(out) if out else None

    def reused(self, rid: str | None, caller: Caller) -> FormValues:
        """A past job's form values as the user set them (one call of the service), with its
        kept input images where its pipeline takes them (the caller's jobs only)."""
        rid = (rid or "").strip()
        try:
            if chain_history.is_chain(rid) and getattr(self.cb, "chains", None) is not None:
                # the chain's first segment's (its prompts: ChainCallbacks.history_prompts)
                return self.cb.chains.reuse(rid, caller)[0]
            v = self.studio.reuse(rid, caller)
            row = self.studio.row(rid, caller)
        except Exception as exc:
            raise self.cb.error(exc) from None
        form = self.studio.forms.get(v.pipeline)
        if form is None:  # a pipeline renamed or dropped since (an older studio's row)
            offered = ", ".join(self.studio.forms)
            error = InputError("job", f"{rid} ran the pipeline {v.pipeline!r}, which this studio "
                               f"no longer offers; allowed: a job of {offered}")  # fmt: skip
            raise self.cb.error(error)
        if v.workflow_file and not Path(v.workflow_file).is_file():
            # the upload's copy went with the studio's restart: the workflow the job ran (its
            # values are filled in again from the form as they were)
            v = dataclasses.replace(v, workflow_file=self._workflow_file(row))
        images = {  # the job's images, or none where it had none
            param: self._kept_image(row, param) if used else None
            for param, used in (("start_image", form.needs_start), ("end_image", form.needs_end))
        }
        return dataclasses.replace(v, **images)

    def reuse(self, request: gr.Request, job_id: str | None) -> dict[Any, Any]:
        """A past job's form values: its pipeline, prompts, size, duration, seed (fixed), mode
        and advanced settings, and its kept input images."""
        v = self.reused(job_id, caller_of(self.studio, request))
        return {**self.cb.form.plain(v), self.values: v}

    def reuse_form(self, request: gr.Request, rid: str | None) -> dict[Any, Any]:
        """The whole form set to a past job's values, in its pipeline's layout."""
        return self.cb.form.updates(self.reused(rid, caller_of(self.studio, request)))


@dataclass
class History:
    callbacks: HistoryCallbacks
    filters: list[Any]
    gallery: gr.Gallery
    rids: gr.State
    note: gr.Markdown
    opened: gr.State
    after_fill: Callable[..., Any]
    extend: Any = None  # "Extend" on the opened job (wired by app/ui/chain.py)
    reuse: Any = None  # "Reuse settings" (on an opened chain app/ui/chain.py fills its prompts)
    panel: list[Any] = dataclasses.field(default_factory=list)  # the opened one's (`open_answer`
    # less the opened id)

    def refresh_after(
        self, event: Any, also: tuple[Callable[..., Any], list, list] | None = None
    ) -> Any:
        """The gallery refreshed after `event`; `also` (fn, inputs, outputs, fn taking the
        request first): more of the page refreshed by the same event (one event, not two: each
        costs a page a pass over all its components)."""
        return event.then(*self._refresh(also), api_name="history_refresh_after", **PRIVATE)

    def refresh_chain_after(self, event: Any, opened_only: bool = False) -> Any:
        """The gallery refreshed after a chain's `event` (started, cancelled, ended) and, while
        a chain is opened, its panel (state, segments, video: a job's is History's own);
        `opened_only`: nothing at all unless a chain is opened (an event every opening runs)."""
        hc = self.callbacks
        skips = tuple(gr.skip() for _ in self.panel)

        def panel(request: gr.Request, opened: str | None) -> tuple[Any, ...]:
            if not chain_history.is_chain(opened):
                return skips
            return hc.open_job(str(opened), caller_of(hc.studio, request))[1:]

        refresh, inputs, outputs = self._refresh((panel, [self.opened], self.panel))
        at = len(self.filters)  # the opened id among the inputs

        def when_opened(request: gr.Request, *values: Any) -> tuple[Any, ...]:
            if not chain_history.is_chain(values[at]):
                return tuple(gr.skip() for _ in outputs)
            return refresh(request, *values)

        fn = when_opened if opened_only else refresh
        return event.then(fn, inputs, outputs, api_name="history_refresh_chain", **PRIVATE)

    def refresh_on(
        self, trigger: Any, also: tuple[Callable[..., Any], list, list], api_name: str
    ) -> Any:
        """The gallery refreshed by `trigger`'s click, with `also` (as in refresh_after)."""
        # a job's end: processed in its call
        return click_here(trigger, *self._refresh(also), api_name=api_name, **PRIVATE)

    def _refresh(self, also: tuple[Callable[..., Any], list, list] | None) -> tuple[Any, ...]:
        fn, inputs, outputs = also or (None, [], [])
        n = len(self.filters) + 1  # and the opened job

        def refresh(request: gr.Request, *values: Any) -> tuple[Any, ...]:
            gallery = self.callbacks.refresh(request, *values[:n])
            return gallery if fn is None else (*gallery, *fn(request, *values[n:]))

        listing_in = [*self.filters, self.opened]
        return refresh, [*listing_in, *inputs], [self.gallery, self.rids, self.note, *outputs]

    def wire_reuse(self, button: Any, job_id: Any) -> None:
        """The page's "Reuse settings" for the job shown: `/reuse` gives API clients the plain
        values (and keeps them in a State); the page then shows them in their pipeline's form
        from that State, without asking the service again."""
        hc = self.callbacks
        form = hc.cb.form
        event = button.click(
            hc.reuse,
            job_id,
            [*form.inputs, hc.values],
            api_name="reuse",
            **QUIET,
        )
        self.after_fill(form.shown(event, hc.values), job_id)


def build_history(
    cb: Any,
    blocks: gr.Blocks,
    *,
    watch_out: list[Any],
    watch_in: list[Any],
    after_fill: Callable[..., Any],
) -> History:
    """The History accordion and its events; `after_fill(event, source)` chains what follows a
    form filled from the job or chain id in `source` (its quote, frame note, the note naming
    it). Rerun and Follow live answer `watch_out` as the page's own events do,
    from the opened job and `watch_in` (app/ui/page.py's `page_out`)."""
    hc = HistoryCallbacks(cb)
    forms = cb.studio.forms
    with gr.Accordion("History", open=True, elem_id="wp-history"):
        with gr.Row():
            text = gr.Textbox(
                label="Prompt or job id contains",
                placeholder="e.g. lighthouse",
                scale=3,
                elem_id="wp-hist-text",
            )
            pipeline = gr.Dropdown(
                [(hist.ALL, hist.ALL), *((f.title, k) for k, f in forms.items())],
                value=hist.ALL,
                label="Pipeline",
                scale=2,
                elem_id="wp-hist-pipeline",
            )
            status = gr.Dropdown(
                [hist.ALL, *hist.STATUS_GROUPS],
                value=hist.ALL,
                label="Status",
                scale=2,
                elem_id="wp-hist-status",
            )
            refresh = gr.Button("Refresh", size="sm", scale=1, elem_id=REFRESH_ID)
        note = gr.Markdown(elem_id="wp-hist-note")
        gallery = gr.Gallery(
            label="Past jobs (click one to open it)",
            columns=4,
            fit_columns=False,  # a lone job stays a thumbnail, not a page-wide image
            height=440,  # scrolls past two rows
            allow_preview=False,
            object_fit="cover",
            interactive=False,
            buttons=[],  # no "download all" of the thumbnails: the opened job has its video's
            elem_id=GALLERY_ID,
        )
        rids = gr.State([])
        opened = gr.State("")
        hc.values = gr.State(None)  # the values /reuse gave, for the page's form
        with gr.Row():
            with gr.Column(scale=5):
                video = gr.Video(
                    label="Opened job", interactive=False, height=400, elem_id="wp-hist-video",
                    buttons=["download"],
                )  # fmt: skip
            with gr.Column(scale=5):
                info = gr.Markdown("Pick a job in the gallery.", elem_id="wp-hist-details")
                with gr.Row():  # usable once a job is opened (`opened`)
                    off = {"size": "sm", "interactive": False}
                    reuse = gr.Button("Reuse settings", elem_id="wp-hist-reuse", **off)
                    rerun = gr.Button("Rerun exactly", elem_id="wp-hist-rerun", **off)
                    extend = gr.Button("Extend", elem_id="wp-hist-extend", **off)
                    download = gr.DownloadButton(
                        "Download workflow JSON", elem_id="wp-hist-download", **off
                    )
                    follow = gr.Button(  # a live job: this panel is its state when opened
                        "Follow live", size="sm", visible=False, elem_id="wp-hist-follow"
                    )
                with gr.Accordion(
                    "Filled workflow (API format)", open=False, elem_id="wp-hist-workflow-box"
                ) as workflow_box:  # hidden for a chain: one workflow per segment
                    workflow = gr.JSON(elem_id="wp-hist-workflow")
        gr.HTML(head=f"<style>{CSS}</style>", elem_id="wp-hist-css")  # captions; a phone

    filters = [text, pipeline, status]
    panel = [video, info, workflow, download, reuse, rerun, extend, follow, workflow_box]
    history = History(hc, filters, gallery, rids, note, opened, after_fill, extend, reuse, panel)
    listing = [gallery, rids, note]
    gr.on(
        [text.submit, text.change, pipeline.change, status.change, refresh.click],
        hc.refresh,
        [*filters, opened],
        listing,
        api_name="history_refresh",
        api_visibility="private",
        **QUIET,
        trigger_mode="always_last",
    )
    gr.on(
        [gallery.select],
        hc.open,
        rids,
        [opened, *panel],
        api_name="history_open",
        api_visibility="private",
        **QUIET,
    )
    after_fill(
        reuse.click(
            hc.reuse_form,
            opened,
            cb.form.outputs,
            api_name="history_reuse",
            api_visibility="private",
            **QUIET,
        ),
        opened,  # the form's note names the opened job, not the page's
    )
    # the page's status panel follows the new job (or the opened live one); its end refreshes
    # the gallery (page_final, or once the gallery is on screen: app/ui/live_route.py)
    rerun.click(cb.rerun, [opened, *watch_in], watch_out, api_name="history_rerun", **PRIVATE)
    follow.click(cb.attach, [opened, *watch_in], watch_out, api_name="history_follow", **PRIVATE)
    blocks.load(
        hc.refresh,
        [*filters, opened],
        listing,
        api_name="history_load",
        api_visibility="private",
        **QUIET,
    )
    return history
