"""Cost model: what a job will cost before it runs, and what it did cost after. Pure functions.

Time model (from measured Wan 2.2 timings; see the figures below):
  execution_s = load_s + steps x t_step + decode_s
  t_step      = REF_STEP_S[model] x gpu_speed x (tokens / REF_TOKENS) ** TOKEN_EXP x passes / 2
  tokens      = (W/p)·(H/p)·((frames-1)/4+1), p = 16 (14B, Wan 2.1 VAE) or 32 (5B, Wan 2.2 VAE)
  passes      = 1 when cfg == 1 (turbo LoRAs), else 2 (cond + uncond)
Reference: H100, 14B, 832x480x81, cfg>1: ~8.2 s per step incl. overheads (official table).
GPU speed factors relative to H100 come from the same table (A100 19.6/8.2, 4090D ~3x).
Cold start (container start + model load) is quoted apart, with the idle timeout RunPod bills.

Learning: `calibrate(observations)` fits one scale factor per (pipeline, mode, gpu) as the
geometric mean of observed/predicted execution time over this endpoint's finished jobs, and an
exact match (same size, frames, steps, cfg) uses the mean of those observations directly.

Money: RunPod bills per second, rounded up (prices in app/studio/prices.yaml with the date read).
`actual(...)` turns a finished job's executionTime into billed seconds and dollars.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from app.errors import ConfigError
from app.studio import graph
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

    def summary(self) -> str:
        return (
            f"≈ {math.ceil(self.execution_s)} GPU s on {self.gpu} = ${self.dollars:.4f} "
            f"(at ${self.per_s:.5f}/s, prices of {self.prices_read_on}; {self.basis}) · "
            f"cold start +{math.ceil(self.cold_start_s)} s = +${self.cold_dollars:.4f} "
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


def model_seconds(req: CostRequest, gpu: str) -> float:
    """Published-timings estimate of warm execution seconds (no calibration)."""
    speed = GPU_SPEED.get(gpu, 1.0)
    passes = 1 if req.cfg == 1 else 2
    t_step = REF_STEP_S[req.model] * speed * (tokens(req) / REF_TOKENS) ** TOKEN_EXP * passes / 2
    decode = 2.0 * t_step  # VAE decode + encode ≈ two one-pass steps
    return LOAD_S[req.model] * speed + req.steps * t_step + decode


def calibrate(observations: Iterable[Observation]) -> Calibration:
    logs: dict[tuple[str, str, str], list[float]] = {}
    exact: dict[tuple[object, ...], list[float]] = {}
    for ob in observations:
        if ob.execution_s <= 0:
            continue
        predicted = model_seconds(ob.request, ob.gpu)
        logs.setdefault((*ob.request.key, ob.gpu), []).append(math.log(ob.execution_s / predicted))
        exact.setdefault((*ob.request.exact, ob.gpu), []).append(ob.execution_s)
    return Calibration(
        scale={k: (math.exp(sum(v) / len(v)), len(v)) for k, v in logs.items()},
        exact={k: (sum(v) / len(v), len(v)) for k, v in exact.items()},
    )


def quote(req: CostRequest, gpu: str, prices: Prices, cal: Calibration | None = None) -> Quote:
    per_s = prices.price(gpu)
    cal = cal or Calibration()
    seconds = model_seconds(req, gpu)
    basis = "published timings"
    if (*req.exact, gpu) in cal.exact:
        seconds, n = cal.exact[(*req.exact, gpu)]
        basis = f"{n} identical job{'s' if n != 1 else ''} on this endpoint"
    elif (*req.key, gpu) in cal.scale:
        factor, n = cal.scale[(*req.key, gpu)]
        seconds *= factor
        basis = f"calibrated from {n} job{'s' if n != 1 else ''} on this endpoint"
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
    """The cost features of a filled API workflow: latent size and length, steps and cfg, as the
    graph will use them (links followed through primitive nodes, app/studio/graph.py; the largest
    when several nodes set them). Raises graph.Unresolved for a value known only at run time."""
    width = height = 0
    frames = 1
    steps, cfg = 0, 1.0
    for node_id, node in workflow.items():
        if not isinstance(node, Mapping):
            continue
        kind = str(node.get("class_type", ""))
        inputs = node.get("inputs") or {}
        if not isinstance(inputs, Mapping):
            continue

        def value(name: str, nid: str = str(node_id)) -> float | None:
            v = graph.resolve(workflow, nid, name)
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise graph.unresolved(nid, name, f"{v!r} is not a number")
            return v

        if kind in _LATENT_NODES or {"width", "height", "length"} <= set(inputs):
            w, h, n = value("width"), value("height"), value("length")
            if w is not None and h is not None and n is not None:
                width, height, frames = max(width, int(w)), max(height, int(h)), max(frames, int(n))
        if ("Sampler" in kind or "Scheduler" in kind) and "steps" in inputs:
            s = value("steps")
            if s is not None:
                steps = max(steps, int(s))
            c = value("cfg") if "cfg" in inputs else None
            if c is not None:
                cfg = float(c)
    return CostRequest(pipeline, mode, width or 832, height or 480, frames, steps or 20, cfg)
