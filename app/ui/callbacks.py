"""The thin functions the page's events call: they read the form (app/ui/form.py) as typed
`FormValues`, call the `Studio` service and format its answers; every error goes through
`errors.user_message` into a `gr.Error` (secret-free), in `Callbacks.error`.

`generate` submits, then streams the job until it is final (`watch`); `attach` streams an
existing job by id; `rerun` sends a job's exact workflow and seed again, streamed the same way;
`cancel` cancels a live job. The quote line warns when a job breaks the studio's limits
(app/studio/checks/guardrails.py).
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import functools
import html
import inspect
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from app.errors import SubmitError, user_message
from app.studio.chain_history import is_chain
from app.studio.forms import FILE_FIELDS, field_of
from app.studio.history import thumbnail
from app.studio.inputs import describe
from app.studio.jobs import JobView, Studio
from app.studio.markup import md_text
from app.studio.offers import adds_words
from app.studio.owners import Caller
from app.studio.shown import Shown
from app.studio.summary import job_result, unknown_job
from app.ui.form import Form
from app.ui.pace import Pace
from app.ui.status import SUBMITTING_HTML, ended_html, status_html, unknown_html
from app.ui.toasts import refusal, stopped

log = logging.getLogger("wanpod.app")


def files_optional(fn: Any) -> Any:
    """`fn(**fields)` with the form's file fields as keyword parameters defaulting to None in its
    signature: Gradio's API info (and gradio_client) then lists them as optional, not Required."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    rest = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    only = inspect.Parameter.KEYWORD_ONLY
    files = [inspect.Parameter(n, only, default=None) for n in FILE_FIELDS]
    fn.__signature__ = sig.replace(parameters=[*rest, *files, *kw])
    return fn


RECENT = 12  # jobs in the page's "this session's results" strip
SUBMITTING_AFTER_S = 0.3  # an API submit slower than this streams "Submitting…" first
PRICED_PROMPT = "a video"  # prices a form whose prompt is refused (its words cost nothing)


def warned(text: str) -> str:
    """A refusal on a quote line: its words (which may quote what the user typed) as text."""
    return f"⚠️ {md_text(text)}"


def over_limits(refusals: Sequence[object], what: str) -> str:
    """The paragraph a quote line ends with when its job would break the studio's limits ("" when
    it breaks none): `what` names what would be refused (Generate, the chain, the rerun)."""
    if not refusals:
        return ""
    return f"\n\n⚠️ **Over the studio's limits** ({what} would be refused): " + "; ".join(
        html.escape(str(r), quote=False) for r in refusals
    )


def user_of(request: gr.Request | None) -> str | None:
    """The signed-in user (set under APP_AUTH); Gradio injects `request`, not part of the API."""
    return getattr(request, "username", None) if request is not None else None


def caller_of(studio: Studio, request: gr.Request | None) -> Caller:
    """Who is asking, for the service's job lookups (app/studio/owners.py)."""
    return studio.caller(user_of(request))


def shows_job(
    fn: Callable[..., tuple[Any, ...]],
    job_shown: Callable[[Caller, str], list[Any]],
    studio: Studio,
) -> Callable[..., tuple[Any, ...]]:
    """`fn` (a page event answering `status, video, details, job id, ...` once: `answered`),
    its answer followed by `job_shown(caller, job id)`; a skipped job id keeps the page's.
    Gradio reads `fn`'s parameters (and injects the request) from the wrapper's signature."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        request = next((a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)), None)
        caller = caller_of(studio, request)
        out = fn(*args, **kwargs)
        rid = out[3]
        if isinstance(rid, str):
            return (*out, *job_shown(caller, rid))
        return (*out, *[gr.skip() for _ in job_shown(caller, "")])  # (no job, no lookup)

    run.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return run


def strip_ids(rids: list[str] | None, job_id: str | None) -> list[str]:
    """This session's strip's job ids with `job_id` (if any) first, RECENT of them."""
    rest = [r for r in (rids or []) if r != job_id]
    return ([job_id, *rest] if job_id else rest)[:RECENT]


def joins_strip(fn: Callable[..., tuple[Any, ...]]) -> Callable[..., tuple[Any, ...]]:
    """`fn` (a page event answering `status, video, details, job id, ...` once) with one more
    input and output, the job ids of this session's strip (`recent`, a State): the job it
    answers joins them at once, not only at its end. So a job the page stops following (a
    later Generate, Rerun or Open takes the panel, and the page never asks for its end) is in
    the strip at the end of the next job the page follows (`Callbacks.ended`), once it has a
    video. Gradio reads the parameters (`recent` after the positional ones) from the wrapper's
    signature."""
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    at = next((i for i, p in enumerate(params) if p.kind >= p.KEYWORD_ONLY), len(params))
    recent = inspect.Parameter("recent", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
    joined = signature.replace(parameters=[*params[:at], recent, *params[at:]])

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        bound = joined.bind(*args, **kwargs)
        rids = bound.arguments.pop("recent", None)
        out = fn(*bound.args, **bound.kwargs)
        rid = out[3]
        return (*out, strip_ids(rids, rid if isinstance(rid, str) else None))

    run.__signature__ = joined  # type: ignore[attr-defined]
    return run


def answered(fn: Callable[..., Iterator[tuple[Any, ...]]]) -> Callable[..., tuple[Any, ...]]:
    """`fn` (a streamed event that yields once for the page: `Callbacks.live()`) as a function
    returning that answer. Gradio runs a generator as one more call to learn it has ended, and
    sends one more message (`process_generating`, then `process_completed`), which the page
    handles as one more status update of every component; a function is one call and one
    message. Gradio reads the parameters from the wrapper's signature."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        answers = list(fn(*args, **kwargs))
        if not answers:  # only while the studio shuts down (Callbacks.watch)
            raise refusal("The studio is shutting down: reload the page in a moment.")
        return answers[-1]

    run.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return run


def no_job(state: str, line: str, error: str, ask_end: bool = False) -> tuple[str, dict[str, Any]]:
    """The status panel (`line`) and the result (`error`) of a Generate that left no job to
    follow, in `state`; `ask_end`: see `ended_html`."""
    result = {"job_id": None, "state": state, "final": True, "error": error}
    return ended_html(state, line, ask_end=ask_end), result


def not_taken(msg: str, failed: bool) -> tuple[str, dict[str, Any]]:
    """`no_job` for a Generate that was not taken. `failed`: the endpoint did not take it (the
    ledger holds its FAILED row, the page asks for its end), else the studio refused it
    (nothing was written or sent)."""
    state, word = ("FAILED", "Failed") if failed else ("REFUSED", "Not submitted")
    return no_job(state, f"{word}: {msg}", msg, ask_end=failed)


def in_panel(panel: str, result: dict[str, Any]) -> tuple[Any, ...]:
    """The page's Generate answering `panel` and `result`, the rest of the page as it was."""
    return panel, *(gr.skip(),) * 4, result


def said_in_panel(
    fn: Callable[..., tuple[Any, ...]], message: Callable[[BaseException], str]
) -> Callable[..., tuple[Any, ...]]:
    """`fn` (the page's Generate: `answered`) for a direct request (app/ui/page.py), which
    Gradio's page answers with no message when it fails: its refusals are answers already
    (`Callbacks.refused`), and any other error is said in the status panel too, where the page
    put up "Submitting…"; the rest of the page is left as it was. Whether the job was sent is
    not known then: History shows it. `message`: an error's user-facing words (secret-free)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # a gr.Error says the user's words already (Callbacks.error)
            msg = exc.message if isinstance(exc, gr.Error) else message(exc)
            log.warning("the page's Generate failed: %s", msg)
            line = f"Generate failed: {msg}. History shows whether the job was sent."
            return in_panel(*no_job("ERROR", line, msg))

    run.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return run


class Callbacks:
    """The page's callbacks; each maps errors to gr.Error in one place (`error`)."""

    def __init__(self, studio: Studio, form: Form, chains: Any = None) -> None:
        self.studio = studio
        self.form = form
        self.chains = chains  # app/studio/chains.py's Chains (Extend, Storyboard)
        self.quiet = False  # see live()

    @functools.cached_property
    def submits(self) -> concurrent.futures.ThreadPoolExecutor:
        """Where an API client's Generate submits beside its event (which streams "Submitting…"
        when the submit is slow): as many at once as the events' concurrency, in threads kept
        from one submit to the next. The page's own Generate submits in its event's thread."""
        return concurrent.futures.ThreadPoolExecutor(
            self.studio.settings.concurrency, thread_name_prefix="wanpod-submit"
        )

    def live(self, job_shown: Callable[[Caller, str], list[Any]] | None = None) -> Callbacks:
        """These callbacks for the page's own events: `generate`, `rerun` and `attach` answer
        the job's first view and end (the final view, when the job has already ended). The
        page follows the live job on its own stream (app/ui/live_route.py) and asks for the
        final view when the stream ends the job (`final`). So a page's event lasts as long as
        its submit, not its job: it holds no worker thread and no slot of the event's
        concurrency (WANPOD_CONCURRENCY) while a job of minutes runs. The API's events keep
        streaming every update to the end. The page's Generate is a direct request, so it
        answers a refusal in the status panel (`refused`, `said_in_panel`). `job_shown(caller,
        job id)`: more outputs of those events, set whenever the job id they answer changes (the
        page's job buttons and seed line), so that a new job costs the page no event of its own.
        Last in and out, the job ids of this session's strip (`joins_strip`)."""
        page = copy.copy(self)
        page.quiet = True
        for name in ("generate", "rerun", "attach"):
            fn = answered(getattr(page, name))  # one answer: a function, not a generator
            if name == "generate":  # a direct request (app/ui/page.py)
                fn = said_in_panel(fn, page.message)
            if job_shown is not None:
                fn = shows_job(fn, job_shown, self.studio)
            setattr(page, name, joins_strip(fn))
        return page

    def message(self, exc: BaseException) -> str:
        return user_message(exc, self.studio.settings.secret_values())

    def error(self, exc: BaseException) -> gr.Error:
        return refusal(self.message(exc))

    def values(self, fields: Mapping[str, Any], request: gr.Request | None) -> Any:
        """The form's values from an event's fields (`Form.values`); a stored file the caller
        may not read, named by path in a file field, is refused before anything reads it
        (`Studio.check_files`: Gradio takes any file it serves as an input)."""
        values = self.form.values(fields)
        self.studio.check_files(values, caller_of(self.studio, request))
        return values

    @files_optional
    def quote(self, request: gr.Request, **fields: Any) -> str:
        """The job's quote (GPU seconds, dollars, cold start), what happens to its images, and
        any limit it would break. A refused value (out of range, not offered, a missing or too
        small image) is said instead, naming the field."""
        return self.quoted(fields, request)[0]

    def quoted(self, fields: dict[str, Any], request: gr.Request | None) -> tuple[str, Shown]:
        """The quote line and what it shows, kept for the page's Generate (app/studio/shown.py):
        the page's quote event answers both (app/ui/page.py), the API's /quote the line."""
        values = prep = None
        try:
            values = self.values(fields, request)
            prep = self.studio.prepare(values)
            fits = self.studio.images(values)
        except Exception as exc:
            msg = self.message(exc)
            field = field_of(str(getattr(exc, "field", "")))
            priced = self._priced_aside(values, prep, field, user_of(request))
            if priced is None:
                return warned(msg), Shown(problem=msg, field=field)
            # the price does not depend on what was refused: the settings' quote, then the
            # refusal (an operator sees what a choice costs before writing the prompt or
            # picking the image). Generate validates the form again: the refusal stands, and a
            # prompt or an image given meanwhile is sent at this price
            line, kept = priced
            shown = dataclasses.replace(kept, problem=msg, field=field)  # the price and the refusal
            return f"{line}\n\n{warned(msg)}", shown
        return self._line(values, prep, fits, user_of(request))

    def images_refusal(self, fields: dict[str, Any], request: gr.Request | None) -> str:
        """The form's images refused, as a paragraph under a price ("" when they are usable):
        the batch's and the storyboard's quote lines, whose jobs (a batch's every one, a
        storyboard's first) send the form's images, say it as the form's own line does."""
        try:
            self.studio.images(self.values(fields, request))
        except Exception as exc:
            return f"\n\n{warned(self.message(exc))}"
        return ""

    def _priced_aside(
        self, values: Any, prep: Any, field: str, user: str | None
    ) -> tuple[str, Shown] | None:
        """The quote line of a form refused only for what its price does not depend on: its
        images (checked once the form is priced, `prep`: missing, unusable), or its prompt
        (priced with a stand-in, PRICED_PROMPT; an image refused then is said once the prompt
        is written). None for any other refusal, or where the stand-in is refused too."""
        try:
            if prep is not None:
                return self._line(values, prep, [], user)
            if values is None or field != "prompt":
                return None
            values = dataclasses.replace(values, prompt=PRICED_PROMPT)
            prep = self.studio.prepare(values)
            try:
                fits = self.studio.images(values)
            except Exception:
                fits = []
            return self._line(values, prep, fits, user)
        except Exception:
            return None

    def _line(self, values: Any, prep: Any, fits: Any, user: str | None) -> tuple[str, Shown]:
        """The priced line; its limits are those Generate holds `user`'s job to (their own
        daily budget included)."""
        line = "**Quote:** " + prep.quote.summary()
        adds = adds_words(prep.filled.params, getattr(prep.filled, "output", None))
        if adds:
            line += "\n\n**Adds:** " + html.escape(adds)
        if fits:
            line += "\n\n**Images:** " + html.escape(describe(fits, values.resolution))
        refusals = self.studio.ops.refusals(prep, user) if self.studio.ops is not None else []
        return line + over_limits(refusals, "Generate"), Shown(prep.request, prep.quote)

    @files_optional
    def generate(
        self, request: gr.Request, shown: Shown | None = None, **fields: Any
    ) -> Iterator[tuple[Any, ...]]:
        """Submit the job, then stream its status until it is final (the last answer is whole:
        status, video, details, job id, result). A slow submit streams "Submitting…" first (the
        page's own Generate, `live()`, does not: the page shows it at the click); a refusal is an
        API client's error however late it comes (`refused`), and an endpoint that does not take
        the job leaves the failure and its reason in the status panel. `shown`:
        the page's quote line (a State; None for an API client): the job sent must be the one
        it priced."""
        try:
            values = self.values(fields, request)
        except Exception as exc:
            yield self.refused(exc)
            return
        send = functools.partial(self.studio.submit, values, user=user_of(request), shown=shown)
        try:
            if self.quiet:  # the page shows "Submitting…" itself at the click (app/ui/status.py)
                rid = send()  # in this event's thread: nothing to stream meanwhile
            else:
                sending = self.submits.submit(send)
                try:  # most answers come fast: nothing is streamed before them
                    rid = sending.result(timeout=SUBMITTING_AFTER_S)
                except concurrent.futures.TimeoutError:
                    yield SUBMITTING_HTML, None, "", "", gr.skip(), {}
                    rid = sending.result()
        except Exception as exc:
            # refused, nothing sent: an API client's error and the page's "Not submitted",
            # however long the refusal took (a pre-flight that reads the endpoint's inventory)
            if not isinstance(exc, SubmitError):
                yield self.refused(exc)
                return
            msg = self.message(exc)
            # kept on screen (an error raised now would drop this last answer): the endpoint
            # did not take the job (the ledger holds its FAILED row), or may have (its LOST
            # row, shown as History shows it); API clients read the result's "state" and "error"
            if not self.quiet:  # the page's Generate is a direct request: no toast there
                stopped(msg)
            if exc.rid is not None:
                yield from self.watch(exc.rid, caller_of(self.studio, request))
                return
            ended, result = not_taken(msg, failed=True)
            yield ended, None, "", "", gr.skip(), result
            return
        yield from self.watch(rid, caller_of(self.studio, request))

    def refused(self, exc: BaseException) -> tuple[Any, ...]:
        """A Generate refused before anything was sent. An API client gets the error (a toast
        in Gradio's page); the page's own Generate, a direct request (which Gradio's page
        answers with no message when it fails), answers "Not submitted: <reason>" in the status
        panel, where the page put up "Submitting…" at the click (on a small screen, scrolled
        into view), and leaves the rest of the page as it was."""
        if not self.quiet:
            raise self.error(exc) from None
        return in_panel(*not_taken(self.message(exc), failed=False))

    def rerun(self, request: gr.Request, job_id: str | None) -> Iterator[tuple[Any, ...]]:
        """The job's exact workflow and seed as a new job, streamed like /generate."""
        caller = caller_of(self.studio, request)
        if is_chain((job_id or "").strip()):  # a chain opened in History
            raise refusal(
                f"{job_id.strip()} is a chain: press Rerun chain in the Longer video section"
            )
        try:
            new = self.studio.rerun((job_id or "").strip(), caller)
        except Exception as exc:
            raise self.error(exc) from None
        yield from self.watch(new, caller)

    def cancel(self, request: gr.Request, job_id: str | None) -> str:
        """Cancel a queued or running job: the outcome line ("Cancel sent for job …", "Job …
        already ended COMPLETED."), the API's answer and the page's confirmation toast."""
        try:
            line = self.studio.cancel((job_id or "").strip(), caller_of(self.studio, request))
        except Exception as exc:
            raise self.error(exc) from None
        gr.Info(line)
        return line

    def attach(self, request: gr.Request, job_id: str | None) -> Iterator[tuple[Any, ...]]:
        """Stream an existing job (one the caller may see) by id until it is final; an id it
        may not see is answered as unknown (the studio does not say whose it is). An empty id
        is an API client's error, as for every route that takes a job id; the page's own
        (`live()`: a fresh tab has no stored job at load) answers the idle panel."""
        rid = (job_id or "").strip()
        caller = caller_of(self.studio, request)
        if not rid:
            if not self.quiet:
                try:
                    self.studio.row(rid, caller, workflow=False)  # refuses it as empty
                except Exception as exc:
                    raise self.error(exc) from None
            yield status_html(None), gr.skip(), gr.skip(), "", gr.skip(), gr.skip()
            return
        if self.studio.view(rid, caller) is None:
            skip = gr.skip
            yield unknown_html(rid), skip(), skip(), skip(), skip(), unknown_job(rid)
            return
        yield from self.watch(rid, caller)

    def final(self, request: gr.Request, job_id: str | None) -> tuple[Any, ...]:
        """The page's end of a job it followed live: status, video, details, result, read
        when its live stream said the job ended (the job as it is now: a job still live, if
        the stream ended early, is followed again by the page)."""
        rid = (job_id or "").strip()
        view = self.studio.view(rid, caller_of(self.studio, request)) if rid else None
        if view is None:
            return unknown_html(rid), None, "", unknown_job(rid)
        return self.final_view(rid, view)

    def ended(
        self, request: gr.Request, job_id: str | None, rids: list[str] | None
    ) -> tuple[Any, ...]:
        """The page's end of a job it followed live (Generate, Rerun, Open, a reload): the
        final view (`final`) and this session's strip (`recent`); no job id (a job the endpoint
        did not take: its failure stays on screen) answers the strip alone. A failure to read
        them is said in the status panel, not raised: the page asks for its end in a direct
        request, and Gradio's page shows no error for a failed direct request."""
        rid = (job_id or "").strip()
        try:
            shown = self.final(request, rid) if rid else (gr.skip(),) * 4
            return (*shown, *self.recent(request, rid, rids))
        except Exception as exc:
            msg = self.message(exc)
            log.warning("the end of job %s could not be read: %s", rid, msg)
            line = f"The end of job {rid} could not be read: {msg}. Reload the page to see it."
            return ended_html("ERROR", line), *(gr.skip(),) * 5

    def final_view(self, rid: str, view: JobView) -> tuple[Any, ...]:
        """A job's status, video, details and result (its last answer when final)."""
        return status_html(view), view.video, view.details, self.result(rid, view.video)

    def recent(
        self, request: gr.Request, job_id: str | None, rids: list[str] | None
    ) -> tuple[Any, list[str]]:
        """This page session's results strip (newest first, RECENT of them): each job that
        ended with a video, shown by its thumbnail (the video itself when it has none), captioned
        with its id and state. A tile of the video would load and decode it again in the page,
        and every tile again as a new job shifts them along."""
        rids = strip_ids(rids, job_id)
        caller = caller_of(self.studio, request)
        items = []
        for rid in rids:
            view = self.studio.view(rid, caller)
            if view is not None and view.video:
                tile = thumbnail(Path(view.video)) or view.video
                items.append((str(tile), f"{rid} · {view.state}"))
        return items, rids

    def result(self, rid: str, video: str | None) -> dict[str, Any]:
        row = self.studio.ledger.get(rid, workflow=False)
        return job_result(row, video) if row is not None else unknown_job(rid)

    def watch(self, rid: str, caller: Caller) -> Iterator[tuple[Any, ...]]:
        """Stream one job's view until it is final (the tracker does the polling).

        Yields when the job changed, paced by app/ui/pace.py (a new state and the end at once,
        other changes at most every UPDATE_EVERY_S, an unchanged job every RESYNC_S). Every
        yield carries all six values: Gradio sends a generator's later yields as diffs of the
        one before, so a value that did not change costs nothing on the wire and next to
        nothing here, while gr.skip() would build a new component per output and yield (4.5 ms
        against 1.6 ms a yield, bench/yield_cost.py). The exception is a video already sent,
        which would be re-checked into Gradio's file cache on every yield: it is skipped until
        it changes.

        `Callbacks.live()`'s page callbacks answer the first view and end: the page follows
        the job on its own stream (app/ui/live_route.py) and asks for the end (`final`), so a
        step costs no Gradio message, in the studio or in the page."""
        tracker = self.studio.tracker
        pace = Pace()
        sent_video: str | None = None
        result: dict[str, Any] = {}
        while True:
            version = tracker.version(rid)
            view = self.studio.view(rid, caller)
            if view is None:
                yield unknown_html(rid), gr.skip(), gr.skip(), rid, rid, unknown_job(rid)
                return
            if view.final:  # complete, so an API client's result (the last yield) is whole
                status, video, details, result = self.final_view(rid, view)
                yield status, video, details, rid, rid, result
                return
            first = pace.key is None
            hold = pace.wait(view, time.monotonic())
            if hold > 0:  # a change meanwhile is read again (and held if it came too soon)
                if tracker.wait(rid, version, hold) == version and tracker.stopped:
                    return  # the studio is shutting down
                continue
            if first or view.state != pace.state:
                result = self.result(rid, view.video)
            pace.sent(view, time.monotonic())
            video: Any = view.video  # None (none yet) clears a previous job's video
            if not first and video is not None and video == sent_video:
                video = gr.skip()
            sent_video = view.video
            yield status_html(view), video, view.details, rid, rid, result
            if self.quiet:  # the page follows the rest on its live stream
                return
