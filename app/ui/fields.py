"""Form components whose value checks name the field, and whose API parameters are described.

Gradio's own checks (an upload that is not an image, a number that is not one) raise messages
that do not say which input was wrong. These are Gradio template components (`is_template =
True`: the browser renders the base component) whose `preprocess` prefixes the message with the
field's label. Ranges and choices are NOT checked here: a value out of range or not offered
reaches the service, which refuses it naming the field, the value and what is allowed, for the
pipeline and mode of the job (the quote line says it, and Generate is refused while it does);
Gradio's own check would fail before the quote is computed, leaving a stale quote on screen.
A number field also refuses NaN and infinity (JSON's NaN / Infinity literals reach Gradio from a
raw API client; a NaN would pass any range check, since no comparison with it is true).

A value of the wrong type (an API client's text for a checkbox, an object for a prompt or a
choice, a list for a number) is never converted into another value (bool("false") is True, and
str({...}) a prompt): a field of the studio's form (`typed_by_form`, set by app/ui/form.py's
`Form.add`) passes it on as sent, and the form refuses it naming the field as the service does
(an InputError: the quote line says it); any other field refuses it here, naming its label, the
value as sent and what is allowed. A checkbox takes true or false, a text or choice field text.

`described(component, text)` gives a component the description its API parameter carries in
`/gradio_api/info` (and gradio_client's `view_api`): Gradio reads a parameter's description from
the component's `api_info_as_input()["additional_description"]`, and has no argument for it.
(Gradio writes a stub file, fields.pyi, for component classes the first time they are defined;
.gitignore keeps it out of the repository.)
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import gradio as gr

from workflows.errors import as_sent

C = TypeVar("C")
T = TypeVar("T", bound=type)


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


def _of_type(component: Any, payload: Any, kind: type, allowed: str) -> Any:
    """`payload` when it is None or a `kind`; otherwise a form's field passes it on as sent
    (`Form.values` refuses it), any other field refuses it here."""
    if payload is None or isinstance(payload, kind) or component.typed_by_form:
        return payload
    raise gr.Error(
        f"{_field(component)}: {as_sent(payload)} is not allowed; allowed: {allowed}",
        print_exception=False,
    )


def _numeric(component: Any, payload: Any) -> Any:
    """Number and Slider: the value as a number of the component's precision, its range left to
    the service (a number's text is read as Gradio's own Number reads it); NaN and infinity
    refused; a value that is no number (a bool, a list, other text) is a form's field's to
    refuse (passed on as sent), else refused here."""
    payload = _finite(component, payload)
    if payload is None:
        return None
    if component.typed_by_form:
        try:
            value = _number(component, payload)
        except (TypeError, ValueError, OverflowError):
            return payload
        return _finite(component, value)
    return _finite(component, _checked(component, _number, payload, "not a number"))


def _number(component: Any, payload: Any) -> Any:
    """The value as a number of the component's precision (a bool is no number)."""
    if isinstance(payload, bool):
        raise TypeError("a bool is not a number")
    if not isinstance(payload, int | float):
        payload = float(payload)
    return gr.Number.round_to_precision(payload, component.precision)


def _finite(component: Any, value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise gr.Error(
            f"{_field(component)}: {value!r} is not allowed; allowed: a finite number",
            print_exception=False,
        )
    return value


def options(choices: Any) -> str:
    """A choice field's choices (Gradio's (label, value) pairs) as a refusal lists them: their
    values, the first 12 and how many in all (as the catalog's refusals list them)."""
    values = [str(c[1] if isinstance(c, tuple | list) else c) for c in choices or ()]
    shown = ", ".join(values[:12])
    return shown + (f", ... ({len(values)} in all)" if len(values) > 12 else "")


def _options(component: Any) -> str:
    if getattr(component, "allow_custom_value", False):
        return "text"
    return options(component.choices) if component.choices else "text"


def described(component: C, text: str) -> C:
    """`component` with `text` as its API parameter's description (a component of this module)."""
    if type(component) not in _DESCRIBED:
        raise TypeError(f"{type(component).__name__} is not one of app.ui.fields' components")
    component.api_text = text  # type: ignore[attr-defined]
    return component


_DESCRIBED: set[type] = set()


def _describable(cls: T) -> T:
    """Adds `api_text` (set by `described`) to the class's API info as the description. (Not a
    mixin: Gradio renders a template component as its `__base__`, which must be Gradio's.)"""
    base: Any = cls.__base__

    def api_info_as_input(self: Any) -> dict[str, Any]:
        info = dict(base.api_info_as_input(self))
        if self.api_text:
            info["additional_description"] = self.api_text
        return info

    def example_inputs(self: Any) -> Any:  # the API page's example for a required parameter
        return self.api_example if self.api_example is not None else base.example_inputs(self)

    cls.api_text = ""  # type: ignore[attr-defined]
    cls.api_example = None  # type: ignore[attr-defined]
    cls.typed_by_form = False  # type: ignore[attr-defined]
    cls.api_info_as_input = api_info_as_input  # type: ignore[attr-defined]
    if "example_inputs" not in cls.__dict__:
        cls.example_inputs = example_inputs  # type: ignore[attr-defined]
    _DESCRIBED.add(cls)
    return cls


@_describable
class Slider(gr.Slider):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _numeric(self, payload)


@_describable
class Number(gr.Number):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _numeric(self, payload)


@_describable
class Dropdown(gr.Dropdown):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        # text; the service checks the choice against the job's pipeline and mode
        return _of_type(self, payload, str, _options(self))


@_describable
class Radio(gr.Radio):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        # text; the service checks the choice against the job's pipeline
        return _of_type(self, payload, str, _options(self))


@_describable
class Image(gr.Image):
    is_template = True

    def example_inputs(self) -> Any:  # optional on the form: no bus.png in the API's examples
        return None

    def preprocess(self, payload: Any) -> Any:
        return _checked(
            self, gr.Image.preprocess, payload, "not a readable image; allowed: PNG, JPEG or WebP"
        )


@_describable
class Textbox(gr.Textbox):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _of_type(self, payload, str, "text")  # Gradio's own makes str() of anything


@_describable
class Checkbox(gr.Checkbox):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _of_type(self, payload, bool, "true or false")  # Gradio's own passes anything


@_describable
class File(gr.File):
    is_template = True

    def example_inputs(self) -> Any:  # optional on the form: no sample PDF in the API's examples
        return None
