"""The page's live stream of one job, `GET <root>/wanpod/live/<job id>`, as ASGI middleware next to
Gradio's app (like app/ui/webhook_route.py): server-sent events, each `{"html": ..., "final": ...}`
with the job's status panel as the page shows it (app/ui/status.py), paced by app/ui/pace.py,
until the job is final.

Why not Gradio's own stream: every message of a Gradio event makes the page's client walk every
component that was ever an input or output of any event (~100 here) and copy its props, ~25 ms of
a page's script per update, and costs the studio a worker thread hand-off per output. The page's
events (`Callbacks.live()`) answer a job's first view; the status panel's script (`LIVE_JS`)
follows the job here and, at its end, clicks the page's end-of-job button (the `page_final`
event: the final view, the video, the strip and, with the gallery on screen, the gallery; else
`page_final_only`). The API's events still stream every update.

Who may follow a job: the signed-in user (Gradio's cookie, read as app/ui/guards.py reads it)
when the job is one they may see, by the same rule as every job lookup (`Studio.view`); with a
login configured and no one signed in, 401; a job they may not see is answered as unknown (404),
in the same words as for an id that does not exist. The stream waits on the event loop (the
tracker wakes it, `Tracker.listen`) and holds no thread; each read of the job runs in a worker
thread of the route's own (the ledger may be a network database)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from starlette.responses import StreamingResponse

from app.studio.jobs import JobView
from app.studio.owners import Caller
from app.studio.summary import unknown_reason
from app.ui.guards import ROOT_JS, PageRoute, Receive, Scope, Send, answer
from app.ui.history import GALLERY_ID, REFRESH_ID
from app.ui.pace import Pace
from app.ui.status import status_html, unknown_html

PATH = "/wanpod/live/"
# the page's end-of-job buttons (app/ui/page.py): with the History gallery, and without it
END_TRIGGER = "wp-end-trigger"
END_ONLY = "wp-end-only"
CANCEL_ID = "wp-cancel"  # the page's Cancel: usable only while the panel shows a live job

# The status panel's script (its js_on_load, after app/ui/status.py's CLOCK_JS) follows a live
# job on this stream between the page's own answers (Callbacks.live()): each message updates the
# panel's attributes, bar and line in place (the element Gradio rendered stays, so its next
# answer replaces it as usual).
# A job id is picked up when the panel shows a live job (data-final="0"), checked as Gradio
# changes the panel and on the clock's tick. When the stream ends the job, the script clicks the
# page's end-of-job button, whose event answers the final view, the video and the session's
# strip, and the History gallery when that is on screen (END_TRIGGER; else END_ONLY, and the
# gallery is refreshed once it comes into view: History's Refresh, REFRESH_ID); so does a stream
# the studio refused (not retried: the end event answers the job as it is), and a panel that
# asks for it (`data-ask-end`: a job the endpoint did not take). A stream cut off is reconnected
# by the browser (EventSource).
# The same checks keep the page's Cancel usable only while the panel shows a live job: the job
# id enables the job's buttons (app/ui/page.py), and a job that has ended (its panel final) has
# nothing left to cancel.
LIVE_JS = (
    (
        ROOT_JS
        + r"""
let live = null;
let following = null;
let endAsked = null;  // the job whose end this page asked for: not followed again
// a stream refused (a proxy's 502 while the studio restarts, ...): the job's view asked for,
// then the stream opened again while the panel still shows the job live, at growing intervals
let retryAt = 0;
let backoff = 1000;
const stop = () => { if (live) { live.close(); live = null; } };
const click = (id) => {
  const b = document.getElementById(id);
  const button = b && (b.tagName === "BUTTON" ? b : b.querySelector("button"));
  if (button) button.click();
};
// Whether History's gallery is on screen (as the browser reports it; on screen until it says
// otherwise): a job's end refreshes the gallery only then, else once it comes into view.
let historyShown = true;
let historyStale = false;
let watched = null;
const watchHistory = () => {
  const h = document.getElementById("__GALLERY__");
  if (!h || h === watched || typeof IntersectionObserver !== "function") return;
  watched = h;
  new IntersectionObserver((entries) => {
    historyShown = entries[entries.length - 1].isIntersecting;
    if (historyShown && historyStale) { historyStale = false; click("__REFRESH__"); }
  }).observe(h);
};
const ended = () => {  // the page's end of the job (app/ui/page.py): final view, strip, gallery
  watchHistory();
  if (historyShown) { historyStale = false; click("__END__"); }
  else { historyStale = true; click("__END_ONLY__"); }
};
const follow = () => {
  watchHistory();
  const s = element.querySelector("#wp-status");
  if (s && s.dataset.askEnd === "1") { s.dataset.askEnd = "asked"; ended(); }
  const rid = s ? s.dataset.rid : "";
  const cancel = document.getElementById("__CANCEL__");
  const running = !!rid && s.dataset.final === "0";
  if (cancel && cancel.disabled === running) cancel.disabled = !running;  // else nothing to cancel
  if (!rid || s.dataset.final !== "0") { if (!rid || rid === following) stop(); return; }
  // the same job again: followed already, or its end asked for (a panel put back after
  // "Submitting…" is followed anew: its stream was stopped while the panel had no job)
  if (rid === following && (live || endAsked === rid || Date.now() < retryAt)) return;
  stop();
  following = rid;
  const source = new EventSource(`${studioRoot()}__PATH__${encodeURIComponent(rid)}`);
  live = source;
  source.onmessage = (e) => {
    backoff = 1000;
    const m = JSON.parse(e.data);
    const cur = element.querySelector("#wp-status");
    if (!cur || cur.dataset.rid !== rid) { if (live === source) stop(); return; }
    const t = document.createElement("template");
    t.innerHTML = m.html;
    const n = t.content.firstElementChild;
    if (n) {
      for (const a of [...cur.attributes]) if (!n.hasAttribute(a.name)) cur.removeAttribute(a.name);
      for (const a of [...n.attributes]) cur.setAttribute(a.name, a.value);
      const bar = cur.querySelector("progress");
      const line = cur.querySelector(".wp-line");
      const nbar = n.querySelector("progress");
      const nline = n.querySelector(".wp-line");
      if (bar && line && nbar && nline) {  // the same elements, updated: no new layout boxes
        if (bar.getAttribute("value") !== nbar.getAttribute("value")) bar.value = nbar.value;
        if (line.innerHTML !== nline.innerHTML) line.innerHTML = nline.innerHTML;
      } else {
        cur.innerHTML = n.innerHTML;
      }
    }
    if (m.final && live === source) { stop(); endAsked = rid; ended(); }
  };
  source.onerror = () => {  // refused: the page's end event shows the job as it is now, and a
    // job still live then is followed again (its panel's data-final stays "0")
    if (source.readyState === 2 && live === source) {
      live = null;
      retryAt = Date.now() + backoff;
      backoff = Math.min(backoff * 2, 30000);
      ended();
    }
  };
};
if (typeof watch === "function") watch("value", () => setTimeout(follow, 0));
setInterval(follow, 1000);
follow();
"""
    )
    .replace("__PATH__", PATH)
    .replace("__CANCEL__", CANCEL_ID)
    .replace("__END__", END_TRIGGER)
    .replace("__END_ONLY__", END_ONLY)
    .replace("__GALLERY__", GALLERY_ID)
    .replace("__REFRESH__", REFRESH_ID)
)


def message(view: JobView | None, rid: str) -> str:
    """One server-sent event: the panel for `view` (None: the job is not, or no longer, one the
    caller may see)."""
    if view is None:
        body = {"html": unknown_html(rid), "final": True}
    else:
        body = {"html": status_html(view), "final": view.final}
    return f"data: {json.dumps(body)}\n\n"


# Threads that read a followed job's view (the ledger may be a network database): their own small
# pool, handed work by asyncio directly. Through Starlette's run_in_threadpool (anyio: a backend
# lookup, a capacity limiter, a thread hand-off per call) those reads were a tenth of the
# studio's GIL time at 64 users.
VIEW_THREADS = 8


class LiveRoute(PageRoute):
    PATH = PATH

    def __init__(self, app: Any, studio: Any) -> None:
        super().__init__(app, studio)
        self._views = ThreadPoolExecutor(VIEW_THREADS, thread_name_prefix="wanpod-live")

    async def view(self, rid: str, caller: Caller) -> JobView | None:
        """The job's view as the page may see it, read in one of the route's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._views, self.studio.view, rid, caller)

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, rid: str, user: str | None
    ) -> None:
        caller = self.studio.caller(user)
        view = await self.view(rid, caller)
        if view is None:
            await answer(send, 404, f"Unknown job: {unknown_reason(rid)}", [])
            return
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering
        events = self.events(rid, caller, view)
        await StreamingResponse(events, media_type="text/event-stream", headers=headers)(
            scope, receive, send
        )

    async def events(self, rid: str, caller: Caller, view: JobView | None) -> AsyncIterator[str]:
        """The job's panels until it is final (or unknown, or the studio stops)."""
        tracker = self.studio.tracker
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        stop = tracker.listen(rid, lambda: loop.call_soon_threadsafe(changed.set))
        pace = Pace()
        try:
            while True:
                if view is None:
                    yield message(None, rid)
                    return
                hold = pace.wait(view, time.monotonic())
                if hold <= 0:
                    pace.sent(view, time.monotonic())
                    yield message(view, rid)
                    if view.final:
                        return
                    hold = pace.wait(view, time.monotonic())
                with suppress(TimeoutError):  # a change, or the pace's time is up: read again
                    await asyncio.wait_for(changed.wait(), hold)
                if tracker.stopped:
                    return
                changed.clear()  # before the read: a change during it wakes the next wait
                view = await self.view(rid, caller)
        finally:
            stop()
