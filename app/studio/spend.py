"""The RunPod-mode line under Generate: which endpoint and GPU price the quotes use, and what
was spent today (UTC) against the daily budget, and by the signed-in user against theirs (pure,
from settings, prices and ledger rows)."""

from __future__ import annotations

import html
from collections.abc import Iterable

from app.studio.checks import guardrails as gr_
from app.studio.cost import Prices
from app.studio.ledger import JobRow


def budget_words(cap: float | None, per_user: bool = False) -> str:
    """How the spend line says a budget (all users', or the user's own): its amount, that none
    is set, or that $0 refuses every job."""
    name = "per-user daily budget" if per_user else "daily budget"
    if cap is None:
        return f"(no {name} set)"
    if cap == 0:
        return f"(the {name} is $0: every job is refused)"
    return f"of {'your' if per_user else 'the'} {gr_.usd(cap)} daily budget"


def spend_line(
    endpoint_id: str,
    gpu: str,
    prices: Prices,
    rows: Iterable[JobRow],
    daily_usd: float | None,
    now: float | None = None,
    user: str | None = None,
    user_daily_usd: float | None = None,
) -> str:
    """E.g. "Endpoint abc · H100 PRO at $0.00116/s · today (UTC): $0.0123 spent by all users of
    the $25.00 daily budget; you: $0.0040 of your $5.00 daily budget", as HTML (the page paints
    it, app/ui/health_route.py). `user`: the signed-in user, whose own spend and budget the line
    adds (the budget that usually refuses first)."""
    rows = list(rows)
    since = gr_.day_start(now)
    spent = gr_.spend(rows, since=since)
    line = (
        f"<b>Endpoint</b> <code>{html.escape(endpoint_id)}</code> · <b>{html.escape(gpu)}</b> at "
        f"${prices.price(gpu):.5f}/s · <b>today (UTC):</b> ${spent:.4f} spent by all users "
        f"{budget_words(daily_usd)}"
    )
    if user:
        mine = gr_.spend(rows, since=since, user=user)
        line += f"; you: ${mine:.4f} {budget_words(user_daily_usd, per_user=True)}"
    return line
