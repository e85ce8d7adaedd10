"""Form components whose value checks name the field.

Gradio's own checks (a slider value out of range, a dropdown value not among the choices, an
upload that is not an image) raise messages that do not say which input was wrong. These are
Gradio template components (`is_template = True`: the browser renders the base component) whose
`preprocess` prefixes the message with the field's label, e.g. "steps: Value 61 is greater than
maximum value 60.". Note: Gradio writes a stub file (fields.pyi) for component classes the first
time they are defined; it is committed so that importing this module writes nothing.
"""

from __future__ import annotations

from typing import Any

import gradio as gr


def _field(component: Any) -> str:
    return str(component.label or "value").split(" (")[0].lower()


def _checked(component: Any, base_preprocess: Any, payload: Any, unreadable: str) -> Any:
    try:
        return base_preprocess(component, payload)
    except gr.Error as exc:
        raise gr.Error(f"{_field(component)}: {exc.message}", print_exception=False) from None
    except Exception as exc:
        raise gr.Error(
            f"{_field(component)}: {unreadable} ({type(exc).__name__})", print_exception=False
        ) from None


class Slider(gr.Slider):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _checked(self, gr.Slider.preprocess, payload, "not a number")


class Number(gr.Number):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _checked(self, gr.Number.preprocess, payload, "not a number")


class Dropdown(gr.Dropdown):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _checked(self, gr.Dropdown.preprocess, payload, "not a valid choice")


class Radio(gr.Radio):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _checked(self, gr.Radio.preprocess, payload, "not a valid choice")


class Image(gr.Image):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _checked(
            self, gr.Image.preprocess, payload, "not a readable image; allowed: PNG, JPEG or WebP"
        )
