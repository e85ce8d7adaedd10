"""How the page's events show progress: they do not. The status panel (app/ui/status.py) says
what a job does, and Gradio's overlay would cover what it updates.

`QUIET` also names no component as the event's progress target (`show_progress_on=()`; by
default every output is one). Gradio's page keeps a loading status for each target of every
event it has run, and at every message of every later event it visits each of them again: a
search of the page's component tree and a copy of the component's properties. Hidden, they
showed nothing: that walk took ~90 ms of a page's script per job under the profiler, ~20 ms
now. (An event's inputs still join that set as the event completes: Gradio's page adds them
itself, the form's fields among them.) A target that is a layout block is visited with every
component in it: the one event that shows progress (Refresh from the endpoint, app/ui/offers.py)
shows it on its note, not on its accordion (a visit of ~9 ms per message instead of ~5).
"""

from __future__ import annotations

from typing import Any

QUIET: dict[str, Any] = {"show_progress": "hidden", "show_progress_on": ()}
# a page's own event: not in the API, and quiet
PRIVATE: dict[str, Any] = {"api_visibility": "private", **QUIET}
