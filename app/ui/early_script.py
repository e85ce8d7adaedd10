"""A script the studio's page runs before Gradio's own code: stops Gradio 6's idle frame loop.

Gradio 6's page loader shows a StatusTracker while the app loads and removes it once the app is
ready, while its status is still "pending" (js/spa/src/Index.svelte). The tracker's elapsed-time
timer (js/statustracker/static/index.svelte, `run()`) asks for the next animation frame for as
long as its `_timer` flag is set, and only a later status change clears it: a removed tracker
never sees one. So every open studio tab renders 60 frames a second forever, idle or not (about
0.05 of a core per tab in software-rendered Chromium; on a laptop, battery).

The tracker module keeps its own reference to `window.requestAnimationFrame`, taken when the
module is evaluated, so the fix has to be in place before Gradio's modules run: `EarlyScript`
puts `RAF_FIX_JS` as the first element of the page's <head> (an inline classic script runs
while the HTML is parsed; Gradio's module scripts run after). The fix runs the status trackers'
frame requests (recognised by their module in the caller's stack) at 4 Hz on a timer instead:
their timers show tenths of a second, and our page hides them anyway (show_progress="hidden").
A frame asked for while a slowed callback runs is slowed too: while an event runs, the tracker
starts an animation on Svelte's shared frame loop, whose next frames are asked for by the loop
itself (Svelte's module, not the tracker's), so it ran at the display's rate for as long as the
job did (~0.15 of a core per page following a job). Another animation sharing that loop at the
same moment steps at 4 Hz too. Every other frame request goes to the browser unchanged. Browser
tests (tests/app/test_browser.py) wait for an idle page, and a page following a job, to have no
frame request waiting (a frame loop always has one), so a Gradio upgrade that renames the
module or fixes the leak shows up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

RAF_FIX_JS = """
(() => {
  const native = window.requestAnimationFrame.bind(window);
  const nativeCancel = window.cancelAnimationFrame.bind(window);
  const slow = new Map();
  let next = 0;
  let inSlow = 0;  /* > 0 while a slowed callback runs: what it asks for is slowed too */
  const run = (cb) => { inSlow++; try { cb(performance.now()); } finally { inSlow--; } };
  window.requestAnimationFrame = function (cb) {
    if (!inSlow && !/\\/statustracker-[^/]*\\.js/.test(new Error().stack || "")) return native(cb);
    const id = --next;  /* negative: never one of the browser's own ids */
    slow.set(id, setTimeout(() => { slow.delete(id); run(cb); }, 250));
    return id;
  };
  window.cancelAnimationFrame = function (id) {
    if (slow.has(id)) { clearTimeout(slow.get(id)); slow.delete(id); } else nativeCancel(id);
  };
})();
"""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def inject(page: bytes, script: str = RAF_FIX_JS) -> bytes:
    """The HTML page with `<script>script</script>` as the first thing in its <head>."""
    marker = b"<head>"
    at = page.find(marker)
    if at < 0:
        return page
    at += len(marker)
    return page[:at] + b"<script>" + script.encode() + b"</script>" + page[at:]


class EarlyScript:
    """ASGI middleware: HTML pages answered to GET get `RAF_FIX_JS` first in their <head>.

    Only whole `text/html` answers are touched (Gradio renders its page in one body); files,
    JSON and event streams pass through as they are."""

    def __init__(self, app: ASGIApp, script: str = RAF_FIX_JS) -> None:
        self.app = app
        self.script = script

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def patched_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                html = headers.get(b"content-type", b"").startswith(b"text/html")
                if html and b"content-encoding" not in headers:
                    start = message  # held until the whole body is in
                else:
                    await send(message)
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = inject(b"".join(chunks), self.script)
            headers = [
                (k, str(len(body)).encode() if k == b"content-length" else v)
                for k, v in start.get("headers") or []
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, patched_send)
