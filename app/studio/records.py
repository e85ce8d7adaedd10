"""What a job's ledger row says to a reader: its details for the page (Markdown) and the version
hash of the template it was filled from (kept in its recipe)."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from app.studio.ledger import JobRow
from app.studio.markup import md_text, md_value
from app.studio.offers import stack_words


def template_version(template_id: str, workflow_file: str | None = None) -> str:
    """A short hash of the template the job was filled from (the uploaded file for BYO)."""
    try:
        if workflow_file:
            return hashlib.sha256(Path(workflow_file).read_bytes()).hexdigest()[:12]
        return _catalog_version(template_id)
    except Exception:  # an unknown template still runs; its version is unknown
        return ""


@functools.cache
def _catalog_version(template_id: str) -> str:
    """A catalog template's hash: the catalog is loaded once and read-only (its whole workflow
    serialized at every submit was a tenth of a submit's CPU)."""
    from workflows.catalog import load_catalog

    data = json.dumps(load_catalog()[template_id].workflow, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:12]


def details(row: JobRow, state: bool = False) -> str:
    """Markdown: parameters and seed used, timings, quote vs actual cost; what a user typed is
    shown as text (`md_text`: no image, link or HTML from a prompt). The state is named once
    the job has ended: a live job's state is the status panel's, which the page keeps current
    from its live stream (app/ui/live_route.py) while these details are not sent again;
    `state=True` names it anyway (History's panel, which has no status panel beside it)."""
    p = row.params or {}
    q = row.quote
    ended = f" · **{row.state}**" if row.final or state else ""
    lines = [f"**Job** `{row.id}` · RunPod id `{row.job_id or '-'}`{ended}"]
    hidden = ("prompt", "negative_prompt", "output_prefix")
    shown = {k: v for k, v in p.items() if k not in hidden and not isinstance(v, dict | list)}
    if p.get("prompt"):
        lines.append(f"**Prompt:** {md_text(p['prompt'])}")
    if p.get("negative_prompt"):
        neg = str(p["negative_prompt"])
        lines.append(f"**Negative prompt:** {md_text(neg[:80])}{'…' if len(neg) > 80 else ''}")
    if shown:
        pairs = (f"{k}={md_value(v)}" for k, v in sorted(shown.items()))
        lines.append("**Parameters:** " + ", ".join(pairs))
    if p.get("loras"):
        lines.append(f"**LoRAs:** {md_text(stack_words(p['loras']))}")
    if q:
        lines.append(
            f"**Quote:** ≈{q.gpu_s} GPU s = ${q.dollars:.4f} on {q.gpu} ({q.basis});"
            f" cold start +{q.cold_s} s = +${q.cold_dollars:.4f}"
        )
    if row.delay_ms is not None or row.execution_ms is not None:
        lines.append(
            f"**Timings:** queue/cold start {(row.delay_ms or 0) / 1000:.1f} s · execution "
            f"{(row.execution_ms or 0) / 1000:.1f} s"
        )
    if row.cost:
        quoted = q.dollars if q else 0.0
        lines.append(
            f"**Actual:** {row.cost.billed_s} billed s = ${row.cost.dollars:.4f} "
            f"(quote ${quoted:.4f})"
        )
    if row.error:
        lines.append(f"**Error:** {md_text(row.error)}")
    return "\n\n".join(lines)
