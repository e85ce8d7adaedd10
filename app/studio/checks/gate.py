"""The gate a job passes before `/run`: the operator's checks composed for the studio (limits and
budgets, the pre-flight model check), and the health panel the page shows beside them. No Gradio.

`Gate.from_settings(settings, endpoint=, ledger=, endpoint_key=)` takes the guardrails and
pre-flight settings the studio read once (`Gate.from_env(env, ...)` reads them itself) and
wires the inventory cache (data folder, keyed by the endpoint URL) to the endpoint client.
- `refusals(prepared, user, rows=None)`: every broken limit for a prepared job
  (app.studio.jobs.Prepared: its cost request and quote), today's spend taken from the ledger
  (`rows_today()`, or the rows the caller read once for several jobs, as a batch does). Used by the
  quote line.
- `hold(prepared, user)`: the limits and budgets alone; Studio calls it again inside the ledger
  transaction that writes the row (the check and the row are one atomic step).
- `before_run(prepared, user, uploads=None)`: raises `GuardrailError` (limits, budgets),
  `InputError` (an image input not uploaded) or `PreflightError` (missing model files / nodes), else
  returns the `/run` policy with `executionTimeout` and a note (e.g. "not checked against the
  endpoint's models: ...").
- `health_panel(cold)`: the health panel (one /health call per 2 s for all pages).
- `warm_up()`: fetch the inventory in the background at start, so the first job does not wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.endpoint import EndpointClient
from app.settings import Settings
from app.studio.checks import guardrails as gr_
from app.studio.checks.health import CachedHealth, ColdStart, HealthPanel
from app.studio.checks.inputs import check_inputs
from app.studio.checks.preflight import (
    InventoryCache,
    InventoryUnavailable,
    Preflight,
    PreflightSettings,
    fetch_inventory,
)
from app.studio.checks.today import TodayRows
from app.studio.cost import CostRequest, Quote
from app.studio.ledger import JobRow, Ledger


class Prepared(Protocol):
    """What the gate reads of a prepared job (app.studio.jobs.Prepared, which holds a Gate)."""

    @property
    def request(self) -> CostRequest: ...

    @property
    def quote(self) -> Quote: ...

    @property
    def filled(self) -> Any: ...  # workflows.fill.FilledWorkflow: its `workflow`


log = logging.getLogger("wanpod.gate")


@dataclass(frozen=True)
class Clearance:
    policy: dict[str, int]
    note: str = ""


def job_shape(prepared: Prepared, user: str | None = None) -> gr_.JobShape:
    req, q = prepared.request, prepared.quote
    return gr_.JobShape(
        width=int(req.width),
        height=int(req.height),
        frames=int(req.frames),
        steps=int(req.steps),
        dollars=float(q.dollars),
        user=user or None,
        seconds=float(q.execution_s),
    )


class Gate:
    def __init__(
        self,
        *,
        limits: gr_.Guardrails,
        ledger: Ledger,
        preflight: Preflight | None = None,
        health: CachedHealth | None = None,
    ) -> None:
        self.limits = limits
        self.ledger = ledger
        self.today = TodayRows(ledger)
        self.preflight = preflight
        self.health = health

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        endpoint: EndpointClient,
        ledger: Ledger,
        data_dir: Path,
        endpoint_key: str,
        secrets: tuple[str, ...] = (),
        limits: gr_.Guardrails | None = None,
        preflight_settings: PreflightSettings | None = None,
    ) -> Gate:
        settings = preflight_settings or PreflightSettings.from_env(env)

        def fetch(**kw: Any):
            return fetch_inventory(endpoint, poll_s=0.5, **kw)

        cache = InventoryCache(
            Path(data_dir) / "inventory.json",
            fetch,
            max_age_s=settings.max_age_s,
            endpoint_key=endpoint_key,
        )
        return cls(
            limits=limits or gr_.Guardrails.from_env(env),
            ledger=ledger,
            preflight=Preflight(cache, settings),
            health=CachedHealth(endpoint, ttl_s=2.0, secrets=secrets),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, endpoint: EndpointClient, ledger: Ledger, endpoint_key: str
    ) -> Gate:
        """From the studio's Settings (its guardrails / preflight sub-objects, read once)."""
        return cls.from_env(
            {},
            endpoint=endpoint,
            ledger=ledger,
            data_dir=settings.data_dir,
            endpoint_key=endpoint_key,
            secrets=settings.secret_values(),
            limits=settings.guardrails,
            preflight_settings=settings.preflight,
        )

    def rows_today(self) -> list[JobRow]:
        """The ledger rows created since 00:00 UTC with what today's spend is computed from
        (`Ledger.spend_since`: not their workflows, forms or progress), read again where they
        changed (app/studio/checks/today.py)."""
        return self.today.rows()

    def refusals(
        self, prepared: Prepared, user: str | None = None, rows: list[JobRow] | None = None
    ) -> list[gr_.Refusal]:
        """Every broken limit; `rows`: today's ledger rows when the caller already has them."""
        rows = self.rows_today() if rows is None else rows
        return gr_.check_rows(job_shape(prepared, user), self.limits, rows)

    def before_run(
        self, prepared: Prepared, user: str | None = None, uploads: Iterable[str] | None = None
    ) -> Clearance:
        """Raise when the job must not be sent; else the policy to send it with. `uploads`: the
        image names the job uploads (every LoadImage must read one of them)."""
        self.hold(prepared, user)
        note = ""
        if self.preflight is not None:
            note = self.preflight.check(prepared.filled.workflow, uploads).note
        elif uploads is not None:
            check_inputs(prepared.filled.workflow, uploads)
        q = prepared.quote
        return Clearance(gr_.policy(q.execution_s, q.cold_start_s, self.limits), note)

    def hold(self, prepared: Prepared, user: str | None = None) -> None:
        """Raise GuardrailError when the job breaks a limit or budget. Called again inside the
        atomic ledger step that writes the job's row (`Ledger.atomic()`), so the budget
        check and the row are one step: concurrent submits cannot both spend the last dollar."""
        refusals = self.refusals(prepared, user)
        if refusals:
            raise gr_.GuardrailError(refusals)

    def health_panel(self, cold: ColdStart | None = None) -> HealthPanel | None:
        """The endpoint's health (cached), its cold-start note priced by `cold` (the job on
        the page's quote line: ColdStart.from_quote)."""
        if self.health is None:
            return None
        return self.health.panel(cold)

    def warm_up(self) -> threading.Thread | None:
        """Fetch the endpoint inventory in the background (errors only logged)."""
        pre = self.preflight
        if pre is None or pre.settings.mode == "off":
            return None

        def run() -> None:
            try:
                pre.cache.get(timeout_s=pre.settings.timeout_s)
            except InventoryUnavailable as exc:
                log.info("pre-flight inventory not available yet: %s", exc)
            except Exception as exc:  # never kill the app for a warm-up
                log.warning("pre-flight inventory warm-up failed: %s", type(exc).__name__)

        thread = threading.Thread(target=run, name="wanpod-inventory", daemon=True)
        thread.start()
        return thread
