"""What the page's quote line showed, and the rule that Generate sends exactly that job.

The quote line and the job sent derive from the same validated values (`Studio.prepare`). The
page keeps what its quote line last showed as a `Shown` (a gr.State: the cost model's inputs, or
the refusal it showed); `Studio.submit` prepares the job again from the values Generate sent and
refuses it unless its cost inputs are the ones on the quote line, and the job it sends keeps the
price that line showed (a job that ended meanwhile may have moved the calibration a little). So a
value the browser changed without a new quote (a slider clamped on Enter, a field edited while
the quote was on its way) is never charged at a price nobody saw, and Generate is refused while
the quote line shows no price.
An API client that never saw a quote line passes no `Shown`: its job is checked as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from app.errors import InputError
from app.studio.cost import CostRequest, Quote


@dataclass(frozen=True)
class Shown:
    """The quote line: the job's cost inputs and quote, or the refusal it showed instead, or
    both (a form priced while its prompt alone is refused: app/ui/callbacks.py)."""

    request: CostRequest | None = None
    quote: Quote | None = None
    problem: str = ""  # the refusal on the quote line ("steps: ...")
    field: str = ""  # the FormValues field it names ("" when none)


def check_shown(shown: Shown | None, request: CostRequest, quote: Quote) -> None:
    """Refuse a job that is not the one on the quote line (nothing shown: nothing to compare).
    A line that priced the job beside a refusal (a form without its prompt yet) stands for
    the price: the job Generate sends was validated again as it is, and is sent at that price."""
    if shown is None:
        return
    if shown.request is None:
        raise InputError(
            shown.field or "form",
            f"the quote line shows a refusal ({shown.problem}); allowed: a job the quote line "
            "prices — correct the field, then Generate",
        )
    if shown.request != request:
        was = f"${shown.quote.dollars:.4f}" if shown.quote else "another job"
        raise InputError(
            "quote",
            f"the form sent a different job ({_diff(shown.request, request)}) than the quote "
            f"line priced ({was}); this one is ${quote.dollars:.4f}. Nothing was sent: check "
            "the quote line, then Generate again",
        )


@dataclass(frozen=True)
class BatchShown:
    """A batch's quote line: the seeds it drew (Generate batch runs those) and the cost inputs
    of the jobs it priced, in plan order, with their total; or what it showed instead of a
    price (`problem`: its hint or refusal), for which its button is refused."""

    seeds: tuple[int, ...] = ()
    requests: tuple[CostRequest, ...] = ()
    dollars: float = 0.0
    quotes: tuple[Quote, ...] = ()  # each job's (or chain segment's) quote, in plan order
    problem: str = ""  # the line shows no price, but this ("" when it shows one)

    def job(self, k: int) -> Shown | None:
        """The quote line of the batch's job `k` (0-based), as a job's own line would show it."""
        if k < len(self.requests) and k < len(self.quotes):
            return Shown(self.requests[k], self.quotes[k])
        return None


def priced(state: object) -> BatchShown | None:
    """The BatchShown a page's State holds (None: nothing priced there yet, or an API client,
    which has no quote line: its batch is checked as it is)."""
    return state if isinstance(state, BatchShown) else None


def check_batch_shown(
    shown: BatchShown | None,
    requests: tuple[CostRequest, ...],
    dollars: float,
    what: str = "batch",
) -> None:
    """Refuse a batch (`what`: or a storyboard) that is not the one on its quote line, or whose
    line shows no price, as `check_shown` does a job (no line at all, an API client's: nothing
    to compare; it is checked as it is)."""
    if shown is not None and shown.problem and not shown.requests:
        raise InputError(
            f"{what} quote",
            f"its quote line shows no price ({shown.problem}); allowed: a {what} its quote "
            "line prices — correct what it names, wait for the price, then press the button again",
        )
    if shown is None or not shown.requests or shown.requests == requests:
        return
    if len(shown.requests) != len(requests):
        diff = f"{len(requests)} jobs instead of {len(shown.requests)}"
    else:
        pairs = enumerate(zip(shown.requests, requests, strict=True), 1)
        k, (a, b) = next((k, pair) for k, pair in pairs if pair[0] != pair[1])
        diff = f"job {k}: {_diff(a, b)}"
    raise InputError(
        f"{what} quote",
        f"the form sent a different {what} ({diff}) than its quote line priced "
        f"(${shown.dollars:.4f}); this one is ${dollars:.4f}. Nothing was sent: check the "
        "quote line, then press the button again",
    )


def _diff(a: CostRequest | None, b: CostRequest) -> str:
    if a is None:
        return "no quote"
    names = [f.name for f in fields(CostRequest)]  # post-steps included
    return ", ".join(
        f"{n} {getattr(b, n)} instead of {getattr(a, n)}"
        for n in names
        if getattr(a, n) != getattr(b, n)
    )
