"""The value an API-format workflow input will actually have when ComfyUI runs it. Pure.

An input is a literal, or a link `[node_id, output_index]` to another node. For the quote and the
limits, a link is followed through the primitive nodes that only pass a constant on
(ComfyUI's `PrimitiveInt`, `PrimitiveFloat`, ... whose `value` input is the output): the value
the sampler or the latent node will get. A link to anything else (a math node, a custom node)
cannot be known before the job runs: `resolve` raises `Unresolved` naming the node, the input
and why, and the studio refuses the job rather than quote and check it from a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from app.errors import UnknownValue

# class_type -> the input its only output passes on unchanged
PASS_THROUGH = {
    "PrimitiveInt": "value",
    "PrimitiveFloat": "value",
    "PrimitiveBoolean": "value",
    "PrimitiveString": "value",
    "PrimitiveStringMultiline": "value",
    "PrimitiveNode": "value",
}
MAX_HOPS = 32  # a chain of primitives longer than this is a loop or an attack


Unresolved = UnknownValue  # an InputError on the field "workflow"


def unresolved(node: str, name: str, reason: str) -> UnknownValue:
    exc = UnknownValue(
        "workflow", f"cannot quote or check this workflow: node {node} input {name!r}: {reason}"
    )
    exc.node, exc.input, exc.reason = node, name, reason  # type: ignore[attr-defined]
    return exc


def is_link(value: object) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def resolve(workflow: Mapping[str, Any], node: str, name: str) -> Any:
    """The value input `name` of node `node` will have (links followed through primitives)."""
    value = ((workflow.get(node) or {}).get("inputs") or {}).get(name)
    where = (node, name)
    seen: list[str] = []
    while is_link(value):
        source = str(value[0])
        target = workflow.get(source)
        if not isinstance(target, Mapping):
            raise unresolved(*where, f"links to node {source}, which is not in the workflow")
        cls = str(target.get("class_type", ""))
        passed = PASS_THROUGH.get(cls)
        if passed is None or value[1] != 0:
            raise unresolved(
                *where,
                f"takes its value from node {source} ({cls}), which is computed when the job runs;"
                f" write the value in the workflow or feed it from a {'/'.join(PASS_THROUGH)} node",
            )
        if source in seen or len(seen) >= MAX_HOPS:
            raise unresolved(*where, f"its links loop or chain more than {MAX_HOPS} nodes")
        seen.append(source)
        value = (target.get("inputs") or {}).get(passed)
    return value


def number(workflow: Mapping[str, Any], node: str, name: str) -> float | None:
    """`resolve` for a numeric input: None when absent, Unresolved when it is not a finite
    number."""
    v = resolve(workflow, node, name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise unresolved(node, name, f"{v!r} is not a number")
    return v


def upstream(workflow: Mapping[str, Any], node: str) -> set[str]:
    """Every node id `node` takes an input from, directly or through other nodes."""
    seen: set[str] = set()
    todo = [str(node)]
    while todo:
        inputs = (workflow.get(todo.pop()) or {}).get("inputs") or {}
        for value in inputs.values() if isinstance(inputs, Mapping) else ():
            if is_link(value) and str(value[0]) not in seen and str(value[0]) in workflow:
                seen.add(str(value[0]))
                todo.append(str(value[0]))
    return seen
