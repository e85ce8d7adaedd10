"""How the studio's process serves: the HTTP server's parser and event loop, and Python's garbage
collector, both set for the studio's load (the figures: bench/studio_concurrency.py --mode protocol
--profile, which prints the studio's CPU by thread).

The server. Gradio runs uvicorn with its "auto" choices: the C HTTP parser (httptools) and
libuv's event loop (uvloop) when they are installed, else pure-Python h11 and asyncio's loop.
Every request, queue message and live-stream update of the studio runs on that one loop thread,
~45 % of its CPU per job at 64 users with the pure-Python pair; both are in
requirements/app.txt, and `describe(server)` says at start which pair serves (a warning where
the slower one does: an install without them).

The collector. A built studio holds a few hundred thousand long-lived objects (Gradio, its
components, the page's config); with Python's default thresholds every job's allocations
(each request, event and poll) trigger young collections that promote survivors and, in time,
full collections over all of them. `settle()` runs once the studio is up: `gc.freeze()` moves
everything alive then out of the collector's view for good (it is never garbage: the app lives
as long as the process), and the young generation is collected every GEN0 allocations instead of
700, so a request's short-lived objects are mostly freed by reference counting before any
collection looks at them. At 64 users the collector's CPU went from 0.16 s to 0.02 s for the
whole run (gc.callbacks, thread CPU). Cycles are still collected, only less often.

Gradio's file cache. Every file sent to the studio (an uploaded start or end image, a workflow
file) lands in Gradio's cache (GRADIO_TEMP_DIR, by default /tmp/gradio), and Gradio deletes those
copies only when told to: without it every upload stayed there for good. The studio keeps what a
job needs itself (its inputs folder), so `cache_cleanup(age_s)`, the page's `delete_cache`, has
copies older than `age_s` (WANPOD_GRADIO_CACHE_S, a day by default) deleted, looked for at most
hourly, and all of them when the studio stops. An image picked on a form and left unsent for
longer must be picked again.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

log = logging.getLogger("wanpod.app")

FAST = ("httptools", "uvloop")  # uvicorn[standard]'s choices, in requirements/app.txt
GEN0 = 10_000  # allocations between young collections (Python's default: 700)
GEN1 = 20  # young collections between middle ones (default 10)
GEN2 = 20  # middle collections between full ones (default 10; Python also waits for growth)


def settle() -> None:
    """Once the studio is built and serving: its objects so far out of the collector's view, and
    collections less often (see the module's docstring)."""
    gc.freeze()
    gc.set_threshold(GEN0, GEN1, GEN2)


def describe(server: Any) -> tuple[str, str]:
    """(HTTP parser, event loop) of a started uvicorn `server` (Gradio's `blocks.server`), as
    their modules name them: `("httptools", "uvloop")` or `("h11", "asyncio")`."""
    protocol = server.config.http_protocol_class.__module__  # uvicorn.protocols.http.<x>_impl
    parser = protocol.rsplit(".", 1)[-1].removesuffix("_impl")
    loop = server.servers[0].get_loop() if getattr(server, "servers", None) else None
    return parser, type(loop).__module__.split(".")[0] if loop is not None else "?"


def report(server: Any) -> tuple[str, str]:
    """Log which HTTP parser and event loop serve the studio (a warning for the slow pair)."""
    parser, loop = describe(server)
    if (parser, loop) == FAST:
        log.info("serving with HTTP parser %s, event loop %s", parser, loop)
    else:
        log.warning(
            "serving with HTTP parser %s, event loop %s: install %s (requirements/app.txt) "
            "for about half the CPU per request",
            parser,
            loop,
            " and ".join(FAST),
        )
    return parser, loop


CACHE_SWEEP_MAX_S = 3600  # the longest wait between two looks at Gradio's cache


def cache_cleanup(age_s: int) -> tuple[int, int]:
    """gr.Blocks' `delete_cache` (how often to look, how old a copy may get), both in seconds."""
    return min(age_s, CACHE_SWEEP_MAX_S), age_s
