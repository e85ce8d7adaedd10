"""When a live job's status is sent to a page: one rule for Gradio's streamed events
(app/ui/callbacks.py, `Callbacks.watch`) and the page's own live stream (app/ui/live_route.py).

Pure: `Pace.wait(view, now)` says how long to wait for a change before asking again (0: send
now); `Pace.sent(view, now)` records what was sent. The page's clock counts the seconds in
between (app/ui/status.py, CLOCK_JS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.studio.jobs import JobView

# A live job's status is sent at least this often, changed or not: the page's clock resyncs.
RESYNC_S = 30.0
# ...and at most this often while its state stays the same (a new state and the end are sent at
# once): stages that flash by (decoding, saving, delivering) need not each be drawn, and every
# update costs the studio and the page a little (bench/studio_concurrency.py).
UPDATE_EVERY_S = 1.0


def view_key(view: JobView) -> tuple[Any, ...]:
    """What a page shows of a live job: a change of any part is worth sending."""
    pv = view.progress
    return (view.state, pv.head, round(pv.fraction, 4), pv.left_from, view.video, view.details)


@dataclass
class Pace:
    """What was last sent of one job to one page, and when."""

    key: tuple[Any, ...] | None = None
    state: Any = None
    at: float = 0.0

    def wait(self, view: JobView, now: float) -> float:
        """0: send `view` now (the first, the end, a new state, a change a second after the
        last one, or a resync); otherwise how long to wait for a change before asking again."""
        if self.key is None or view.final:
            return 0.0
        since = now - self.at
        if view_key(view) == self.key:
            return max(RESYNC_S - since, 0.0)
        if view.state == self.state:
            return max(UPDATE_EVERY_S - since, 0.0)
        return 0.0

    def sent(self, view: JobView, now: float) -> None:
        self.key, self.state, self.at = view_key(view), view.state, now
