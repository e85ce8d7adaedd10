"""What the page's quote line showed, and the rule that Generate sends exactly that job.

The quote line and the job sent derive from the same validated values (`Studio.prepare`). The
page keeps what its quote line last showed as a `Shown` (a gr.State: the cost model's inputs, or
the refusal it showed); `Studio.submit` prepares the job again from the values Generate sent and
refuses it unless its cost inputs are the ones on the quote line. So a value the browser changed
without a new quote (a slider clamped on Enter, a field edited while the quote was on its way) is
never charged at a price nobody saw, and Generate is refused while the quote line shows an error.
An API client that never saw a quote line passes no `Shown`: its job is checked as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from app.errors import InputError
from app.studio.cost import CostRequest, Quote


@dataclass(frozen=True)
class Shown:
    """The quote line: the job's cost inputs and quote, or the refusal it showed instead."""

    request: CostRequest | None = None
    quote: Quote | None = None
    problem: str = ""  # the refusal on the quote line ("steps: ...")
    field: str = ""  # the FormValues field it names ("" when none)

    @property
    def ok(self) -> bool:
        return self.request is not None and not self.problem


def check_shown(shown: Shown | None, request: CostRequest, quote: Quote) -> None:
    """Refuse a job that is not the one on the quote line (nothing shown: nothing to compare)."""
    if shown is None:
        return
    if not shown.ok:
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


def _diff(a: CostRequest | None, b: CostRequest) -> str:
    if a is None:
        return "no quote"
    names = [f.name for f in fields(CostRequest)]  # post-steps included
    return ", ".join(
        f"{n} {getattr(b, n)} instead of {getattr(a, n)}"
        for n in names
        if getattr(a, n) != getattr(b, n)
    )
