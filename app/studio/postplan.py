"""The optional post-steps a workflow runs after decoding, read from its graph by class type. Pure.

Read the same way for a catalog template (workflows/poststeps.py inserts the nodes), a past ledger
row and a bring-your-own workflow, so the quote (app/studio/cost.py) and the status line
(app/studio/progress.py) see the same steps:
- upscale: an `ImageUpscaleWithModel`, the `UpscaleModelLoader` it takes its model from (the
  file; its own factor by workflows.poststeps.native_factor) and the `ImageScale` nodes fed by it
  (the exact width it brings the frames to: x2 of the generated size in the catalog's templates).
- interpolate: the RIFE node (workflows.poststeps.post_steps().interpolate.node), its checkpoint
  and multiplier.
`read(workflow)` lists them in the order they run (a step that feeds another runs first). A
number that is only known at run time raises graph.Unresolved, as for the quote's other inputs; a
model name that is only known then reads as "" (the default 4x factor: the costlier guess).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.studio import graph
from workflows.poststeps import native_factor, post_steps

UPSCALE_LOADER = "UpscaleModelLoader"
UPSCALE_NODE = "ImageUpscaleWithModel"
SCALE_NODES = ("ImageScale",)  # the exact-size scale after the model (workflows/poststeps.py)


@dataclass(frozen=True)
class Step:
    kind: str  # "upscale" | "interpolate" (FilledWorkflow.post_nodes' names)
    node: str  # the node doing the work: ImageUpscaleWithModel / the RIFE node
    nodes: tuple[str, ...]  # every node of the step (loader, work, exact-size scale)
    model: str  # the model file ("" when unknown before the job runs)
    factor: int  # upscale: the model's own factor; interpolate: the multiplier
    width: int | None = None  # upscale: the width the ImageScale after it sets (None: none)
    after: tuple[str, ...] = ()  # kinds of the steps that run before this one and feed it


@dataclass(frozen=True)
class PostPlan:
    steps: tuple[Step, ...] = ()

    def first(self, kind: str) -> Step | None:
        return next((s for s in self.steps if s.kind == kind), None)

    def step_of(self, node: str | None) -> Step | None:
        """The step `node` belongs to (None for any other node)."""
        return next((s for s in self.steps if node in s.nodes), None)


def read(workflow: Mapping[str, Any]) -> PostPlan:
    rife = post_steps().interpolate.node
    found: list[Step] = []
    for nid, node in workflow.items():
        if not isinstance(node, Mapping):
            continue
        kind = str(node.get("class_type", ""))
        nid = str(nid)
        if kind == UPSCALE_NODE:
            found.append(_upscale(workflow, nid))
        elif kind == rife:
            multiplier = _number(workflow, nid, "multiplier", post_steps().interpolate.multiplier)
            model = _name(workflow, nid, "ckpt_name")
            found.append(Step("interpolate", nid, (nid,), model, int(multiplier)))
    feeds = {s.node: graph.upstream(workflow, s.node) for s in found}
    ordered = []
    for s in found:
        before = tuple(o.kind for o in found if o is not s and o.node in feeds[s.node])
        ordered.append(Step(s.kind, s.node, s.nodes, s.model, s.factor, s.width, before))
    ordered.sort(key=lambda s: len(s.after))
    return PostPlan(tuple(ordered))


def _upscale(workflow: Mapping[str, Any], nid: str) -> Step:
    link = ((workflow.get(nid) or {}).get("inputs") or {}).get("upscale_model")
    nodes, model = [nid], ""
    if graph.is_link(link):
        loader = str(link[0])
        if str((workflow.get(loader) or {}).get("class_type", "")) == UPSCALE_LOADER:
            nodes.insert(0, loader)
            model = _name(workflow, loader, "model_name")
    width = None
    for sid, node in workflow.items():
        if not isinstance(node, Mapping) or node.get("class_type") not in SCALE_NODES:
            continue
        image = (node.get("inputs") or {}).get("image")
        if graph.is_link(image) and str(image[0]) == nid:
            nodes.append(str(sid))
            w = _number(workflow, str(sid), "width", 0)
            width = int(w) if w else None
    return Step("upscale", nid, tuple(nodes), model, native_factor(model), width)


def _number(workflow: Mapping[str, Any], nid: str, name: str, default: float) -> float:
    v = graph.number(workflow, nid, name)
    return default if v is None else v


def _name(workflow: Mapping[str, Any], nid: str, name: str) -> str:
    try:
        v = graph.resolve(workflow, nid, name)
    except graph.Unresolved:
        return ""
    return v if isinstance(v, str) else ""
