"""app/studio/checks/gate.py: the checks the studio runs before /run, on a real ledger and real
quotes."""

from __future__ import annotations

import pytest

from app.settings import PRICES_PATH
from app.studio import cost
from app.studio.checks.gate import Gate, job_shape
from app.studio.checks.guardrails import GuardrailError, Guardrails, execution_timeout_ms
from app.studio.checks.preflight import (
    InventoryCache,
    InventoryUnavailable,
    Preflight,
    PreflightError,
    PreflightSettings,
)
from app.studio.jobs import Prepared
from app.studio.ledger import Ledger
from tests.app.test_preflight import FULL, Fetcher, without
from workflows.fill import fill

PRICES = cost.load_prices(PRICES_PATH)


def prepared(mode: str = "turbo", **params) -> Prepared:
    filled = fill("t2v_14b", {"prompt": "x", "mode": mode, **params})
    req = cost.request_from_workflow("t2v_14b", mode, filled.workflow)
    return Prepared(
        None, "t2v_14b", dict(filled.params), filled, req, cost.quote(req, "A100", PRICES)
    )


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite3")


def ops(ledger, tmp_path, fetch=None, mode="best-effort", **limits) -> Gate:
    cache = InventoryCache(tmp_path / "inv.json", fetch or Fetcher(FULL))
    return Gate(
        limits=Guardrails(**limits),
        ledger=ledger,
        preflight=Preflight(cache, PreflightSettings(mode=mode)),
    )


def test_job_shape_comes_from_the_filled_workflow_and_quote():
    p = prepared("quality", steps=12, resolution="720p landscape")
    shape = job_shape(p, "ann")
    assert (shape.width, shape.height, shape.steps, shape.user) == (1280, 720, 12, "ann")
    assert shape.frames == p.filled.params["frames"] and shape.dollars == p.quote.dollars


def test_clear_job_gets_the_timeout_policy(ledger, tmp_path):
    p = prepared()
    cleared = ops(ledger, tmp_path).before_run(p)
    want = execution_timeout_ms(p.quote.execution_s, p.quote.cold_start_s, Guardrails())
    assert cleared.policy == {"executionTimeout": want} and cleared.note == ""


def test_spent_budget_refuses_before_anything_is_sent(ledger, tmp_path):
    rid = ledger.create(
        template="t2v_14b",
        mode="turbo",
        params={},
        workflow={},
        quote=cost.Quote("A100", 0.001, 1000, 1.0),
        gpu="A100",
    )
    ledger.update(rid, state="COMPLETED", cost=cost.Actual(0, 0.99))
    fetch = Fetcher()  # would fail if asked: the budget refuses first
    with pytest.raises(GuardrailError) as info:
        ops(ledger, tmp_path, fetch, daily_usd=1.0).before_run(prepared())
    assert "daily budget: $0.9900 spent today" in str(info.value)
    assert fetch.calls == []
    assert [r.limit for r in ops(ledger, tmp_path, daily_usd=1.0).refusals(prepared())] == [
        "daily budget"
    ]


def test_missing_file_refuses_and_unknown_inventory_passes_with_a_note(ledger, tmp_path):
    lacking = ops(ledger, tmp_path, Fetcher(without("vae", "wan_2.1_vae.safetensors")))
    with pytest.raises(PreflightError, match=r"wan_2\.1_vae\.safetensors → models/vae/"):
        lacking.before_run(prepared())
    unknown = ops(ledger, tmp_path / "b", Fetcher(InventoryUnavailable("ended FAILED: x")))
    cleared = unknown.before_run(prepared())
    assert "not checked against the endpoint's models" in cleared.note
    assert cleared.policy["executionTimeout"] >= 5000


def test_warm_up_fills_the_cache_in_the_background(ledger, tmp_path):
    fetch = Fetcher(FULL)
    o = ops(ledger, tmp_path, fetch)
    o.warm_up().join(5)
    assert fetch.calls == [None] and (tmp_path / "inv.json").exists()
    o.before_run(prepared())
    assert fetch.calls == [None]  # served from the cache


def test_todays_rows_for_the_budgets_are_read_without_their_workflows(ledger, tmp_path):
    """Every submit reads the whole day's rows, inside the ledger's write transaction: the
    large filled workflows stay unread there, the spend is the same."""
    p = prepared()
    quote = cost.Quote("A100", 0.001, 1000, 1.0)
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, gpu="A100",
                        workflow=p.filled.workflow, quote=quote)  # fmt: skip
    ledger.update(rid, state="COMPLETED", cost=cost.Actual(0, 0.99))
    gate = ops(ledger, tmp_path, daily_usd=1.0)
    (row,) = gate.rows_today()
    assert row.id == rid and row.workflow == {} and ledger.get(rid).workflow == p.filled.workflow
    assert [r.limit for r in gate.refusals(p)] == ["daily budget"]
