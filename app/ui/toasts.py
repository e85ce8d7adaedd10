"""How long Gradio's toasts stay: an action's refusal or failure stays until the user closes it.

Gradio's toasts go after 10 s by default. A button in History, the batch or the Longer video
section has no panel of its own to say why it did nothing, and a user who looked away would never
learn it. Confirmations (gr.Info) and a field's refusal while a form is being filled (History's
filter, at every keystroke: kept, they would pile up) keep the default. The page's own Generate
says its refusals in the status panel (app/ui/callbacks.py's `said_in_panel`).
"""

from __future__ import annotations

import gradio as gr

KEPT_S: float | None = None  # Gradio's `duration`: None keeps a toast until it is closed


def refusal(message: str) -> gr.Error:
    """An action's refusal or failure, as the error toast that stays until closed."""
    return gr.Error(message, duration=KEPT_S, print_exception=False)


def stopped(message: str) -> None:
    """An action that went part of the way (a batch stopped at job k of n, a refresh that
    failed with the old inventory kept): a warning toast that stays until closed."""
    gr.Warning(message, duration=KEPT_S)
