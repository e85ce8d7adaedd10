"""Cost model: what a job will cost before it runs, and what it did cost after. Pure functions.

Time model (from measured Wan 2.2 timings; see the figures below):
  execution_s = load_s + steps x t_step + decode_s
  t_step      = REF_STEP_S[model] x gpu_speed x (tokens / REF_TOKENS) ** TOKEN_EXP x passes / 2
  tokens      = (W/p)·(H/p)·((frames-1)/4+1), p = 16 (14B, Wan 2.1 VAE) or 32 (5B, Wan 2.2 VAE)
  passes      = 1 when cfg == 1 (turbo LoRAs), else 2 (cond + uncond)
Reference: H100, 14B, 832x480x81, cfg>1: ~8.2 s per step incl. overheads (official table).
GPU speed factors relative to H100 come from the same table (A100 19.6/8.2, 4090D ~3x).
Cold start (container start + model load) is quoted apart, with the idle timeout RunPod bills.
Post-steps (upscale, smooth motion; read from the workflow by app/studio/postplan.py) add their
own seconds: ESTIMATES from published figures (app/studio/postcost.py says which), x gpu_speed.

Learning: `calibrate(observations)` fits one scale factor per (pipeline, mode, gpu) as the
geometric mean of observed/predicted sampling time over this endpoint's finished jobs without
post-steps (over all its jobs when none has run without them); each post-step kind gets a factor
per gpu: the geometric mean of (observed - calibrated sampling estimate) / post-step estimate
over the jobs that ran it (jobs whose residual is not positive are skipped). An exact match
(same size, frames, steps, cfg and post-steps) uses the mean of those observations directly.

Money: RunPod bills per second, rounded up (prices in app/studio/prices.yaml with the date read).
`actual(...)` turns a finished job's executionTime into billed seconds and dollars.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.errors import ConfigError
from app.studio import graph, postcost, postplan
from workflows.catalog import load_catalog

PRICES_PATH = Path(__file__).with_name("prices.yaml")
REF_TOKENS = 52 * 30 * 21  # 832x480, 81 frames, patch 16
TOKEN_EXP = 1.45
REF_STEP_S = {"14b": 8.2, "5b": 4.0}  # H100, cfg>1, per step
PATCH = {"14b": 16, "5b": 32}
LOAD_S = {"14b": 12.0, "5b": 5.0}  # warm: moving experts / text encoder between steps
COLD_START_S = {"14b": 75.0, "5b": 35.0}  # container + model load from the network volume
GPU_SPEED = {  # seconds relative to H100 PRO (lower is faster)
    "A4000 / A4500 / RTX 4000": 8.0,
    "L4 / A5000 / 3090": 6.0,
    "4090 PRO": 3.0,
    "A6000 / A40": 4.0,
    "L40 / L40S / 6000 Ada PRO": 2.6,
    "A100": 2.39,
    "H100 PRO": 1.0,
    "6000s PRO": 1.1,
    "H200 PRO": 0.9,
    "B200": 0.6,
}


def model_family(pipeline: str) -> str:
    """The model family ("14b" or "5b") of a catalog template; bring-your-own workflows count as
    14B (the larger, safer quote)."""
    catalog = load_catalog()
    return catalog[pipeline].family if pipeline in catalog.ids() else "14b"


@dataclass(frozen=True)
class Prices:
    per_s: Mapping[str, float]
    read_on: str
    idle_timeout_s: float = 5.0
    source: str = ""

    def price(self, gpu: str) -> float:
        if gpu not in self.per_s:
            raise ConfigError(
                f"WANPOD_GPU_TYPE={gpu!r} is not a GPU type of the prices file (WANPOD_PRICES);"
                f" allowed: {', '.join(self.per_s)}"
            )
        return self.per_s[gpu]


def load_prices(path: Path) -> Prices:
    data = yaml.safe_load(Path(path).read_text())
    gpus = {str(k): float(v["per_s"]) for k, v in data["gpus"].items()}
    return Prices(
        per_s=gpus,
        read_on=str(data.get("read_on", "")),
        idle_timeout_s=float(data.get("idle_timeout_s", 5)),
        source=str(data.get("source", "")),
    )


@dataclass(frozen=True)
class CostRequest:
    """The job features the time model depends on."""

    pipeline: str
    mode: str
    width: int
    height: int
    frames: int
    steps: int
    cfg: float
    upscale: int = 0  # the upscale model's own factor (0: no upscale step)
    upscale_to: int = 0  # the factor of the frames it hands on (the ImageScale after it)
    upscale_frames: int = 0  # frames it upscales, each of width x height
    interpolate: int = 0  # the RIFE node's multiplier (0: no frame interpolation)
    interpolate_frames: int = 0  # frames into RIFE
    interpolate_pixels: int = 0  # pixels of each (the upscaled size when it runs after upscale)

    @property
    def model(self) -> str:
        return model_family(self.pipeline)

    @property
    def key(self) -> tuple[str, str]:
        return (self.pipeline, self.mode)

    @property
    def exact(self) -> tuple[object, ...]:
        return (
            self.pipeline,
            self.mode,
            self.width,
            self.height,
            self.frames,
            self.steps,
            self.cfg,
            self.upscale,
            self.upscale_to,
            self.upscale_frames,
            self.interpolate,
            self.interpolate_frames,
            self.interpolate_pixels,
        )


@dataclass(frozen=True)
class Observation:
    """One finished job of this endpoint: its features and RunPod's executionTime."""

    request: CostRequest
    gpu: str
    execution_s: float


@dataclass(frozen=True)
class Calibration:
    scale: Mapping[tuple[str, str, str], tuple[float, int]] = field(default_factory=dict)
    exact: Mapping[tuple[object, ...], tuple[float, int]] = field(default_factory=dict)
    post: Mapping[tuple[str, str], tuple[float, int]] = field(default_factory=dict)  # (kind, gpu)


@dataclass(frozen=True)
class Quote:
    gpu: str
    per_s: float
    execution_s: float  # expected warm GPU seconds
    dollars: float  # execution_s rounded up x per_s
    cold_start_s: float = 0.0  # extra when no worker is warm (container + model + idle timeout)
    cold_dollars: float = 0.0
    basis: str = ""  # "published timings" | "calibrated from N jobs" | "N identical jobs"
    prices_read_on: str = ""
    post_s: Mapping[str, float] = field(default_factory=dict)  # "upscale ×2" -> s, in run order

    @property
    def gpu_s(self) -> int:
        """The GPU seconds as shown (whole seconds, up: RunPod bills each started second)."""
        return math.ceil(self.execution_s)

    @property
    def cold_s(self) -> int:
        """The cold start's seconds as shown, rounded as `gpu_s`."""
        return math.ceil(self.cold_start_s)

    def summary(self) -> str:
        post = ", ".join(f"{name} ≈ {math.ceil(s)} s" for name, s in self.post_s.items())
        post = f" incl. {post} (estimates)" if post else ""
        return (
            f"≈ {self.gpu_s} GPU s on {self.gpu}{post} = ${self.dollars:.4f} "
            f"(at ${self.per_s:.5f}/s, prices of {self.prices_read_on}; {self.basis}) · "
            f"cold start +{self.cold_s} s = +${self.cold_dollars:.4f} "
            "if no worker is warm"
        )


@dataclass(frozen=True)
class Actual:
    """What a job cost: billed seconds (rounded up), dollars, its queue/cold-start delay;
    `partial` for a job that ended without completing (it still bills its seconds)."""

    billed_s: int
    dollars: float
    delay_s: float = 0.0
    partial: bool = False


def tokens(req: CostRequest) -> float:
    p = PATCH[req.model]
    return (req.width / p) * (req.height / p) * ((req.frames - 1) / 4 + 1)


def sampling_seconds(req: CostRequest, gpu: str) -> float:
    """Published-timings estimate of warm execution seconds without the post-steps."""
    speed = GPU_SPEED.get(gpu, 1.0)
    passes = 1 if req.cfg == 1 else 2
    t_step = REF_STEP_S[req.model] * speed * (tokens(req) / REF_TOKENS) ** TOKEN_EXP * passes / 2
    decode = 2.0 * t_step  # VAE decode + encode ≈ two one-pass steps
    return LOAD_S[req.model] * speed + req.steps * t_step + decode


POST_WORDS = {"upscale": "upscale", "interpolate": "smooth motion"}  # kind -> the quote's word


def post_seconds(req: CostRequest, gpu: str) -> dict[str, float]:
    """The post-steps' estimated warm seconds (kind -> s; empty without post-steps), from the
    published figures in app/studio/postcost.py, x gpu_speed."""
    speed = GPU_SPEED.get(gpu, 1.0)
    out: dict[str, float] = {}
    if req.upscale:
        pixels = req.width * req.height
        out["upscale"] = postcost.upscale_s(pixels, req.upscale_frames, req.upscale) * speed
    if req.interpolate:
        px, n = req.interpolate_pixels, req.interpolate_frames
        out["interpolate"] = postcost.interpolate_s(px, n, req.interpolate) * speed
    return out


def post_label(kind: str, req: CostRequest) -> str:
    """ "upscale ×2" / "smooth motion ×2": a post-step as the quote line names it."""
    factor = req.upscale_to if kind == "upscale" else req.interpolate
    return f"{POST_WORDS[kind]} ×{factor}"


def model_seconds(req: CostRequest, gpu: str) -> float:
    """Published-timings estimate of warm execution seconds (no calibration), post-steps incl."""
    return sampling_seconds(req, gpu) + sum(post_seconds(req, gpu).values())


def _geomean(logs: Mapping[Any, list[float]]) -> dict[Any, tuple[float, int]]:
    return {k: (math.exp(sum(v) / len(v)), len(v)) for k, v in logs.items()}


def calibrate(observations: Iterable[Observation]) -> Calibration:
    obs = [ob for ob in observations if ob.execution_s > 0]
    groups: dict[tuple[str, str, str], list[Observation]] = {}
    exact: dict[tuple[object, ...], list[float]] = {}
    for ob in obs:
        groups.setdefault((*ob.request.key, ob.gpu), []).append(ob)
        exact.setdefault((*ob.request.exact, ob.gpu), []).append(ob.execution_s)
    logs: dict[tuple[str, str, str], list[float]] = {}
    for key, group in groups.items():  # sampling: from the jobs without post-steps if any
        plain = [ob for ob in group if not post_seconds(ob.request, ob.gpu)]
        predict = sampling_seconds if plain else model_seconds
        fit = plain or group
        logs[key] = [math.log(ob.execution_s / predict(ob.request, ob.gpu)) for ob in fit]
    scale = _geomean(logs)
    post_logs: dict[tuple[str, str], list[float]] = {}
    for ob in obs:  # each post-step: what the job took beyond its calibrated sampling
        estimate = post_seconds(ob.request, ob.gpu)
        if not estimate:
            continue
        factor = scale[(*ob.request.key, ob.gpu)][0]
        residual = ob.execution_s - sampling_seconds(ob.request, ob.gpu) * factor
        if residual <= 0:
            continue
        ratio = math.log(residual / sum(estimate.values()))
        for kind in estimate:
            post_logs.setdefault((kind, ob.gpu), []).append(ratio)
    return Calibration(
        scale=scale,
        exact={k: (sum(v) / len(v), len(v)) for k, v in exact.items()},
        post=_geomean(post_logs),
    )


def _jobs(n: int) -> str:
    return f"{n} job{'s' if n != 1 else ''}"


def quote(req: CostRequest, gpu: str, prices: Prices, cal: Calibration | None = None) -> Quote:
    per_s = prices.price(gpu)
    cal = cal or Calibration()
    post: dict[str, float] = {}
    learnt = []
    for kind, s in post_seconds(req, gpu).items():
        if (kind, gpu) in cal.post:
            factor, n = cal.post[(kind, gpu)]
            s *= factor
            learnt.append(f"{POST_WORDS[kind]} from {_jobs(n)}")
        post[post_label(kind, req)] = s
    seconds = sampling_seconds(req, gpu)
    basis = "published timings"
    if (*req.exact, gpu) in cal.exact:
        seconds, n = cal.exact[(*req.exact, gpu)]
        basis = f"{n} identical job{'s' if n != 1 else ''} on this endpoint"
    else:
        if (*req.key, gpu) in cal.scale:
            factor, n = cal.scale[(*req.key, gpu)]
            seconds *= factor
            basis = f"calibrated from {_jobs(n)} on this endpoint"
        seconds += sum(post.values())
        if learnt:
            basis += f"; post-steps calibrated: {', '.join(learnt)}"
    cold = COLD_START_S[req.model] * min(GPU_SPEED.get(gpu, 1.0), 2.0) + prices.idle_timeout_s
    return Quote(
        gpu=gpu,
        per_s=per_s,
        execution_s=seconds,
        dollars=math.ceil(seconds) * per_s,
        cold_start_s=cold,
        cold_dollars=math.ceil(cold) * per_s,
        basis=basis,
        prices_read_on=prices.read_on,
        post_s=post,
    )


def actual(execution_ms: int | None, delay_ms: int | None, gpu: str, prices: Prices) -> Actual:
    """Billed seconds (rounded up) and dollars for a finished job's executionTime."""
    billed = max(math.ceil((execution_ms or 0) / 1000), 0)  # never negative (a refund)
    return Actual(
        billed_s=billed, dollars=billed * prices.price(gpu), delay_s=max(delay_ms or 0, 0) / 1000
    )


_LATENT_NODES = (
    "EmptyHunyuanLatentVideo",
    "EmptyWanLatentVideo",
    "Wan22ImageToVideoLatent",
    "WanImageToVideo",
    "WanFirstLastFrameToVideo",
)


def request_from_workflow(pipeline: str, mode: str, workflow: Mapping[str, object]) -> CostRequest:
    """The cost features of a filled API workflow: latent size and length (the largest), steps
    and cfg, as the graph will use them (links followed through primitive nodes,
    app/studio/graph.py), and its post-steps (app/studio/postplan.py). Steps are the steps every
    sampler that feeds something runs, added up (`sampler_steps`: Wan 2.2's two experts split one
    count; a second pass after the first adds its own); cfg is the largest. Raises
    graph.Unresolved for a value known only at run time."""
    width = height = 0
    frames = 1
    steps, cfg = 0, 1.0
    fed = {str(v[0]) for node in workflow.values() if isinstance(node, Mapping)
           for v in (node.get("inputs") or {}).values() if graph.is_link(v)}  # fmt: skip
    for node_id, node in workflow.items():
        if not isinstance(node, Mapping):
            continue
        kind = str(node.get("class_type", ""))
        inputs = node.get("inputs") or {}
        if not isinstance(inputs, Mapping):
            continue

        def value(name: str, nid: str = str(node_id)) -> float | None:
            return graph.number(workflow, nid, name)

        if kind in _LATENT_NODES or {"width", "height", "length"} <= set(inputs):
            w, h, n = value("width"), value("height"), value("length")
            if w is not None and h is not None and n is not None:
                width, height, frames = max(width, int(w)), max(height, int(h)), max(frames, int(n))
        if ("Sampler" in kind or "Scheduler" in kind) and "steps" in inputs:
            if str(node_id) in fed:  # one that feeds nothing does not run
                steps += sampler_steps(workflow, str(node_id))
            c = value("cfg") if "cfg" in inputs else None
            if c is not None:  # the largest (was the last: a cfg-1 sampler after a cfg-3.5 one
                cfg = max(cfg, float(c))  # quoted the job as one pass per step, half its cost)
    base = CostRequest(pipeline, mode, width or 832, height or 480, frames, steps or 20, cfg)
    return with_post_steps(base, postplan.read(workflow))


def sampler_steps(workflow: Mapping[str, object], node: str) -> int:
    """The steps a sampler (or scheduler) node runs: its `steps`, or for a KSamplerAdvanced its
    window of them (start_at_step up to end_at_step, which may stand past the end)."""
    steps = graph.number(workflow, node, "steps") or 0
    start = graph.number(workflow, node, "start_at_step")
    end = graph.number(workflow, node, "end_at_step")
    last = steps if end is None else min(steps, end)
    return max(0, int(last) - int(start or 0))


def with_post_steps(req: CostRequest, plan: postplan.PostPlan) -> CostRequest:
    """`req` with the post-steps of `plan` (one of each kind counted: the first that runs), on
    the decoded video: (frames - 1) // 4 * 4 + 1 frames of the generated size."""
    frames = (req.frames - 1) // 4 * 4 + 1 if req.frames > 1 else 1
    up, it = plan.first("upscale"), plan.first("interpolate")
    fields: dict[str, int] = {}
    if up is not None:
        to = round(up.width / req.width) if up.width else up.factor
        grown = (frames - 1) * it.factor + 1 if it and "interpolate" in up.after else frames
        fields.update(upscale=up.factor, upscale_to=max(to, 1), upscale_frames=grown)
    if it is not None:
        pixels = req.width * req.height
        if up is not None and "upscale" in it.after:
            pixels *= fields["upscale_to"] ** 2
        fields.update(interpolate=it.factor, interpolate_frames=frames, interpolate_pixels=pixels)
    return dataclasses.replace(req, **fields) if fields else req
