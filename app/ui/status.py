"""The job's status panel: our own status line + <progress> bar, and the page's clock.

It replaces Gradio's progress overlay (events run with show_progress="hidden"), so the status
stays readable. `status_html(view)` renders one `JobView`; a live job's status is sent when it
changes (app/ui/callbacks.py, `Callbacks.watch`), and in between the page counts the elapsed
time itself (CLOCK_JS, the panel's `js_on_load`).
"""

from __future__ import annotations

import html
import json

from app.studio.jobs import JobView
from app.studio.progress import clock
from app.studio.summary import unknown_reason

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


def ended_html(state: str, line: str, ask_end: bool = False) -> str:
    """The panel for a job that has no view (yet): submitting, not taken, refused, unknown.
    `ask_end`: a job that ended before the page could follow it (the endpoint did not take
    it): the page's script asks for the end of it once (app/ui/live_route.py's `LIVE_JS`)."""
    asks = ' data-ask-end="1"' if ask_end else ""
    return (
        f'<div id="wp-status" data-state="{html.escape(state)}" data-fraction="0"{asks}>'
        f'<progress value="0" max="1"></progress><div class="wp-line">{html.escape(line)}</div>'
        "</div>"
    )


# What Generate shows until the studio answers: the page puts it up at the click (SUBMIT_JS),
# an API client gets it from the studio when the submit is slow (app/ui/callbacks.py).
SUBMITTING_HTML = ended_html("SUBMITTING", "Submitting…")

# The status panel's script (after CLOCK_JS): a click on Generate shows SUBMITTING_HTML at once,
# in place (the element Gradio rendered stays, as the live stream's updates do, so the event's
# answer replaces it as usual). A refused Generate answers its own panel ("Not submitted: …",
# Callbacks.refused); a request that fails answers none, nor does an answer equal to the panel
# shown: when the event ends (GENERATE_DONE_JS, after it succeeds or fails) with "Submitting…"
# still up, what the panel showed before comes back. A refusal over a live job the page was
# following puts that job's panel back with the reason under its line (`.wp-refused`): the
# page follows it on (LIVE_JS updates the bar and the line in place, and its end replaces it).
# A refusal of a field's value brings that field into view when it is out of sight.
SUBMIT_JS = (
    """
let before = null;
const put = (s, attrs, inner) => {
  for (const a of [...s.attributes]) s.removeAttribute(a.name);
  for (const [k, v] of attrs) s.setAttribute(k, v);
  s.innerHTML = inner;
};
document.addEventListener("click", (ev) => {
  const s = element.querySelector("#wp-status");
  if (!s || !ev.target.closest || !ev.target.closest("#wp-generate")) return;
  const t = document.createElement("template");
  t.innerHTML = __SUBMITTING__;
  const n = t.content.firstElementChild;
  if (before === null) before = [[...s.attributes].map((a) => [a.name, a.value]), s.innerHTML];
  put(s, [...n.attributes].map((a) => [a.name, a.value]), n.innerHTML);
}, true);
document.addEventListener("wp-generate-done", () => setTimeout(() => {
  const s = element.querySelector("#wp-status");
  const refused = s && s.dataset.state === "REFUSED";
  const wasLive = before !== null && before[0].some(([k, v]) => k === "data-final" && v === "0");
  if (before !== null && s && s.dataset.state === "SUBMITTING") put(s, ...before);
  else if (wasLive && refused) {
    const why = document.createElement("div");
    why.className = "wp-refused";
    why.textContent = s.querySelector(".wp-line").textContent;
    put(s, ...before);
    s.querySelectorAll(".wp-refused").forEach((e) => e.remove());
    s.appendChild(why);
  }
  before = null;
  // refused for a field's value, with that field out of sight (a phone: the panel is under the
  // form): the field comes into view, its reason under it
  const note = refused && document.querySelector(".wp-field-error");
  if (note) {
    const r = note.getBoundingClientRect();
    if (r.bottom < 0 || r.top > window.innerHeight) {
      note.parentElement.scrollIntoView({behavior: "instant", block: "center"});
    }
  }
}, 0));
"""
).replace("__SUBMITTING__", json.dumps(SUBMITTING_HTML))


def job_buttons_js(count: int) -> str:
    """A listener's script, run in the page on a change of a job (or chain) id: the `count`
    buttons that act on the job usable while an id is shown."""
    return (
        f"(rid) => Array({count}).fill({{__type__: 'update', interactive: !!(rid || '').trim()}})"
    )


GENERATE_DONE_JS = '() => { document.dispatchEvent(new Event("wp-generate-done")); }'


def unknown_html(rid: str) -> str:
    """The panel for an id that is not a job, or not one the caller may see (same words)."""
    return ended_html("UNKNOWN", f"Unknown job: {unknown_reason(rid)}")


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
        f'data-final="{int(view.final)}" data-fraction="{pv.fraction:.4f}">'
        f'<progress value="{pv.fraction:.4f}" max="1"></progress><div class="wp-line">{line}</div>'
        "</div>"
    )
