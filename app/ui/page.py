"""All Gradio wiring of the studio, in one module. Nothing runs at import time.

`build_ui(studio, demo_mode)` returns the Blocks. Callbacks are thin: they turn component values
into `FormValues`, call the `Studio` service and format its answers; every error goes through
`errors.user_message` into a `gr.Error` (secret-free). API names: `/quote`, `/generate`
(submits, then streams the job until it is final), `/attach` (streams an existing job by id),
`/cancel` (cancels a live job by id), `/rerun` (the job's exact workflow and seed as a new job,
streamed like /generate), `/reuse` (a past job's form values). The quote line warns when a job
breaks the studio's limits (app/studio/checks/guardrails.py); the health panel
(app/studio/checks/health.py) refreshes every HEALTH_TICK_S.

The page keeps its job id in `gr.BrowserState` (localStorage), so a closed and reopened tab, or a
restarted app, attaches to the same job again: the job itself lives in the ledger and is followed
by the server-side tracker, not by this page. Our own status line + <progress> bar replaces
Gradio's overlay (show_progress="hidden"), so the status stays readable. A live job's status
is sent when it changes (and every RESYNC_S); the page counts the elapsed time itself (CLOCK_JS).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from app.errors import StudioError, user_message
from app.studio.forms import ADVANCED, FormValues, PipelineForm
from app.studio.jobs import JobView, Studio
from app.studio.progress import clock
from app.ui.batch import batch_panel, draft_final_panel, wire_batch
from app.ui.fields import Dropdown, Image, Number, Radio, Slider
from app.ui.history import build_history, chain_reuse

RESYNC_S = 30.0  # a live job's status is sent at least this often (the page's clock resyncs)
HEALTH_TICK_S = 5.0  # the endpoint health panel's refresh (one /health per 2 s for all pages)
CSS = """
#wp-status progress {width: 100%; height: 14px;}
#wp-status .wp-line {font-size: 1.05em; margin-top: 4px;}
#wp-demo {background: #fff4d6; border: 1px solid #e0b84a; padding: 8px 12px; border-radius: 6px;}
"""
# The page counts a live job's elapsed time (and time left) itself, once a second, from what the
# last status said (`.wp-clock` data); the server sends a status only when the job changed or
# every RESYNC_S. Same format and rules as app/studio/progress.py (`clock`, `_fmt`, PACE_FROM).
CLOCK_JS = """
const fmt = (s) => {
  s = Math.max(0, Math.round(s));
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
};
let shown = null;
let since = 0;
const stamp = () => { shown = element.querySelector(".wp-clock"); since = performance.now(); };
const tick = () => {
  const c = element.querySelector(".wp-clock");
  if (!c) { shown = null; return; }
  if (c !== shown) { stamp(); return; }
  const d = (performance.now() - since) / 1000;
  const e = parseFloat(c.dataset.elapsed) + d;
  let text = ` · ${fmt(e)} elapsed`;
  if (c.dataset.leftFrom === "pace") {
    const f = parseFloat(c.dataset.fraction);
    text += ` · about ${fmt(e / f - e)} left`;
  } else if (c.dataset.leftFrom === "quote") {
    text += ` · about ${fmt(Math.max(parseFloat(c.dataset.left) - d, 0))} left`;
  }
  if (c.textContent !== text) c.textContent = text;
};
if (typeof watch === "function") watch("value", stamp);
stamp();
setInterval(tick, 1000);
"""


def status_html(view: JobView | None, note: str = "") -> str:
    if view is None:
        text = html.escape(note or "No job yet: fill the form and press Generate.")
        return (
            '<div id="wp-status" data-state="IDLE" data-fraction="0">'
            f'<progress value="0" max="1"></progress><div class="wp-line">{text}</div></div>'
        )
    pv = view.progress
    if pv.elapsed_s is None:  # final: no clock
        line = html.escape(pv.line)
    else:
        left = f"{pv.left_s:.1f}" if pv.left_s is not None else ""
        line = (
            f'<span class="wp-head">{html.escape(pv.head)}</span><span class="wp-clock" '
            f'data-elapsed="{pv.elapsed_s:.1f}" data-left="{left}" '
            f'data-left-from="{pv.left_from}" data-fraction="{pv.fraction:.4f}">'
            f"{html.escape(clock(pv.elapsed_s, pv.left_s))}</span>"
        )
    return (
        f'<div id="wp-status" data-state="{html.escape(view.state)}" data-rid="{view.rid}" '
        f'data-fraction="{pv.fraction:.4f}"><progress value="{pv.fraction:.4f}" max="1">'
        f'</progress><div class="wp-line">{line}</div></div>'
    )


class Callbacks:
    """The thin functions the Blocks call; each maps errors to gr.Error in one place."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def _error(self, exc: BaseException) -> gr.Error:
        return gr.Error(
            user_message(exc, self.studio.settings.secret_values()), print_exception=False
        )

    def values(self, *args: Any) -> FormValues:
        (
            pipeline,
            mode,
            prompt,
            negative,
            start,
            end,
            wf_file,
            resolution,
            seconds,
            seed,
            randomize,
            *adv,
        ) = args
        extra = dict(zip(ADVANCED, adv, strict=True))
        return FormValues(
            pipeline=pipeline,
            mode=mode,
            prompt=prompt or "",
            negative_prompt=negative or "",
            start_image=_path(start),
            end_image=_path(end),
            workflow_file=_path(wf_file),
            resolution=resolution or "",
            seconds=float(seconds or 0),
            seed=int(seed) if seed not in (None, "") else None,
            randomize=bool(randomize),
            steps=int(extra["steps"]) if extra["steps"] is not None else None,
            cfg=_num(extra["cfg"]),
            shift=_num(extra["shift"]),
            sampler=extra["sampler"] or None,
            scheduler=extra["scheduler"] or None,
            lora_high=_num(extra["lora_high"]),
            lora_low=_num(extra["lora_low"]),
        )

    def quote(self, *args: Any) -> str:
        try:
            prep = self.studio.prepare(self.values(*args))
        except StudioError as exc:
            return f"⚠️ {user_message(exc, self.studio.settings.secret_values())}"
        except Exception as exc:
            return f"⚠️ {user_message(exc, self.studio.settings.secret_values())}"
        line = "**Quote:** " + prep.quote.summary()
        refusals = self.studio.ops.refusals(prep) if self.studio.ops is not None else []
        if refusals:
            line += "\n\n⚠️ **Over the studio's limits** (Generate would be refused): " + "; ".join(
                html.escape(str(r)) for r in refusals
            )
        return line

    def health(self, *args: Any) -> str:
        """The endpoint health panel, its cold-start note priced for the form's current job."""
        ops = self.studio.ops
        if ops is None:
            return ""
        try:
            quote = self.studio.prepare(self.values(*args)).quote
        except Exception:  # an unfinished form still gets the panel, without a price
            quote = None
        return ops.health_html(quote)

    def rerun(self, request: gr.Request, rid: str | None) -> Iterator[tuple[Any, ...]]:
        user = getattr(request, "username", None) if request is not None else None
        try:
            new = self.studio.rerun((rid or "").strip(), user=user)
        except Exception as exc:
            raise self._error(exc) from None
        yield from self.watch(new)

    def reuse(self, rid: str | None) -> tuple[Any, ...]:
        try:
            v = self.studio.reuse((rid or "").strip())
        except Exception as exc:
            raise self._error(exc) from None
        images = (gr.skip(), gr.skip(), gr.skip())  # start, end, workflow file: upload again
        return (
            v.pipeline, v.mode, v.prompt, v.negative_prompt, *images, v.resolution, v.seconds,
            v.seed, v.randomize, *(getattr(v, key) for key in ADVANCED),
        )  # fmt: skip

    def cancel(self, rid: str | None) -> None:
        try:
            gr.Info(self.studio.cancel((rid or "").strip()))
        except Exception as exc:
            raise self._error(exc) from None

    def frames_note(self, pipeline: str, seconds: float) -> str:
        form = self.studio.forms.get(pipeline)
        if form is None or form.byo:
            return ""
        n = form.frames(float(seconds or 0))
        return f"{seconds:g} s → **{n} frames** at {form.fps} fps ({(n - 1) / form.fps:.2f} s)"

    def generate(self, request: gr.Request, *args: Any) -> Iterator[tuple[Any, ...]]:
        # Gradio injects `request` (not part of the API); its username is set under APP_AUTH
        user = getattr(request, "username", None) if request is not None else None
        try:
            rid = self.studio.submit(self.values(*args), user=user)
        except Exception as exc:
            raise self._error(exc) from None
        yield from self.watch(rid)

    def attach(self, rid: str | None) -> Iterator[tuple[Any, ...]]:
        rid = (rid or "").strip()
        if not rid or self.studio.ledger.get(rid) is None:
            yield status_html(None), gr.skip(), gr.skip(), rid or "", gr.skip()
            return
        yield from self.watch(rid)

    def watch(self, rid: str) -> Iterator[tuple[Any, ...]]:
        """Stream one job's view until it is final (the tracker does the polling).

        Yields when the job changed (state, stage, step, video, details; gr.skip() for what did
        not) and at least every RESYNC_S: the page's clock counts the seconds in between."""
        tracker = self.studio.tracker
        seen = -1
        last: dict[str, Any] = {}
        sent_key: tuple[Any, ...] | None = None
        sent_at = 0.0
        while True:
            version = tracker.version(rid)
            view = self.studio.view(rid)
            if view is None:
                yield status_html(None, f"unknown job {rid}"), gr.skip(), gr.skip(), rid, rid
                return
            first = seen == -1
            if view.final:  # complete, so an API client's result (the last yield) is whole
                yield status_html(view), view.video, view.details, rid, rid
                return
            pv = view.progress
            key = (view.state, pv.head, round(pv.fraction, 4), pv.left_from)
            key += (view.video, view.details)
            if key == sent_key and time.monotonic() - sent_at < RESYNC_S:
                if tracker.wait(rid, version, RESYNC_S) == version and tracker.stopped:
                    return  # the studio is shutting down
                continue
            sent_key, sent_at = key, time.monotonic()
            out: list[Any] = [status_html(view)]
            if first:
                out.append(view.video)  # None clears a previous job's video
            elif view.video and last.get("video") != view.video:
                out.append(view.video)
            else:
                out.append(gr.skip())
            out.append(view.details if last.get("details") != view.details else gr.skip())
            out += [rid, rid] if first else [gr.skip(), gr.skip()]
            last = {"video": view.video, "details": view.details}
            yield tuple(out)
            seen = version

    def form_update(self, pipeline: str, mode: str) -> tuple[Any, ...]:
        """Visibility, choices and ranges for the chosen pipeline and mode (from the catalog)."""
        form = self.studio.forms[pipeline]
        mode = mode if mode in form.modes else form.modes[0]
        adv = form.advanced.get(mode) or {}
        updates = []
        for key in ADVANCED:
            spec = adv.get(key)
            if spec is None:
                updates.append(gr.update(visible=False))
            elif spec.kind == "choice":
                updates.append(
                    gr.update(visible=True, choices=list(spec.choices), value=spec.default)
                )
            else:
                updates.append(
                    gr.update(
                        visible=True,
                        minimum=spec.minimum,
                        maximum=spec.maximum,
                        step=spec.step,
                        value=spec.default,
                    )
                )
        lo, hi, step, default = form.seconds
        neg_used = form.negative_used.get(mode, mode != "turbo")
        return (
            gr.update(choices=list(form.modes), value=mode),
            gr.update(visible=form.needs_start),
            gr.update(visible=form.needs_end),
            gr.update(visible=form.byo),
            gr.update(
                visible=bool(form.presets),
                choices=[p.label for p in form.presets],
                value=form.default_preset or (form.presets[0].label if form.presets else None),
            ),
            gr.update(visible=not form.byo, minimum=lo, maximum=hi, step=step, value=default),
            gr.update(
                label="Negative prompt" + ("" if neg_used else " (ignored in turbo: cfg = 1)"),
                visible=not form.byo,
            ),
            *updates,
        )


def _path(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return str(getattr(value, "path", None) or getattr(value, "name", None) or value)


def _num(value: Any) -> float | None:
    return float(value) if value is not None and value != "" else None


def build_ui(studio: Studio, demo_mode: bool, browser_key: str = "") -> gr.Blocks:
    """The page. `browser_key` keys Gradio's (client-side) encryption of the remembered job id in
    localStorage; it must survive restarts so a reopened tab finds its job again. It is not a
    secret (the browser holds it) and must not be one of ours."""
    cb = Callbacks(studio)
    forms: dict[str, PipelineForm] = dict(studio.forms)
    first = next(iter(forms.values()))
    with gr.Blocks(title="WanPod studio", analytics_enabled=False) as blocks:
        gr.Markdown("# WanPod studio · Wan 2.2 on RunPod serverless")
        if demo_mode:
            gr.Markdown(
                "**Demo mode:** no RunPod credentials are set, so this studio runs the local "
                "stack (ComfyUI emulator + local RunPod control plane + the real worker). "
                "Videos are **synthetic** test patterns, not Wan 2.2 output; timings are emulated.",
                elem_id="wp-demo",
            )
        job_store = gr.BrowserState("", storage_key="wanpod_job", secret=browser_key or None)
        with gr.Row():
            with gr.Column(scale=5):
                pipeline = Dropdown(
                    [(f.title, k) for k, f in forms.items()],
                    value=first.template_id,
                    label="Pipeline",
                    elem_id="wp-pipeline",
                )
                # choices span every pipeline (the API accepts what some form offers); the page
                # narrows them to the chosen pipeline's (form_update)
                all_modes = list(dict.fromkeys(m for f in forms.values() for m in f.modes))
                mode = Radio(all_modes, value=first.modes[0], label="Mode", elem_id="wp-mode")
                prompt = gr.Textbox(
                    label="Prompt", lines=3, value=first.prompt_default, elem_id="wp-prompt"
                )
                negative = gr.Textbox(
                    label="Negative prompt (ignored in turbo: cfg = 1)",
                    lines=2,
                    value=first.negative_default,
                    elem_id="wp-negative",
                )
                with gr.Row():
                    start = Image(
                        label="Start image",
                        type="filepath",
                        visible=first.needs_start,
                        elem_id="wp-start",
                    )
                    end = Image(
                        label="End image",
                        type="filepath",
                        visible=first.needs_end,
                        elem_id="wp-end",
                    )
                wf_file = gr.File(
                    label="API workflow (.json)",
                    file_types=[".json"],
                    type="filepath",
                    visible=first.byo,
                    elem_id="wp-workflow",
                )
                resolution = Dropdown(
                    list(dict.fromkeys(p.label for f in forms.values() for p in f.presets)),
                    value=first.default_preset or None,
                    label="Resolution",
                    elem_id="wp-resolution",
                )
                lo, hi, step, default = first.seconds
                seconds = Slider(
                    lo,
                    hi,
                    value=default,
                    step=step,
                    label="Duration (seconds)",
                    elem_id="wp-seconds",
                )
                frames_md = gr.Markdown(
                    cb.frames_note(first.template_id, default), elem_id="wp-frames"
                )
                with gr.Row():
                    seed = Number(value=0, precision=0, label="Seed", elem_id="wp-seed")
                    randomize = gr.Checkbox(
                        value=True, label="Randomize seed", elem_id="wp-randomize"
                    )
                with gr.Accordion("Advanced", open=False):
                    adv = []
                    for key in ADVANCED:
                        label = {
                            "steps": "Steps",
                            "cfg": "CFG",
                            "shift": "Shift (ModelSampling)",
                            "sampler": "Sampler",
                            "scheduler": "Scheduler",
                            "lora_high": "LoRA strength, high-noise expert",
                            "lora_low": "LoRA strength, low-noise expert",
                        }[key]
                        specs = [
                            m[key] for f in forms.values() for m in f.advanced.values() if key in m
                        ]
                        start_spec = (first.advanced.get(first.modes[0]) or {}).get(key)
                        if key in ("sampler", "scheduler"):
                            union = list(dict.fromkeys(c for sp in specs for c in sp.choices))
                            adv.append(
                                Dropdown(
                                    union,
                                    value=start_spec.default if start_spec else None,
                                    label=label,
                                    visible=start_spec is not None,
                                    elem_id=f"wp-{key}",
                                )
                            )
                        else:
                            lo_ = min(
                                (sp.minimum for sp in specs if sp.minimum is not None), default=0
                            )
                            hi_ = max(
                                (sp.maximum for sp in specs if sp.maximum is not None), default=1
                            )
                            adv.append(
                                Slider(
                                    lo_,
                                    hi_,
                                    value=start_spec.default if start_spec else lo_,
                                    step=min((sp.step for sp in specs if sp.step), default=None),
                                    label=label,
                                    visible=start_spec is not None,
                                    elem_id=f"wp-{key}",
                                )
                            )
                quote_md = gr.Markdown(elem_id="wp-quote")
                generate_btn = gr.Button("Generate", variant="primary", elem_id="wp-generate")
                batch = batch_panel(cb)
            with gr.Column(scale=5):
                status = gr.HTML(status_html(None), js_on_load=CLOCK_JS, elem_id="wp-status-box")
                video = gr.Video(
                    label="Result", interactive=False, elem_id="wp-video", buttons=["download"]
                )
                details = gr.Markdown(elem_id="wp-details")
                job_id = gr.Textbox(label="Job", interactive=False, elem_id="wp-job")
                with gr.Row():
                    cancel_btn = gr.Button(
                        "Cancel job", size="sm", variant="stop", elem_id="wp-cancel"
                    )
                    rerun_btn = gr.Button("Rerun exactly", size="sm", elem_id="wp-rerun")
                    reuse_btn = gr.Button("Reuse settings", size="sm", elem_id="wp-reuse")
                final = draft_final_panel()
                with gr.Accordion("Endpoint health", open=True):
                    health_box = gr.HTML(elem_id="wp-health-box")
                    health_timer = gr.Timer(HEALTH_TICK_S)
                with gr.Accordion("Open a job by id", open=False):
                    attach_id = gr.Textbox(label="Job id", elem_id="wp-attach-id")
                    attach_btn = gr.Button("Open", size="sm", elem_id="wp-attach")

        inputs = [
            pipeline,
            mode,
            prompt,
            negative,
            start,
            end,
            wf_file,
            resolution,
            seconds,
            seed,
            randomize,
            *adv,
        ]
        watch_out = [status, video, details, job_id, job_store]
        form_out = [mode, start, end, wf_file, resolution, seconds, negative, *adv]
        history = build_history(
            cb, blocks, inputs=inputs, watch_out=watch_out, quote_md=quote_md, frames_md=frames_md
        )

        gr.on(  # a user's choice only: a programmatic change (Reuse settings) keeps its values
            [pipeline.input, mode.input],
            cb.form_update,
            [pipeline, mode],
            form_out,
            api_visibility="private",
            show_progress="hidden",
        ).then(
            cb.quote,
            inputs,
            quote_md,
            api_name="form_quote",
            api_visibility="private",
            show_progress="hidden",
        )
        gr.on(
            [c.change for c in inputs if c not in (pipeline, mode)],
            cb.quote,
            inputs,
            quote_md,
            api_name="quote",
            show_progress="hidden",
            trigger_mode="always_last",
        )
        seconds.change(
            cb.frames_note,
            [pipeline, seconds],
            frames_md,
            api_visibility="private",
            show_progress="hidden",
        )
        history.refresh_after(  # the gallery shows the job once it has ended
            generate_btn.click(
                cb.generate, inputs, watch_out, api_name="generate", show_progress="hidden"
            )
        )
        attach_btn.click(cb.attach, attach_id, watch_out, api_name="attach", show_progress="hidden")
        cancel_btn.click(cb.cancel, job_id, None, api_name="cancel", show_progress="hidden")
        history.refresh_after(
            rerun_btn.click(cb.rerun, job_id, watch_out, api_name="rerun", show_progress="hidden")
        )
        chain_reuse(  # /reuse gives API clients plain values; the page then gets the full form
            history,
            reuse_btn.click(cb.reuse, job_id, inputs, api_name="reuse", show_progress="hidden"),
            job_id,
            inputs,
            quote_md,
            frames_md,
        )
        wire_batch(cb, batch, final, inputs=inputs, job_id=job_id, frames_md=frames_md)
        gr.on(
            [health_timer.tick],
            cb.health,
            inputs,
            health_box,
            api_visibility="private",
            show_progress="hidden",
            trigger_mode="always_last",
        )
        blocks.load(
            cb.form_update,
            [pipeline, mode],
            form_out,
            api_visibility="private",
            show_progress="hidden",
        ).then(
            cb.quote,
            inputs,
            quote_md,
            api_name="load_quote",
            api_visibility="private",
            show_progress="hidden",
        ).then(  # first paint of the health panel, after the form has settled
            cb.health,
            inputs,
            health_box,
            api_visibility="private",
            show_progress="hidden",
        )
        blocks.load(
            cb.attach,
            job_store,
            watch_out,
            api_name="load_attach",
            api_visibility="private",
            show_progress="hidden",
        )
    return blocks
