"""The page's per-job events with their components' processing done in the callback's own call.

Gradio runs each input component's `preprocess` and each output component's `postprocess` in a
worker thread of its own, one hand-off per component: the page's Generate (24 form fields, 7
outputs, twice under load) paid about 30 hand-offs of ~0.18 ms each (on a 2-core VM), all
through the event loop, more CPU than the submit itself. `here(fn, inputs, outputs)` is `fn`
for an event registered with `preprocess=False, postprocess=False` (`NO_PROCESSING`): it runs
the same component methods, in order, in the one thread Gradio already gives the callback.
`click_here(trigger, fn, inputs, outputs, ...)` registers such an event: the components are
named once, for both.

What Gradio still does with processing off, and so is not repeated here: uploaded files are
checked against its upload folder and validated into the component's data model (`inputs` then
arrive as that model's plain dict), a State input is the session's value, an answered file is
checked against the allowed paths and served, and a `gr.update()` / `gr.skip()` answer is
applied as is, but for a value inside an update, which is processed as Gradio would.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import gradio as gr

NO_PROCESSING = {"preprocess": False, "postprocess": False}


def _in(component: Any, payload: Any) -> Any:
    """One input as Gradio would pass it to the callback."""
    if component.stateful:
        return payload  # the session's value, already
    model = getattr(component, "data_model", None)
    if model is not None and payload is not None:
        payload = model.model_validate(payload, context={"validate_meta": True})
    return component.preprocess(payload)


def _out(component: Any, value: Any) -> Any:
    """One answer as Gradio would send it (an update's value processed, the rest as is)."""
    if component.stateful:
        return value
    if isinstance(value, dict) and value.get("__type__") == "update":
        if "value" in value:
            return {**value, "value": _out(component, value["value"])}
        return value
    value = component.postprocess(value)
    return value.model_dump() if hasattr(value, "model_dump") else value


def here(
    fn: Callable[..., Any],
    inputs: Mapping[str, Any] | Sequence[Any],
    outputs: Sequence[Any],
) -> Callable[..., Any]:
    """`fn` (a function or a generator; Gradio's `inputs_kwargs` when `inputs` is a mapping, else
    positional `inputs`) taking raw inputs and answering processed outputs. Its signature stays
    `fn`'s, so Gradio still injects the request."""
    by_name = dict(inputs) if isinstance(inputs, Mapping) else {}
    in_order = [] if isinstance(inputs, Mapping) else list(inputs)
    outs = list(outputs)
    signature = inspect.signature(fn)

    def take(
        args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if in_order:  # positional: the inputs in order, the request where fn takes it
            values = iter(in_order)
            return tuple(
                a if isinstance(a, gr.Request) else _in(next(values), a) for a in args
            ), kwargs
        # by name (Gradio moves a named input that fn takes positionally into place)
        bound = signature.bind_partial(*args, **kwargs)
        for name, value in bound.arguments.items():
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                bound.arguments[name] = {k: _in(by_name[k], v) for k, v in value.items()}
            elif name in by_name:
                bound.arguments[name] = _in(by_name[name], value)
        return bound.args, bound.kwargs

    def give(answer: Any) -> Any:
        if len(outs) == 1:
            return _out(outs[0], answer)
        return tuple(_out(c, v) for c, v in zip(outs, answer, strict=True))

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def streamed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            args_in, kwargs_in = take(args, kwargs)
            for answer in fn(*args_in, **kwargs_in):
                yield give(answer)

        wrapper: Callable[..., Any] = streamed
    else:

        @functools.wraps(fn)
        def called(*args: Any, **kwargs: Any) -> Any:
            args_in, kwargs_in = take(args, kwargs)
            return give(fn(*args_in, **kwargs_in))

        wrapper = called
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    return wrapper


def click_here(
    trigger: Any,
    fn: Callable[..., Any],
    inputs: Mapping[str, Any] | Sequence[Any],
    outputs: Sequence[Any],
    **kwargs: Any,
) -> Any:
    """`trigger.click(fn, inputs, outputs, **kwargs)`, `fn`'s components processed in its call
    (`inputs` by name when a mapping: Gradio's `inputs_kwargs`)."""
    given = {"inputs_kwargs" if isinstance(inputs, Mapping) else "inputs": inputs}
    return trigger.click(
        here(fn, inputs, outputs), outputs=outputs, **given, **kwargs, **NO_PROCESSING
    )
