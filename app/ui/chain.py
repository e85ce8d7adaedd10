"""The studio's "Longer video" section: Extend a finished job, Storyboard N segments (Gradio only).

`chain_panel()` (in the form column) renders the storyboard's prompts (one per segment, per
line), the colour-match switch, the extension's prompt and its own quote line (the job shown
extended: asked again when the shown job or the prompt changes; Extend is held to it as Run
storyboard is to the storyboard's), the storyboard's quote, its buttons, the
chain's status (every segment with its state) and the stitched video. `wire_chain(...)` wires
them, History's "Extend" (the opened job) and, on an opened chain, History's "Reuse settings"
(its prompts in the storyboard's field; History fills the form). The service is
app/studio/chains.py.

API names: `/storyboard_quote` and `/storyboard` (the form's fields + `prompts`, `colour_match`:
the whole chain quoted / refused up front or started, then streamed until its video is stitched),
`/extend_quote` and `/extend` (`job_id`, `prompt`: blank keeps the job's, `colour_match`), `/chain`
(stream a chain by id), `/cancel_chain` (its outcome line), `/rerun_chain_quote` (what a rerun
sends and costs now: the page's question before Confirm rerun chain), `/rerun_chain` (the same
plan and seed as a new chain), `/reuse_chain` (the chain's first segment's form values, and its
prompts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.studio import chain_history
from app.studio.chains import Chains
from app.studio.owners import Caller
from app.studio.shown import BatchShown, priced
from app.ui import requote
from app.ui.callbacks import caller_of, files_optional, over_limits, user_of, warned
from app.ui.fields import Checkbox, Textbox, described
from app.ui.quiet import PRIVATE, QUIET
from app.ui.status import job_buttons_js

CHAIN_RESYNC_S = 5.0  # a running chain's panel is redrawn at least this often
CHAIN_ID_TEXT = "a chain of this studio, by the id /storyboard or /extend answered (ch-...)"


EXTEND_REQUOTE_ID = "wp-chain-extend-requote"  # prices Extend's line (clicked by the page)
# Extend's line is priced while the Longer video section is open: as it opens, as its prompt
# changes, and (this script, beside the page's status panel) when the job the panel shows
# changes or ends. Priced at every new job id it was a Gradio event per Generate (the studio's
# queue, a pass over the page's components) for a line no one saw, of a job still running; a
# js-only Gradio event on the job id still cost a following page ~5 ms/s of script: this
# watches the panel's data-rid and data-final instead, outside Gradio's events.
EXTEND_REQUOTE_JS = (
    r"""
(() => {
  const box = document.querySelector("#wp-status-box");
  if (!box) return;
  const shown = () => {
    const s = document.querySelector("#wp-status");
    return s && s.dataset.rid ? `${s.dataset.rid}|${s.dataset.final || ""}` : "";
  };
  let seen = shown();
  new MutationObserver(() => {
    const key = shown();
    if (key === seen) return;
    seen = key;
    const head = document.querySelector("#wp-chain .label-wrap");
    if (key && head && head.classList.contains("open")) {
      document.getElementById("__ID__")?.click();
    }
  }).observe(box, {subtree: true, childList: true, attributes: true});
})();
"""
).replace("__ID__", EXTEND_REQUOTE_ID)


@dataclass
class ChainPanel:
    prompts: Any
    colour: Any
    extend_prompt: Any
    quote: Any
    storyboard: Any
    extend: Any
    status: Any
    video: Any
    chain_id: Any
    cancel: Any
    rerun: Any
    reuse: Any
    values: Any = None  # a gr.State: the FormValues /reuse_chain gave, for the page's form
    section: Any = None  # the accordion (History's Extend opens it: the chain shows there)
    # a gr.State: what the quote line last priced for Generate storyboard (a BatchShown)
    story_shown: Any = None
    extend_line: Any = None  # Extend's own quote line (the extension of the job shown)
    extend_shown: Any = None  # a gr.State: what it last priced, which Extend is held to
    rerun_note: Any = None  # Rerun chain's question: its price now, then Confirm rerun chain
    confirm: Any = None  # Confirm rerun chain (shown with the question)
    rerun_shown: Any = None  # a gr.State: what the question priced, which the rerun is held to
    extend_requote: Any = None  # prices Extend's line (EXTEND_REQUOTE_JS clicks it)


def chain_panel() -> ChainPanel:
    with gr.Accordion(
        "Longer video: Extend or Storyboard", open=False, elem_id="wp-chain"
    ) as section:
        prompts = described(
            Textbox(
                label="Storyboard prompts (one segment per line)", lines=3,
                placeholder="a heron lands on the lake\nthe heron folds its wings",
                elem_id="wp-chain-prompts",
            ),
            "one prompt per segment, one per line; each segment starts on the previous last frame",
        )  # fmt: skip
        colour = Checkbox(  # refuses "false" and the like: bool("false") is True
            False,
            label="Match each new start frame's colours to the previous segment",
            elem_id="wp-chain-colour",
        )
        extend_prompt = described(
            Textbox(
                label="Extension prompt (blank: the job's own)", elem_id="wp-chain-extend-prompt"
            ),
            "the prompt of the new segment; blank keeps the extended job's prompt",
        )
        extend_line = gr.Markdown(elem_id="wp-chain-extend-quote")
        extend_requote = gr.Button("Price the extension", visible="hidden",
                                   elem_id=EXTEND_REQUOTE_ID)  # fmt: skip
        quote = gr.Markdown(elem_id="wp-chain-quote")
        with gr.Row():  # Extend: usable while the page shows a job (app/ui/page.py)
            storyboard = gr.Button("Run storyboard", size="sm", elem_id="wp-chain-run")
            extend = gr.Button(
                "Extend the shown job", size="sm", elem_id="wp-chain-extend", interactive=False
            )
        status = gr.Markdown(elem_id="wp-chain-status")
        video = gr.Video(
            label="Chain video", interactive=False, elem_id="wp-chain-video", buttons=["download"]
        )
        chain_id = described(
            Textbox(label="Chain", interactive=False, elem_id="wp-chain-id"), CHAIN_ID_TEXT
        )
        with gr.Row():  # usable while a chain is shown (`wire_chain`)
            off = {"size": "sm", "interactive": False}
            cancel = gr.Button("Cancel chain", variant="stop", elem_id="wp-chain-cancel", **off)
            rerun = gr.Button("Rerun chain", elem_id="wp-chain-rerun", **off)
            reuse = gr.Button("Reuse chain settings", elem_id="wp-chain-reuse", **off)
        rerun_note = gr.Markdown(elem_id="wp-chain-rerun-note")
        confirm = gr.Button(
            "Confirm rerun chain", size="sm", visible=False, elem_id="wp-chain-rerun-confirm"
        )
    return ChainPanel(
        prompts, colour, extend_prompt, quote, storyboard, extend, status, video, chain_id,
        cancel, rerun, reuse, gr.State(None), section, gr.State(None), extend_line, gr.State(None),
        rerun_note, confirm, gr.State(None), extend_requote,
    )  # fmt: skip


class ChainCallbacks:
    """Thin functions over `Chains`; every error goes through `cb.error` (one place)."""

    def __init__(self, cb: Any, chains: Chains, panel: ChainPanel) -> None:
        self.cb = cb
        self.chains = chains
        self.panel = panel

    def _quoted(self, check: Any) -> str:
        return check.summary() + over_limits(check.refusals, "the chain")

    def storyboard_quote(
        self, request: gr.Request, prompts: str, colour_match: bool, **fields: Any
    ) -> tuple[str, BatchShown | None]:
        """The whole storyboard's quote, its video's length and every limit it would break;
        with what it priced (a State: the storyboard sent must be that one)."""
        if not (prompts or "").strip():
            return "Write one prompt per line: each becomes a segment of one longer video.", None
        try:
            values = self.cb.values(fields, request)
            check = self.chains.storyboard_check(values, prompts, colour_match, user_of(request))
        except Exception as exc:
            return warned(self.cb.message(exc)), None
        line = self._quoted(check) + self.cb.images_refusal(fields, request)  # its first one's
        return line, check.shown()

    @files_optional
    def storyboard_line(
        self, request: gr.Request, prompts: str, colour_match: bool, **fields: Any
    ) -> str:
        """The API's /storyboard_quote: the line only (an API client is not held to it)."""
        return self.storyboard_quote(request, prompts, colour_match, **fields)[0]

    @files_optional
    def storyboard(
        self,
        request: gr.Request,
        prompts: str,
        colour_match: bool,
        shown: BatchShown | None = None,
        **fields: Any,
    ) -> Iterator[tuple[Any, ...]]:
        """Start the storyboard (refused whole when a limit breaks, or when it is not the one
        the quote line priced), then stream it."""
        try:
            values = self.cb.values(fields, request)
            cid = self.chains.storyboard(values, prompts, colour_match, user=user_of(request),
                                         shown=priced(shown))  # fmt: skip
        except Exception as exc:
            raise self.cb.error(exc) from None
        yield from self.watch(cid, caller_of(self.studio_of(), request))

    def extend_quote(
        self, request: gr.Request, job_id: str | None, prompt: str, colour_match: bool
    ) -> tuple[str, BatchShown | None]:
        """The extension's quote line (the API's /extend_quote: the line; a State is not in
        the API), with what it priced: Extend the shown job sends that extension at that
        price."""
        try:
            check = self.chains.extend_check(
                (job_id or "").strip(), prompt or "", colour_match, user_of(request)
            )
        except Exception as exc:
            return warned(self.cb.message(exc)), None
        return self._quoted(check), check.shown()

    def extend(
        self,
        request: gr.Request,
        job_id: str | None,
        prompt: str,
        colour_match: bool,
        shown: BatchShown | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """A new segment from the job's last frame, streamed until the joined video is made;
        `shown`: what the extension's line priced (none from History's Extend, which has no
        line)."""
        try:
            rid = (job_id or "").strip()
            cid = self.chains.extend(rid, prompt or "", bool(colour_match), user=user_of(request),
                                     shown=priced(shown))  # fmt: skip
        except Exception as exc:
            raise self.cb.error(exc) from None
        yield from self.watch(cid, caller_of(self.studio_of(), request))

    def studio_of(self) -> Any:
        return self.chains.studio

    def attach(self, request: gr.Request, chain_id: str | None) -> Iterator[tuple[Any, ...]]:
        caller = caller_of(self.studio_of(), request)
        try:
            cid = self.chains.chain(chain_id, caller).id
        except Exception as exc:
            raise self.cb.error(exc) from None
        yield from self.watch(cid, caller)

    def follow(self, request: gr.Request, opened: str | None) -> Iterator[tuple[Any, ...]]:
        """A chain opened in History shows here too (its buttons then act on it)."""
        if not chain_history.is_chain(opened):
            yield gr.skip(), gr.skip(), gr.skip()
            return
        yield from self.watch(str(opened), caller_of(self.studio_of(), request))

    def cancel(self, request: gr.Request, chain_id: str | None) -> str:
        """The outcome line ("Chain … cancelled: …", "Chain … already ended COMPLETED."): the
        API's answer and the page's confirmation toast."""
        try:
            caller = caller_of(self.studio_of(), request)
            line = self.chains.cancel((chain_id or "").strip(), caller)
        except Exception as exc:
            raise self.cb.error(exc) from None
        gr.Info(line)
        return line

    def rerun_ask(
        self, request: gr.Request, chain_id: str | None
    ) -> tuple[str, Any, BatchShown | None]:
        """Rerun chain's question: what the rerun sends and costs now, the limits it would
        break, and the confirm button; with what it priced (the rerun is held to it)."""
        cid = (chain_id or "").strip()
        try:
            check = self.chains.rerun_check(cid, user=user_of(request))
        except Exception as exc:
            raise self.cb.error(exc) from None
        note = (
            f"**Rerun chain `{cid}`** (same prompts and seed): {check.summary()}. Press "
            "**Confirm rerun chain** to send it."
        )
        refused = over_limits(check.refusals, "Confirm rerun chain")
        return note + refused, gr.update(visible=True), check.shown()

    def rerun(
        self, request: gr.Request, chain_id: str | None, shown: Any = None
    ) -> Iterator[tuple[Any, ...]]:
        """The rerun, held to the question's price (`shown`; an API client: none, checked as
        it is)."""
        try:
            cid = self.chains.rerun((chain_id or "").strip(), user_of(request), priced(shown))
        except Exception as exc:
            raise self.cb.error(exc) from None
        yield from self.watch(cid, caller_of(self.studio_of(), request))

    def reuse(self, request: gr.Request, chain_id: str | None) -> dict[Any, Any]:
        """The chain's first segment's form values (plain, as /reuse gives them) and its
        prompts; the page then shows them in their pipeline's form."""
        try:
            caller = caller_of(self.studio_of(), request)
            values, prompts = self.chains.reuse((chain_id or "").strip(), caller)
        except Exception as exc:
            raise self.cb.error(exc) from None
        plain = self.cb.form.plain(values)
        return {**plain, self.panel.prompts: prompts, self.panel.values: values}

    def history_prompts(self, request: gr.Request, opened: str | None) -> tuple[Any, Any]:
        """History's Reuse settings on an opened chain (the form itself is filled by History):
        its prompts in the storyboard's field, the section opened to show them; nothing for a
        job (a refusal is History's own answer's)."""
        if not chain_history.is_chain(opened):
            return gr.skip(), gr.skip()
        try:
            _, prompts = self.chains.reuse(str(opened), caller_of(self.studio_of(), request))
        except Exception:  # said by History's answer, from the same lookup
            return gr.skip(), gr.skip()
        return prompts, gr.Accordion(open=True)

    def watch(self, cid: str, caller: Caller) -> Iterator[tuple[Any, ...]]:
        """The chain's panel (status, video, id) until its video is stitched; the last answer
        is whole."""
        sent: tuple[Any, ...] | None = None
        while True:
            view = self.chains.view(cid, caller)
            out = (view.line, view.video, cid)
            if view.final:
                yield out
                return
            if out != sent:
                yield out if sent is None or out[1] != sent[1] else (out[0], gr.skip(), cid)
                sent = out
            tracker = self.chains.studio.tracker
            if tracker is not None and tracker.stopped:
                return
            self.chains.wait(cid, CHAIN_RESYNC_S)


def wire_chain(
    cb: Any, chains: Chains, panel: ChainPanel, *, job_id: Any, history: Any, after_fill: Any
) -> ChainCallbacks:
    """The section's events, and History's "Extend" on the opened job."""
    cc = ChainCallbacks(cb, chains, panel)
    form = cb.form
    out = [panel.status, panel.video, panel.chain_id]
    buttons = [panel.cancel, panel.rerun, panel.reuse]  # the shown chain's
    panel.chain_id.change(None, panel.chain_id, buttons, js=job_buttons_js(3), **PRIVATE)
    story = {**form.kwargs, "prompts": panel.prompts, "colour_match": panel.colour}

    # the storyboard's quote follows the form's and its own fields in order (app/ui/requote.py:
    # the page's form listener asks for every quote line); the page keeps what it priced
    # (app/studio/shown.py), the API's /storyboard_quote answers the line alone
    requote.line(requote.STORYBOARD, cc.storyboard_line, story, [panel.quote],
                 api_name="storyboard_quote",
                 page=(cc.storyboard_quote, [panel.quote, panel.story_shown]))  # fmt: skip
    requote.on([panel.prompts.change, panel.colour.change])
    # a chain started here refreshes History (its gallery; the chain opened there) once it has
    # ended, as a job does; a cancel at once
    history.refresh_chain_after(panel.storyboard.click(
        cc.storyboard, inputs_kwargs={**story, "shown": panel.story_shown}, outputs=out,
        api_name="storyboard", **QUIET,
    ))  # fmt: skip
    ext = {"job_id": job_id, "prompt": panel.extend_prompt, "colour_match": panel.colour}
    # Extend's line: the job shown (a new one, a blank prompt: its own) and the prompt, while
    # the section is open (EXTEND_REQUOTE_JS, run beside the page's status panel)
    gr.on([panel.extend_prompt.change, panel.section.expand, panel.extend_requote.click],
          cc.extend_quote, inputs_kwargs=ext, outputs=[panel.extend_line, panel.extend_shown],
          api_name="extend_quote", **QUIET, trigger_mode="always_last")  # fmt: skip
    history.refresh_chain_after(
        panel.extend.click(
            cc.extend,
            inputs_kwargs={**ext, "shown": panel.extend_shown},
            outputs=out,
            api_name="extend",
            **QUIET,
        )
    )
    shown = history.extend.click(lambda: gr.Accordion(open=True), None, panel.section, **PRIVATE)
    history.refresh_chain_after(
        shown.then(
            cc.extend,
            inputs_kwargs={**ext, "job_id": history.opened},
            outputs=out,
            api_name="history_extend",
            **PRIVATE,
        )
    )
    # a chain opened in History, followed here to its end: then History shows that end too
    followed = history.opened.change(
        cc.follow, history.opened, out, api_name="chain_follow", **PRIVATE
    )
    history.refresh_chain_after(followed, opened_only=True)
    attach = gr.Button(visible=False)  # /chain: an API client follows a chain by id
    attach.click(cc.attach, panel.chain_id, out, api_name="chain", **QUIET)
    said = gr.Textbox(visible=False, label="Outcome")  # /cancel_chain's answer (a toast here)
    history.refresh_chain_after(
        panel.cancel.click(cc.cancel, panel.chain_id, said, api_name="cancel_chain", **QUIET)
    )
    # Rerun chain asks first (its price now, and the limits), as Rerun exactly does; Confirm
    # sends the chain it priced. The API's /rerun_chain sends at once (an API client has no
    # question), /rerun_chain_quote asks
    asked = [panel.rerun_note, panel.confirm]
    panel.rerun.click(cc.rerun_ask, panel.chain_id, [*asked, panel.rerun_shown],
                      api_name="rerun_chain_quote", **QUIET)  # fmt: skip
    panel.chain_id.change(lambda: ("", gr.update(visible=False)), None, asked, **PRIVATE)
    confirmed = panel.confirm.click(lambda: ("", gr.update(visible=False)), None, asked,
                                    **PRIVATE)  # fmt: skip
    rerun = confirmed.then(
        cc.rerun, [panel.chain_id, panel.rerun_shown], out, api_name="rerun_chain", **QUIET
    )
    history.refresh_chain_after(rerun)
    reused = panel.reuse.click(
        cc.reuse, panel.chain_id, [*form.inputs, panel.prompts, panel.values],
        api_name="reuse_chain", **QUIET,
    )  # fmt: skip
    after_fill(form.shown(reused, panel.values))
    # History's Reuse settings on an opened chain: the form (History's answer) and its prompts
    history.reuse.click(cc.history_prompts, history.opened, [panel.prompts, panel.section],
                        api_name="history_reuse_prompts", **PRIVATE)  # fmt: skip
    return cc
