"""The page's endpoint health, `GET <root>/wanpod/health[?s=&usd=&gpu=]`, as ASGI middleware next to
Gradio's app (like app/ui/live_route.py): JSON `{"panel", "note", "spend"}`, HTML fragments for
the Endpoint health panel (app/studio/checks/health.py), the Generate area's note (what an
unhealthy endpoint means for a job sent now) and, with a RunPod endpoint, the spend line
(app/studio/spend.py; null in demo mode). `s`, `usd`, `gpu`: the cold start of the job on the
page's quote line, which prices the panel's cold-start note (absent: no price).

The page asks every HEALTH_TICK_S (`HEALTH_JS`, the panel's script), and not while its tab is
hidden. Why not a Gradio timer: each Gradio event costs an open page ~0.1 cpu-s of its client's
script (it walks and copies every component that was ever an event's input or output), every
5 s, job or no job; a fetch and three innerHTML costs ~1 ms. The health itself is one /health
call per 2 s for all pages (`Gate.health_panel`), the spend one narrow read of today's rows.
Signed in as for every other route: 401 with a login configured and no one signed in.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool

from app.studio.checks.health import ColdStart, render_html
from app.studio.spend import spend_line
from app.ui.guards import ROOT_JS, PageRoute, Receive, Scope, Send

PATH = "/wanpod/health"
HEALTH_TICK_S = 5.0  # the page's refresh of the panel, the note and the spend line

# The panel's script: paints the three parts at once, every HEALTH_TICK_S and when the quote
# line's job changes, priced by the cold start that job carries (`cold_attrs`, on the
# field-errors element the quote line's event renders). Each part is a gr.HTML whose `.wp-fill`
# child is ours to fill.
HEALTH_JS = (
    (
        ROOT_JS
        + r"""
const every = __TICK_MS__;
const fill = (id, text) => {
  const box = document.querySelector(`#${id} .wp-fill`);
  if (box && text !== null && box.innerHTML !== text) box.innerHTML = text;
};
let asked = null;
const query = () => {
  const c = document.querySelector("#wp-field-errors [data-cold-s]");
  return c ? "?" + new URLSearchParams({s: c.dataset.coldS, usd: c.dataset.coldUsd,
                                        gpu: c.dataset.gpu}) : "";
};
// a new quote prices the cold-start note at once (the field-errors element re-renders with it)
let observed = false;
const observe = () => {
  const errors = document.querySelector("#wp-field-errors");
  if (observed || !errors) return;
  new MutationObserver(() => { if (query() !== asked) paint(); })
    .observe(errors, {subtree: true, childList: true, attributes: true});
  observed = true;
};
const paint = async () => {
  observe();
  if (document.hidden) return;
  const q = query();
  asked = q;
  try {
    const r = await fetch(`${studioRoot()}__PATH__${q}`, {credentials: "same-origin"});
    if (!r.ok) return;
    const m = await r.json();
    fill("wp-health-box", m.panel);
    fill("wp-generate-note", m.note);
    fill("wp-spend", m.spend);
  } catch (e) { /* the next tick asks again */ }
};
setInterval(paint, every);
document.addEventListener("visibilitychange", () => { if (!document.hidden) paint(); });
paint();
"""
    )
    .replace("__TICK_MS__", str(int(HEALTH_TICK_S * 1000)))
    .replace("__PATH__", PATH)
)
FILL = '<div class="wp-fill"></div>'  # each part's initial value (filled by HEALTH_JS)


def cold_attrs(cold: ColdStart | None) -> str:
    """The data-* attributes HEALTH_JS reads the quote line's cold start from ("" for none)."""
    if cold is None:
        return ""
    return (
        f'data-cold-s="{cold.seconds:g}" data-cold-usd="{cold.dollars:.6f}" '
        f'data-gpu="{html.escape(cold.gpu)}"'
    )


def cold_of(query: str) -> ColdStart | None:
    """The cold start a request names (None when any part is missing or not a number)."""
    q = {k: v[0] for k, v in parse_qs(query).items()}
    try:
        cold = ColdStart(float(q["s"]), float(q["usd"]), q["gpu"][:64])
    except (KeyError, ValueError):
        return None
    ok = all(math.isfinite(x) and x >= 0 for x in (cold.seconds, cold.dollars))
    return cold if ok else None


def parts(studio: Any, cold: ColdStart | None, user: str | None = None) -> dict[str, str | None]:
    """The panel, the Generate area's note and the spend line (None in demo mode; with the
    signed-in `user`'s own spend and budget)."""
    ops = studio.ops
    panel = ops.health_panel(cold) if ops is not None else None
    note = ""
    if panel is not None and not panel.ok:
        note = (
            f"⚠️ <b>The endpoint is not healthy</b> ({html.escape(panel.error or '')}): "
            "a job sent now may fail; see Endpoint health."
        )
    elif panel is not None and panel.blocked:
        note = (
            f"⚠️ <b>The endpoint cannot start a job now</b> ({html.escape(panel.blocked)}): "
            "a job sent now waits in its queue; see Endpoint health."
        )
    spend = None
    s = studio.settings
    if not s.demo:
        rows = ops.rows_today() if ops is not None else studio.ledger.spend_since(0)
        limits = ops.limits if ops is not None else None
        spend = spend_line(
            s.endpoint_id, s.gpu_type, studio.prices, rows,
            limits.daily_usd if limits else None,
            user=user, user_daily_usd=limits.user_daily_usd if limits else None,
        )  # fmt: skip
    return {"panel": render_html(panel) if panel is not None else "", "note": note, "spend": spend}


class HealthRoute(PageRoute):
    PATH = PATH

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, rest: str, user: str | None
    ) -> None:
        if rest:  # not this route: Gradio's business
            await self.app(scope, receive, send)
            return
        cold = cold_of(scope.get("query_string", b"").decode("latin-1"))
        body = json.dumps(await run_in_threadpool(parts, self.studio, cold, user)).encode()
        head = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": body})
