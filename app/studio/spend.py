"""The RunPod-mode line under Generate: which endpoint and GPU price the quotes use, and what
was spent today (UTC) against the daily budget (pure, from settings, prices and ledger rows)."""

from __future__ import annotations

import html
from collections.abc import Iterable

from app.studio.checks import guardrails as gr_
from app.studio.cost import Prices
from app.studio.ledger import JobRow


def spend_line(
    endpoint_id: str,
    gpu: str,
    prices: Prices,
    rows: Iterable[JobRow],
    daily_usd: float | None,
    now: float | None = None,
) -> str:
    """E.g. "Endpoint abc · H100 PRO at $0.00116/s · today $0.0123 of the $25.00 daily budget",
    as HTML (the page paints it, app/ui/health_route.py)."""
    spent = gr_.spend(rows, since=gr_.day_start(now))
    budget = f"of the ${daily_usd:.2f} daily budget" if daily_usd else "(no daily budget set)"
    return (
        f"<b>Endpoint</b> <code>{html.escape(endpoint_id)}</code> · <b>{html.escape(gpu)}</b> at "
        f"${prices.price(gpu):.5f}/s · <b>today (UTC):</b> ${spent:.4f} spent {budget}"
    )
