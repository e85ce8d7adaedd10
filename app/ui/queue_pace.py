"""How often Gradio's queue loops look for work: its defaults spin, the studio's do not.

Gradio's queue runs two loops on the server's event loop, whatever the pages do: one picks
queued events up every `sleep_when_free` seconds (1 ms on Linux: 1000 wake-ups a second, about
4 % of a core with no page open, and the event loop shared with every request), the other
looks for `gr.Progress` updates to send every `progress_update_sleep_when_free` (10 ms). The
studio sends no `gr.Progress` (its jobs stream their own status from the tracker), and a new
request waiting 50 ms more to be picked up is nothing next to a job's seconds.

`calm(blocks)` sets both on the Blocks' queue; it raises when Gradio no longer has them (an
upgrade renamed them: the pace must be looked at again, not silently lost). Checked against
the Gradio named in app/ui/gradio_internals.py (a test fails on any other).

Queue positions: with Gradio's default (`status_update_rate="auto"`), each time an event starts,
every event still waiting for the same concurrency slot is sent its new position and ETA, one
message per waiting event per start: a burst of n events queued at once costs ~n²/2 messages
through the event loop (64 users: ~2000, each a model built, encoded and streamed to a page that
hides it: the page's events run with show_progress="hidden"). The studio sends positions every
STATUS_EVERY_S instead (`queue_up`, which app/__main__.py calls);
a new event still gets its own position when it joins.

It also marks matplotlib absent when it is not installed (`sys.modules` holds None for it):
Gradio tries `import matplotlib` twice around every event it runs (its
`MatplotlibBackendMananger`), and a module that is not installed is searched for along the
whole path each time (0.1 ms an event, a yield of a streamed job being one); marked absent,
the import fails at once, as Python documents for a None entry.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

PICKUP_S = 0.05  # the longest a new request waits to be picked up by an idle queue
STATUS_EVERY_S = 5.0  # queue positions for events waiting beyond WANPOD_CONCURRENCY: rare
PROGRESS_CHECK_S = 0.5  # no gr.Progress is sent; kept for Gradio's own (e.g. uploads)
ATTRIBUTES = {"sleep_when_free": PICKUP_S, "progress_update_sleep_when_free": PROGRESS_CHECK_S}


def queue_up(blocks: Any, concurrency: int) -> None:
    """`blocks.queue()` as the studio runs it: `concurrency` events of each kind at once
    (WANPOD_CONCURRENCY), queue positions every STATUS_EVERY_S, its loops `calm`."""
    blocks.queue(default_concurrency_limit=concurrency, status_update_rate=STATUS_EVERY_S)
    calm(blocks)


def calm(blocks: Any) -> None:
    """Slow the idle loops of `blocks`' queue (call after `blocks.queue()`, before launch)."""
    queue = blocks._queue
    for name, value in ATTRIBUTES.items():
        if not isinstance(getattr(queue, name, None), int | float):
            raise RuntimeError(f"Gradio's queue has no {name!r} any more: see app/ui/queue_pace.py")
        setattr(queue, name, value)
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]  # absent: fail at once
