"""Turn a job's state and the worker's progress dict into one status line and a fraction. Pure.

The worker posts (see BRIEF): {"stage", "node", "node_type", "step", "steps", "nodes_done",
"nodes_total", "percent", "elapsed_s", "queue_position"}. `describe()` gives e.g.
"Sampling: step 3 of 4 on the high-noise expert · 12 s elapsed · about 9 s left". Which expert a
KSamplerAdvanced node runs is read from the filled workflow (`experts()`: follow the node's model
input back to its UNETLoader and look at the file name).
Post-steps (upscale, smooth motion; app/studio/postplan.py reads their nodes by class type) run in
the worker's "decoding" stage: while one of their nodes runs the line says e.g. "Upscaling ×2
(RealESRGAN_x2plus.pth)" or "Smoothing motion ×2 (RIFE, rife47.pth)", and the bar moves through
their share of the decoding span (`POST_SHARE`), so it never goes back when the next stage starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.endpoint.states import JobState
from app.studio import cost, graph, postplan

_STAGE_SPAN = {  # overall fraction at the start and end of each stage
    "starting": (0.01, 0.03),  # from where "Worker picked up the job" (no stage yet) is
    "uploading": (0.03, 0.05),
    "queued": (0.05, 0.06),
    "loading": (0.06, 0.10),
    "sampling": (0.10, 0.90),
    "decoding": (0.90, 0.96),
    "saving": (0.96, 0.98),
    "delivering": (0.98, 0.995),
}
_ENDED = {
    JobState.FAILED: "Failed",
    JobState.TIMED_OUT: "Timed out",
    JobState.LOST: "Lost",
    JobState.CANCELLED: "Cancelled",
}
PACE_FROM = 0.15  # from this fraction on, the time left comes from the job's own pace
# With post-steps, the decoding span is the VAE decode's first third, then the post-steps' (one
# equal share each, in the order they run): an upscale of the whole video takes longer than its
# decode, and the bar must still end the stage where "saving" starts.
POST_SHARE = 2 / 3
_STAGE_WORD = {
    "starting": "Worker starting",
    "uploading": "Uploading images to ComfyUI",
    "queued": "Queued in ComfyUI",
    "loading": "Loading models",
    "sampling": "Sampling",
    "decoding": "Decoding video (VAE)",
    "saving": "Saving video",
    "delivering": "Sending the result",
}


@dataclass(frozen=True)
class ProgressView:
    """A live job's line is `head` + `clock(elapsed_s, left_s)`: the head is what only the
    server can know (stage, step, expert), the clock what a page can keep counting itself.
    A final job's line is its head alone (`elapsed_s` None)."""

    head: str
    fraction: float
    eta_s: float | None
    final: bool = False
    elapsed_s: float | None = None
    left_s: float | None = None  # the "about ... left" the line shows, if any
    left_from: str = ""  # "pace": elapsed / fraction - elapsed; "quote": counts down; "": none

    @property
    def line(self) -> str:
        if self.elapsed_s is None:
            return self.head
        return self.head + clock(self.elapsed_s, self.left_s)


def clock(elapsed_s: float, left_s: float | None = None) -> str:
    """The status line's running part: " · 12 s elapsed · about 9 s left"."""
    tail = f" · {_fmt(elapsed_s)} elapsed"
    return tail + (f" · about {_fmt(left_s)} left" if left_s is not None else "")


def experts(workflow: Mapping[str, Any]) -> dict[str, str]:
    """Sampler node id -> "high-noise" / "low-noise" (empty for single-model workflows)."""
    result: dict[str, str] = {}
    for nid, node in workflow.items():
        if not isinstance(node, Mapping) or "Sampler" not in str(node.get("class_type", "")):
            continue
        seen = 0
        link = (node.get("inputs") or {}).get("model")
        while isinstance(link, list) and link and seen < 20:
            seen += 1
            src = workflow.get(str(link[0]))
            if not isinstance(src, Mapping):
                break
            inputs = src.get("inputs") or {}
            name = str(inputs.get("unet_name") or inputs.get("ckpt_name") or "")
            if name:
                if "high_noise" in name or "high-noise" in name:
                    result[str(nid)] = "high-noise"
                elif "low_noise" in name or "low-noise" in name:
                    result[str(nid)] = "low-noise"
                break
            link = inputs.get("model")
    return result


@dataclass(frozen=True)
class Samplers:
    """A workflow's sampler nodes in the order they run, and the expert each one uses: what the
    status line needs from the workflow, read once per job (`samplers(workflow)`)."""

    order: tuple[str, ...] = ()
    experts: Mapping[str, str] = field(default_factory=dict)
    post: postplan.PostPlan = field(default_factory=postplan.PostPlan)
    post_lines: Mapping[str, str] = field(default_factory=dict)  # kind -> "Upscaling ×2 (...)"


def post_lines(workflow: Mapping[str, Any], plan: postplan.PostPlan) -> dict[str, str]:
    """What the status line says while each post-step runs (the factors the quote reads)."""
    req = cost.request_from_workflow("", "", workflow)
    lines = {}
    for step in plan.steps:
        if step.kind == "upscale":
            lines[step.kind] = f"Upscaling ×{req.upscale_to}" + (
                f" ({step.model})" * bool(step.model)
            )
        else:
            model = f", {step.model}" if step.model else ""
            lines[step.kind] = f"Smoothing motion ×{step.factor} (RIFE{model})"
    return lines


def samplers(workflow: Mapping[str, Any] | None) -> Samplers:
    """One walk of the graph: the sampler ids (high-noise first, as in every Wan 2.2 14B
    template) and their experts, and the post-steps' nodes and lines."""
    workflow = workflow or {}
    try:
        post = postplan.read(workflow)
        lines = post_lines(workflow, post)
    except graph.Unresolved:  # a number known only at run time: no post-step lines
        post, lines = postplan.PostPlan(), {}
    ex = experts(workflow)
    ids = [
        str(nid)
        for nid, node in workflow.items()
        if isinstance(node, Mapping)
        and "Sampler" in str(node.get("class_type", ""))
        and "Select" not in str(node.get("class_type", ""))
    ]
    order = sorted(ids, key=lambda i: (ex.get(i) != "high-noise", int(i) if i.isdigit() else 0))
    return Samplers(tuple(order), ex, post, lines)


def _post_inner(step: postplan.Step, node: str, done: object, total: object) -> float:
    """How far into its share a post-step is: its loader at the start, its work node by the
    steps it reports (upscale tiles), the exact-size scale after it at the end."""
    if node != step.node:
        return 1.0 if step.nodes.index(node) > step.nodes.index(step.node) else 0.0
    if isinstance(done, int) and isinstance(total, int) and total > 0:
        return done / total
    return 0.0


def _fmt(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def describe(
    state: JobState | str,
    progress: Mapping[str, Any] | None,
    elapsed_s: float,
    quote_s: float | None = None,
    workflow: Mapping[str, Any] | Samplers | None = None,
    error: str | None = None,
) -> ProgressView:
    """One status line + an overall fraction in [0, 1] for the page's bar. `workflow`: the job's
    filled workflow, or its `samplers(workflow)` read once (what a caller that polls keeps)."""
    state = JobState.parse(state)
    p = dict(progress or {})
    if state is JobState.COMPLETED:
        return ProgressView(f"Done in {_fmt(elapsed_s)}", 1.0, 0.0, final=True)
    if state.final:  # one line, the bar kept where the job stopped
        word = _ENDED[state]
        live = JobState.IN_PROGRESS
        kept = describe(live, p, elapsed_s, None, workflow).fraction if p.get("stage") else 0.0
        reason = error if error and error.strip().lower() != word.lower() else None
        head = f"{word}: {reason}" if reason else word
        if kept > 0:
            head += f" (stopped at {kept:.0%})"
        return ProgressView(head, kept, None, final=True)
    if state is JobState.SUBMITTING:
        return ProgressView("Submitting to the endpoint", 0.0, quote_s, elapsed_s=elapsed_s)
    if state is JobState.IN_QUEUE:
        pos = p.get("queue_position")
        line = "Queued: waiting for a worker (a cold start if none is warm)"
        if pos is not None:
            line += f", position {pos}"
        return ProgressView(line, 0.0, quote_s, elapsed_s=elapsed_s)
    stage = str(p.get("stage") or "")
    if stage not in _STAGE_SPAN:
        head = "Worker picked up the job: starting ComfyUI"
        return ProgressView(head, 0.01, quote_s, elapsed_s=elapsed_s)
    lo, hi = _STAGE_SPAN[stage]
    inner = 0.0
    line = _STAGE_WORD[stage]
    if stage == "sampling":
        step, steps = p.get("step"), p.get("steps")
        plan = workflow if isinstance(workflow, Samplers) else samplers(workflow)
        order = plan.order
        node = str(p.get("node")) if p.get("node") is not None else None
        k, n = (order.index(node), len(order)) if node in order else (0, 1)
        if isinstance(step, int) and isinstance(steps, int) and steps > 0:
            inner = (k + step / steps) / n
            line = f"Sampling: step {step} of {steps}"
            expert = plan.experts.get(node or "")
            if expert:
                line += f" on the {expert} expert"
            elif n > 1:
                line += f" (sampler {k + 1} of {n})"
    elif stage == "queued" and p.get("queue_position") is not None:
        line += f", position {p['queue_position']}"
    elif stage == "decoding" and workflow is not None:
        plan = workflow if isinstance(workflow, Samplers) else samplers(workflow)
        if plan.post.steps:  # the decode's share first, then the post-steps' (POST_SHARE)
            hi_decode = hi - (hi - lo) * POST_SHARE
            node = str(p.get("node")) if p.get("node") is not None else None
            step = plan.post.step_of(node)
            if step is None:
                hi = hi_decode
            else:
                k, n = plan.post.steps.index(step), len(plan.post.steps)
                width = (hi - hi_decode) / n
                lo, hi = hi_decode + k * width, hi_decode + (k + 1) * width
                line = plan.post_lines.get(step.kind, line)
                inner = _post_inner(step, node or "", p.get("step"), p.get("steps"))
    fraction = lo + (hi - lo) * min(max(inner, 0.0), 1.0)
    eta, left_from = None, ""
    if fraction >= PACE_FROM and elapsed_s > 0:
        eta, left_from = elapsed_s / fraction - elapsed_s, "pace"
    elif quote_s is not None:
        eta, left_from = max(quote_s - elapsed_s, 0.0), "quote"
    return ProgressView(line, fraction, eta, elapsed_s=elapsed_s, left_s=eta, left_from=left_from)
