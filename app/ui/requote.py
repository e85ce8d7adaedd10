"""The page's quote lines follow its form in order: the last answer on screen is the quote of the
form as it stands.

Gradio's page does not give that for a change listener. When several of a listener's triggers
fire in the same tick (a pipeline's layout sets a dozen fields at once), its
`trigger_mode="always_last"` lets them all run side by side: it looks for a pending run before
the first one is registered. Some of them read the form half updated (the new pipeline, the old
mode). Their answers land in any order, so a quote of values the form no longer holds could stay
on screen: under load, the line for "Bring your own API workflow" said "mode: 'quality' is not
offered" after its own right answer had come.

So the page's quote events are not change listeners. A listener that runs only in the browser
(`REQUOTE_JS`) waits until the form has been still for QUIET_MS, then clicks each quote line's
hidden trigger once. A click while that line's event still runs is held by Gradio
("always_last") and runs once it ends, reading the form as it is then. One line, one event at a
time, the last one reading the settled form. The API's `/quote`, `/batch_quote` and
`/storyboard_quote` keep their own triggers, which the page never clicks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gradio as gr

from app.ui.inline import click_here
from app.ui.quiet import PRIVATE, QUIET

# The quote lines' hidden triggers, clicked by REQUOTE_JS (those not on the page are passed over).
FORM = "wp-requote"
BATCH = "wp-batch-requote"
STORYBOARD = "wp-storyboard-requote"
TRIGGERS = (FORM, BATCH, STORYBOARD)

# How long the form must be still before its quotes are asked for: one layout's change events
# arrive within a few milliseconds of each other, and a quote 60 ms after the last keystroke
# still reads as instant. Each keystroke of a fast typist no longer asks for three quotes.
QUIET_MS = 60

REQUOTE_JS = f"""() => {{
  clearTimeout(window.__wpRequote);
  window.__wpRequote = setTimeout(() => {{
    for (const id of {json.dumps(TRIGGERS)}) {{
      const b = document.getElementById(id);
      const button = b && (b.tagName === "BUTTON" ? b : b.querySelector("button"));
      if (button) button.click();
    }}
  }}, {QUIET_MS});
}}"""


def on(triggers: Sequence[Any]) -> Any:
    """Every quote line asked for again once `triggers` (component events) settle."""
    return gr.on(list(triggers), None, js=REQUOTE_JS, **PRIVATE)


def after(event: Any) -> Any:
    """`event`, then every quote line asked for again (a layout or a fill may change nothing)."""
    return event.then(None, js=REQUOTE_JS, **PRIVATE)


def line(
    trigger_id: str,
    fn: Callable[..., Any],
    inputs: Mapping[str, Any],
    outputs: Sequence[Any],
    *,
    api_name: str,
    page: tuple[Callable[..., Any], Sequence[Any]] | None = None,
) -> None:
    """One quote line's events: the page's on its hidden trigger (`page`: the function and
    outputs it runs instead of `fn`'s, its fields processed in its call, app/ui/inline.py), and
    the API's `api_name` on a trigger of its own that the page never clicks."""
    page_fn, page_out = page or (fn, outputs)
    click_here(
        gr.Button("Quote", visible="hidden", elem_id=trigger_id),
        page_fn,
        dict(inputs),
        list(page_out),
        api_name=f"page_{api_name}",
        trigger_mode="always_last",
        **PRIVATE,
    )
    gr.Button(visible=False, elem_id=f"wp-api-{api_name}").click(
        fn, inputs_kwargs=dict(inputs), outputs=list(outputs), api_name=api_name,
        **QUIET,
    )  # fmt: skip
