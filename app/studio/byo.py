"""Bring-your-own API workflow for the studio: an uploaded API-format JSON filled by
`workflows.byo.fill_byo` with what the form has (prompt, negative prompt, seed) where the
workflow has a place for it. Everything else stays as exported from ComfyUI; the worker (and
ComfyUI's own validation) judge the rest, and their errors come back on the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workflows.byo import detect, fill_byo, parse_workflow
from workflows.errors import ParamError

MAX_WORKFLOW_BYTES = 2 * 1024 * 1024


def byo_fill(path: str | None, params: Mapping[str, object]) -> Any:
    """FilledWorkflow for the uploaded file at `path` (ParamError naming "workflow" if unusable)."""
    if not path:
        raise ParamError("workflow", None, "an API-format workflow .json exported from ComfyUI")
    file = Path(path)
    if file.stat().st_size > MAX_WORKFLOW_BYTES:
        raise ParamError("workflow", file.name, "a JSON file up to 2 MB")
    try:
        workflow = parse_workflow(file.read_bytes())
    except ValueError as exc:  # WorkflowFormatError: says how to export the API format
        raise ParamError("workflow", file.name, str(exc)) from None
    usable = set(detect(workflow).params)
    wanted = {k: v for k, v in params.items() if k in usable and k != "mode"}
    return fill_byo(workflow, wanted)
