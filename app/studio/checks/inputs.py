"""The image inputs a workflow will read, checked before /run: every LoadImage must read a file
this job uploads, inside ComfyUI's input folder. A bring-your-own workflow can carry extra
LoadImage nodes (`../../secret.png`, an absolute path, `x.png [output]`, a name fed through a
PrimitiveString link, or a file some other job left in the input folder): `check_inputs` refuses
them with the node, input and value named. The rule itself is workflows.schema.check's
(`uploads=`); links are followed as app/studio/graph.py does for the quote.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from app.errors import InputError
from app.studio import graph
from workflows.schema import UPLOAD_NODES
from workflows.schema import check as schema_check


def input_problems(workflow: Mapping[str, Any], uploads: Iterable[str]) -> list[str]:
    """One line per image input that is not a file this job uploads (empty: all fine)."""
    lines: list[str] = []
    resolved: dict[str, Any] = {}
    for node_id, node in workflow.items():
        cls = node.get("class_type") if isinstance(node, Mapping) else None
        name = UPLOAD_NODES.get(cls) if isinstance(cls, str) else None
        if name is None:
            continue
        try:
            value = graph.resolve(workflow, str(node_id), name)
        except graph.Unresolved as exc:
            lines.append(f"node {node_id} ({cls}): {exc.input}: {exc.reason}")  # type: ignore[attr-defined]
            continue
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            lines.append(f"node {node_id} ({cls}): {name}: {value!r} is not a file name")
            continue
        node = copy.copy(dict(node))
        node["inputs"] = {**(node.get("inputs") or {}), name: value}
        resolved[str(node_id)] = node
    if resolved:
        for p in schema_check(resolved, {}, uploads=list(uploads)):
            ours = p.class_type in UPLOAD_NODES and p.input == UPLOAD_NODES[p.class_type]
            if ours and p.kind in ("invalid", "missing_input"):
                lines.append(str(p))
    return lines


def check_inputs(workflow: Mapping[str, Any], uploads: Iterable[str]) -> None:
    """Raise InputError (field "workflow") listing every image input the job must not read."""
    lines = input_problems(workflow, uploads)
    if lines:
        raise InputError(
            "workflow",
            "pre-flight: image inputs must be files this job uploads, inside ComfyUI's input "
            "folder:\n" + "\n".join(f"- {line}" for line in lines),
        )
