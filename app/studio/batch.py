"""Batch: several seeds and/or several prompts in one go, each its own job and ledger row.

Pure planning and arithmetic (no I/O, no Gradio):
- `plan(values, count=, seeds_text=, prompts_text=, max_jobs=, drawn=)` -> `BatchPlan`: one
  `FormValues` per job, prompts x seeds. Prompts: one per non-empty line of `prompts_text`,
  else the form's prompt. Seeds: the explicit list in `seeds_text` (whole numbers separated by
  commas or spaces) when given, else `count` seeds: random and distinct when the form's
  "Randomize seed" is on, else the form's seed and the ones after it (seed, seed+1, ...). The
  same seeds go with every prompt, so prompts are compared on equal terms. Each job's seed is
  fixed (randomize off). More than `max_jobs` jobs (WANPOD_BATCH_MAX) is an InputError naming
  the setting.
- `parse_ids(text, max_jobs)`: a batch's job ids as /generate_batch answered them (the page keeps
  them in the browser and follows them again after a reload; the API's /batch_attach).
- `combine(quotes)` -> `BatchQuote`: the whole batch's GPU seconds and dollars (each job billed
  per second, rounded up, as RunPod bills it), the per-job figure, and the cold start apart (what
  each worker that starts cold adds; the total never includes it).
- `budget_refusals(dollars, jobs, limits, rows, user)`: the daily and per-user budgets checked
  against the WHOLE batch's quoted dollars (today's spend from ledger rows,
  app/studio/checks/guardrails.py).

`BatchService(studio)` runs a plan through the studio's public methods: `quote(plan, user)`
(prepare every job, combined quote, every refusal: per-job limits once each and the budgets for
the batch total) and `submit(plan, user)`: refuses the whole batch up front (GuardrailError)
when any limit would break, else sends each job through `Studio.submit` (its own guardrails,
pre-flight, ledger row, /run; RunPod queues them). If a job is still not taken (the endpoint
refused it, or another user's spend raced the budget) it stops there and `BatchRun.error` says
which jobs were sent and which were not.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import InputError, user_message
from app.studio.checks import guardrails as gr_
from app.studio.cost import CostRequest, Quote
from app.studio.forms import MAX_SEED, FormValues
from app.studio.shown import BatchShown, check_batch_shown
from workflows.errors import as_sent

DEFAULT_MAX = 16
BUDGET_LIMITS = ("daily budget", "your daily budget")
_SEP = re.compile(r"[,\s;]+")


@dataclass(frozen=True)
class BatchPlan:
    jobs: tuple[FormValues, ...]
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]

    def describe(self) -> str:
        p, s = len(self.prompts), len(self.seeds)
        seeds = ", ".join(map(str, self.seeds[:8])) + (", …" if s > 8 else "")
        return (
            f"{len(self.jobs)} job{'s' if len(self.jobs) != 1 else ''} ({p} prompt"
            f"{'s' if p != 1 else ''} × {s} seed{'s' if s != 1 else ''}: {seeds})"
        )


def parse_seeds(text: str | None) -> tuple[int, ...]:
    """An explicit seed list: whole numbers 0..MAX_SEED separated by commas/spaces, no repeats."""
    allowed = f"whole numbers 0..{MAX_SEED} separated by commas or spaces, each once"
    seeds: list[int] = []
    for token in _SEP.split((text or "").strip()):
        if not token:
            continue
        try:
            seed = int(token)
        except ValueError:
            raise InputError(
                "batch seeds", f"{token!r} is not a whole number; allowed: {allowed}"
            ) from None
        if not 0 <= seed <= MAX_SEED:
            raise InputError("batch seeds", f"{seed} is out of range; allowed: {allowed}")
        if seed in seeds:
            raise InputError(
                "batch seeds", f"{seed} is listed twice (the same video twice); allowed: {allowed}"
            )
        seeds.append(seed)
    return tuple(seeds)


def parse_ids(text: str | None, max_jobs: int = DEFAULT_MAX) -> tuple[str, ...]:
    """A batch's job ids as /generate_batch answers them (separated by commas or spaces), each
    once: none, or more than a batch has, is refused (whose they are is the studio's lookup)."""
    allowed = (
        f"the ids /generate_batch answered (wp-..., separated by commas), 1..{max_jobs} of "
        "them (WANPOD_BATCH_MAX)"
    )
    ids = tuple(dict.fromkeys(t for t in _SEP.split((text or "").strip()) if t))
    if not ids:
        raise InputError("batch job ids", f"is empty; allowed: {allowed}")
    if len(ids) > max_jobs:
        raise InputError(
            "batch job ids", f"{as_sent(text)} holds {len(ids)} ids; allowed: {allowed}"
        )
    return ids


def parse_prompts(text: str | None) -> tuple[str, ...]:
    """One prompt per non-empty line (surrounding spaces dropped)."""
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


def _count(count: Any, max_jobs: int) -> int:
    allowed = f"a whole number 1..{max_jobs} (set by WANPOD_BATCH_MAX)"
    if count is None or count == "":
        return 1
    try:
        value = float(count)
    except (TypeError, ValueError):
        raise InputError(
            "number of seeds", f"{count!r} is not a number; allowed: {allowed}"
        ) from None
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise InputError("number of seeds", f"{count!r} is not allowed; allowed: {allowed}")
    return int(value)


def pick_seeds(values: FormValues, count: int, rng: random.Random | None = None) -> tuple[int, ...]:
    """`count` seeds: distinct random ones when the form randomizes, else seed, seed+1, ..."""
    if values.randomize or values.seed is None:
        rng = rng or random.SystemRandom()
        seeds: list[int] = []
        while len(seeds) < count:
            seed = rng.randint(0, MAX_SEED)
            if seed not in seeds:
                seeds.append(seed)
        return tuple(seeds)
    return tuple((int(values.seed) + k) % (MAX_SEED + 1) for k in range(count))


def plan(
    values: FormValues,
    *,
    count: Any = 1,
    seeds_text: str | None = "",
    prompts_text: str | None = "",
    max_jobs: int = DEFAULT_MAX,
    rng: random.Random | None = None,
    drawn: Sequence[int] = (),
) -> BatchPlan:
    """The batch's jobs: every prompt with every seed (see the module docstring). `drawn`: the
    random seeds the batch's quote drew and showed; a randomizing batch of that many seeds runs
    exactly those (the seeds quoted are the seeds run)."""
    prompts = parse_prompts(prompts_text) or (values.prompt,)
    explicit = parse_seeds(seeds_text)
    n_seeds = len(explicit) if explicit else _count(count, max_jobs)
    total = len(prompts) * n_seeds
    if total > max_jobs:
        raise InputError(
            "batch",
            f"{len(prompts)} prompt{'s' if len(prompts) != 1 else ''} × {n_seeds} seed"
            f"{'s' if n_seeds != 1 else ''} = {total} jobs; allowed: at most {max_jobs} jobs per "
            "batch (set by WANPOD_BATCH_MAX)",
        )
    reuse = values.randomize and len(drawn) == n_seeds and len(set(drawn)) == n_seeds
    seeds = explicit or (
        tuple(int(d) for d in drawn) if reuse else pick_seeds(values, n_seeds, rng)
    )
    jobs = tuple(
        dataclasses.replace(values, prompt=prompt, seed=seed, randomize=False)
        for prompt in prompts
        for seed in seeds
    )
    return BatchPlan(jobs, tuple(prompts), tuple(seeds))


# -- the combined quote ----------------------------------------------------------------------
@dataclass(frozen=True)
class BatchQuote:
    jobs: int
    per_job: tuple[Quote, ...]
    gpu: str
    per_s: float
    gpu_s: int  # billed warm seconds of the whole batch (each job rounded up)
    dollars: float  # the whole batch, warm
    cold_start_s: float  # what one worker starting cold adds (not in the total)
    cold_dollars: float
    basis: str
    prices_read_on: str

    @property
    def job_dollars(self) -> tuple[float, float]:
        """The cheapest and dearest job of the batch."""
        d = [q.dollars for q in self.per_job]
        return min(d), max(d)

    def summary(self, whole: str = "the batch", part: str = "job") -> str:
        """The line's words: `whole` what is priced, `part` each of its jobs (a chain's
        "segment")."""
        secs = [math.ceil(q.execution_s) for q in self.per_job]
        if len(set(secs)) == 1:
            each = f"{self.jobs} × {secs[0]} GPU s"
        else:
            each = f"{self.jobs} {part}s of {min(secs)}–{max(secs)} GPU s"
        lo, hi = self.job_dollars
        per_job = f"${lo:.4f} per {part}" if lo == hi else f"${lo:.4f}–${hi:.4f} per {part}"
        return (
            f"≈ {each} = {self.gpu_s} GPU s on {self.gpu} = ${self.dollars:.4f} for {whole} "
            f"({per_job}; at ${self.per_s:.5f}/s, prices of {self.prices_read_on}; {self.basis})"
            f" · cold start +{math.ceil(self.cold_start_s)} s = +${self.cold_dollars:.4f} per "
            "worker that starts cold (not included)"
        )


def held(shown: BatchShown | None, quote: BatchQuote) -> BatchQuote:
    """`quote` at the prices its quote line showed (`shown`: checked to price the same jobs
    first), each job's or segment's as the line had it: a job that ended in between moved the
    calibration, which does not change what was shown. `quote` itself for an API client (no
    line) or a line that priced another count."""
    if shown is None or len(shown.quotes) != len(quote.per_job):
        return quote
    return combine(shown.quotes)


def combine(quotes: Sequence[Quote]) -> BatchQuote:
    """The combined quote of a batch's jobs (pure arithmetic over their own quotes)."""
    if not quotes:
        raise InputError("batch", "has no jobs; allowed: 1 or more")
    first = quotes[0]
    cold = max(quotes, key=lambda q: q.cold_start_s)
    return BatchQuote(
        jobs=len(quotes),
        per_job=tuple(quotes),
        gpu=first.gpu,
        per_s=first.per_s,
        gpu_s=sum(math.ceil(q.execution_s) for q in quotes),
        dollars=sum(q.dollars for q in quotes),
        cold_start_s=cold.cold_start_s,
        cold_dollars=cold.cold_dollars,
        basis=first.basis,
        prices_read_on=first.prices_read_on,
    )


def budget_refusals(
    dollars: float,
    jobs: int,
    limits: gr_.Guardrails,
    rows: Iterable[Any],
    user: str | None = None,
    now: float | None = None,
    what: str = "batch",
) -> list[gr_.Refusal]:
    """The daily / per-user budgets against the whole batch's `dollars` (today's spend from the
    ledger `rows`, app/studio/checks/guardrails.py's arithmetic)."""
    only_budgets = dataclasses.replace(
        limits, job_usd=None, max_width=None, max_height=None, max_frames=None, max_steps=None
    )
    shape = gr_.JobShape(width=0, height=0, frames=0, steps=0, dollars=dollars, user=user)
    found = gr_.check_rows(shape, only_budgets, rows, now, whose=f"this {what}'s ({jobs} jobs)")
    return [r for r in found if r.limit in BUDGET_LIMITS]


# -- running a plan through the studio ---------------------------------------------------------
@dataclass(frozen=True)
class BatchCheck:
    plan: BatchPlan
    quote: BatchQuote
    refusals: tuple[gr_.Refusal, ...]
    requests: tuple[CostRequest, ...] = ()  # each job's cost inputs, in plan order
    outputs: tuple[Any, ...] = ()  # each job's video (workflows' poststeps.Output, or None)

    def shown(self) -> BatchShown:
        """What a quote line showing this check prices (app/studio/shown.py)."""
        return BatchShown(self.plan.seeds, self.requests, self.quote.dollars, self.quote.per_job)


@dataclass(frozen=True)
class BatchRun:
    plan: BatchPlan
    quote: BatchQuote
    rids: tuple[str, ...]  # the jobs sent, in plan order
    error: str = ""  # set when the batch stopped before its end: which jobs were not sent


class BatchService:
    """A plan through `Studio.prepare` / `Studio.submit` (their checks all apply)."""

    def __init__(self, studio: Any) -> None:
        self.studio = studio

    def max_jobs(self) -> int:
        return int(getattr(self.studio.settings, "batch_max", DEFAULT_MAX))

    def ids(self, text: str | None) -> tuple[str, ...]:
        """A batch's job ids (`parse_ids`), as many as a batch may have."""
        return parse_ids(text, self.max_jobs())

    def plan(
        self,
        values: FormValues,
        count: Any,
        seeds_text: Any,
        prompts_text: Any,
        drawn: Sequence[int] = (),
    ) -> BatchPlan:
        return plan(
            values,
            count=count,
            seeds_text=seeds_text,
            prompts_text=prompts_text,
            max_jobs=self.max_jobs(),
            drawn=drawn,
        )

    def check(
        self,
        batch: BatchPlan,
        user: str | None = None,
        what: str = "batch",
        part: str = "job",
        done: int = 0,
    ) -> BatchCheck:
        """Prepare (fill + quote) every job; the combined quote and every limit it breaks
        (`what` names the whole in the budget lines: a batch, a storyboard). A job's refusal
        says which it is: "(`part` k of n)", counting the `done` ones before it (a chain's
        segments already made)."""
        preps = []
        n = done + len(batch.jobs)
        for k, values in enumerate(batch.jobs, done + 1):
            try:
                preps.append(self.studio.prepare(values))
            except InputError as exc:
                if n == 1:
                    raise
                raise type(exc)(exc.field, f"{exc.reason} ({part} {k} of {n})") from None
        combined = combine([p.quote for p in preps])
        ops = self.studio.ops
        refusals: list[gr_.Refusal] = []
        if ops is not None:
            rows = ops.rows_today()  # read once for every job's check and the batch's budgets
            for prep in preps:
                for r in ops.refusals(prep, user, rows):
                    if r.limit not in BUDGET_LIMITS and r not in refusals:
                        refusals.append(r)
            refusals += budget_refusals(
                combined.dollars, combined.jobs, ops.limits, rows, user, what=what
            )
        outputs = tuple(getattr(p.filled, "output", None) for p in preps)
        return BatchCheck(
            batch, combined, tuple(refusals), tuple(p.request for p in preps), outputs
        )

    def submit(
        self, batch: BatchPlan, user: str | None = None, shown: BatchShown | None = None
    ) -> BatchRun:
        """Refuse the whole batch up front when a limit breaks, or when it is not the batch its
        quote line priced (`shown`, the page's; None for an API client); else send every job."""
        checked = self.check(batch, user)
        check_batch_shown(shown, checked.requests, checked.quote.dollars)
        if checked.refusals:
            raise gr_.GuardrailError(list(checked.refusals))
        checked = dataclasses.replace(checked, quote=held(shown, checked.quote))
        rids: list[str] = []
        for k, values in enumerate(batch.jobs, 1):
            line = shown.job(k - 1) if shown is not None else None  # each job at its price
            try:
                rids.append(self.studio.submit(values, user=user, shown=line))
            except Exception as exc:  # said in the result, never swallowed
                msg = user_message(exc, self.studio.settings.secret_values())
                if not rids:
                    raise
                n = len(batch.jobs)
                sent = "Job 1 was" if k == 2 else f"Jobs 1–{k - 1} were"
                unsent = f"job {n} was" if k == n else f"jobs {k}–{n} were"
                error = (
                    f"the batch stopped at job {k} of {n}: {msg}. {sent} sent and run; "
                    f"{unsent} NOT sent."
                )
                return BatchRun(batch, checked.quote, tuple(rids), error)
        return BatchRun(batch, checked.quote, tuple(rids))
