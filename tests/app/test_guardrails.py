"""Guardrail arithmetic: config from YAML and env, spend from real ledger rows, one refusal per
broken limit, and the execution timeout sent as policy.executionTimeout."""

from __future__ import annotations

import math
import time

import pytest

from app.errors import ConfigError, StudioError, user_message
from app.settings import PRICES_PATH
from app.studio import cost
from app.studio.checks.guardrails import (
    RUNPOD_TIMEOUT_MAX_MS,
    RUNPOD_TIMEOUT_MIN_MS,
    GuardrailError,
    Guardrails,
    JobShape,
    check,
    check_rows,
    day_start,
    enforce,
    execution_timeout_ms,
    policy,
    row_dollars,
    spend,
)
from app.studio.cost import Actual, Quote
from app.studio.ledger import Ledger


def shape(**kw) -> JobShape:
    base = dict(width=832, height=480, frames=81, steps=4, dollars=0.05, user=None, seconds=40.0)
    return JobShape(**{**base, **kw})


# -- config ---------------------------------------------------------------------------------------
def test_defaults_come_from_the_shipped_yaml():
    g = Guardrails.from_env({})
    assert (g.daily_usd, g.user_daily_usd, g.job_usd) == (25.0, 5.0, 2.0)
    assert (g.max_width, g.max_height, g.max_frames, g.max_steps) == (1280, 1280, 241, 60)
    assert (g.factor, g.floor_s, g.ceiling_s) == (3.0, 300.0, 7200.0)


def test_shipped_defaults_refuse_nothing_the_catalog_offers():
    from workflows.catalog import load_catalog

    g = Guardrails.from_env({})
    for t in load_catalog():
        for p in t.presets:
            frames, steps = t.params["frames"].max, t.params["steps"].max
            job = shape(width=p.width, height=p.height, frames=frames, steps=steps)
            assert [r.limit for r in check(job, g)] == []


def test_env_overrides_yaml_and_off_means_no_limit(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("budget:\n  daily_usd: 3\n  job_usd: off\nlimits:\n  max_steps: 8\n")
    g = Guardrails.from_env(
        {"WANPOD_GUARDRAILS": str(path), "WANPOD_MAX_STEPS": "6", "WANPOD_BUDGET_DAILY_USD": "off"}
    )
    assert g.daily_usd is None and g.job_usd is None
    assert g.max_steps == 6  # env beats yaml
    assert g.max_width == 1280  # not in the file: built-in default
    assert g.source == str(path)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"WANPOD_MAX_WIDTH": "wide"}, ["WANPOD_MAX_WIDTH", "'wide'", "whole number"]),
        ({"WANPOD_MAX_FRAMES": "0"}, ["WANPOD_MAX_FRAMES", "out of range", ">= 1"]),
        ({"WANPOD_BUDGET_DAILY_USD": "-1"}, ["WANPOD_BUDGET_DAILY_USD", "out of range"]),
        ({"WANPOD_TIMEOUT_FACTOR": "off"}, ["WANPOD_TIMEOUT_FACTOR", "needs a value"]),
        ({"WANPOD_TIMEOUT_FACTOR": "nan"}, ["WANPOD_TIMEOUT_FACTOR", "out of range"]),
        ({"WANPOD_GUARDRAILS": "/nope.yaml"}, ["WANPOD_GUARDRAILS", "not a file"]),
        (
            {"WANPOD_TIMEOUT_FLOOR_S": "900", "WANPOD_TIMEOUT_CEILING_S": "600"},
            ["ceiling_s=600", "below", "floor_s=900"],
        ),
    ],
)
def test_bad_config_names_the_variable_and_what_is_allowed(env, words):
    with pytest.raises(ConfigError) as info:
        Guardrails.from_env(env)
    for word in words:
        assert word in str(info.value)


def test_unknown_yaml_key_is_refused_with_the_known_ones(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("budget:\n  daily_dollars: 3\n")
    with pytest.raises(ConfigError) as info:
        Guardrails.from_env({"WANPOD_GUARDRAILS": str(path)})
    assert "budget.daily_dollars" in str(info.value)
    assert "budget.daily_usd" in str(info.value)


# -- limits ---------------------------------------------------------------------------------------
def test_one_refusal_per_broken_limit_naming_value_and_allowed():
    g = Guardrails(max_width=832, max_height=832, max_frames=81, max_steps=8, job_usd=0.5)
    got = check(shape(width=1280, height=720, frames=121, steps=20, dollars=0.75), g)
    assert [r.limit for r in got] == ["width", "frames", "steps", "job cost"]
    text = [str(r) for r in got]
    assert text[0] == "width: 1280 px; allowed: at most 832 px (set by WANPOD_MAX_WIDTH)"
    assert text[1] == "frames: 121; allowed: at most 81 (set by WANPOD_MAX_FRAMES)"
    assert "$0.7500" in text[3] and "at most $0.5000 per job" in text[3]


def test_values_at_the_limit_pass_one_beyond_fails():
    g = Guardrails(max_width=832, max_height=480, max_frames=81, max_steps=4, job_usd=None)
    assert check(shape(), g) == []
    assert [r.limit for r in check(shape(steps=5), g)] == ["steps"]
    assert [r.limit for r in check(shape(height=481), g)] == ["height"]


def test_job_longer_than_the_timeout_ceiling_is_refused():
    g = Guardrails(ceiling_s=600)
    got = check(shape(seconds=601.2), g)
    assert [r.limit for r in got] == ["execution time"]
    assert "602 s" in str(got[0]) and "600 s" in str(got[0])


def test_budgets_count_spend_plus_this_job():
    g = Guardrails(daily_usd=10.0, user_daily_usd=2.0)
    assert check(shape(dollars=1.0, user="ann"), g, spent_today=9.0, spent_by_user=1.0) == []
    got = check(shape(dollars=1.01, user="ann"), g, spent_today=9.0, spent_by_user=1.0)
    assert [r.limit for r in got] == ["daily budget", "your daily budget"]
    assert "$9.00 spent today (all users) + this job's $1.01 = $10.01" in str(got[0])
    assert "$10.00 per UTC day ($1.00 left" in str(got[0])
    assert "user ann" in str(got[1]) and "$2.00 per UTC day" in str(got[1])


def test_per_user_budget_only_applies_to_signed_in_users():
    g = Guardrails(daily_usd=None, user_daily_usd=1.0, job_usd=None)
    assert check(shape(dollars=5.0, user=None), g, spent_by_user=99) == []


def test_enforce_raises_a_studio_error_with_every_line():
    g = Guardrails(max_steps=4, daily_usd=0.01)
    with pytest.raises(GuardrailError) as info:
        enforce(shape(steps=6, dollars=0.05), g)
    assert isinstance(info.value, StudioError)
    lines = user_message(info.value).splitlines()
    assert lines[0] == "refused by the studio's limits:"
    assert [ln.split(":")[0] for ln in lines[1:]] == ["steps", "daily budget"]


# -- spend from ledger rows ---------------------------------------------------------------------
@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite3")


def add(ledger: Ledger, state: str, quote: float, user=None, **fields) -> str:
    rid = ledger.create(
        template="t2v_14b",
        mode="turbo",
        params={"seed": 1, **({"user": user} if user else {})},
        workflow={},
        quote=Quote(gpu="H100 PRO", per_s=0.001, execution_s=quote / 0.001, dollars=quote),
        gpu="H100 PRO",
    )
    ledger.update(rid, state=state, **fields)
    return rid


def test_spend_counts_actual_cost_reserves_live_quotes_and_skips_other_days(ledger):
    add(ledger, "COMPLETED", 0.50, cost=Actual(300, 0.30))  # actual, not quote
    add(ledger, "IN_PROGRESS", 0.20)  # reserved
    add(ledger, "SUBMITTING", 0.10)  # reserved
    add(ledger, "FAILED", 0.40, execution_ms=12_001)  # billed 13 s at the quoted price
    add(ledger, "CANCELLED", 0.40, cost=Actual(0, 0.05))  # partial cost
    add(ledger, "LOST", 0.90)  # may have run (no answer to /run, or forgotten): its quote counts
    old = add(ledger, "COMPLETED", 5.0, cost=Actual(0, 5.0))
    ledger.update(old, created_at=day_start() - 1)  # yesterday
    rows = ledger.recent(100)
    assert math.isclose(spend(rows, since=day_start()), 0.30 + 0.20 + 0.10 + 0.013 + 0.05 + 0.90)
    assert math.isclose(spend(rows, since=0), 0.30 + 0.20 + 0.10 + 0.013 + 0.05 + 0.90 + 5.0)


def test_per_user_spend_and_check_rows(ledger):
    add(ledger, "COMPLETED", 1.0, user="ann", cost=Actual(0, 1.5))
    add(ledger, "IN_QUEUE", 0.5, user="ann")
    add(ledger, "COMPLETED", 1.0, user="bob", cost=Actual(0, 3.0))
    rows = ledger.recent(100)
    assert spend(rows, since=day_start(), user="ann") == 2.0
    assert spend(rows, since=day_start(), user="bob") == 3.0
    g = Guardrails(daily_usd=6.0, user_daily_usd=2.5)
    assert [r.limit for r in check_rows(shape(dollars=0.6, user="ann"), g, rows)] == [
        "your daily budget"
    ]
    assert [r.limit for r in check_rows(shape(dollars=0.6, user="bob"), g, rows)] == [
        "your daily budget",
    ]
    assert check_rows(shape(dollars=0.4, user="ann"), g, rows) == []
    assert [r.limit for r in check_rows(shape(dollars=1.1), g, rows)] == ["daily budget"]


def test_the_budgets_narrow_read_spends_what_the_whole_rows_spend(ledger):
    """Ledger.spend_since (read at every submit) skips workflows, forms and progress, yet every
    state's dollars and every user's share come out as from the whole rows."""
    add(ledger, "COMPLETED", 1.0, user="ann", cost=Actual(0, 1.5))
    add(ledger, "IN_QUEUE", 0.5, user="ann")
    add(ledger, "FAILED", 0.40, user="bob", execution_ms=12_001)
    add(ledger, "LOST", 0.90)
    old = add(ledger, "COMPLETED", 5.0, cost=Actual(0, 5.0))
    ledger.update(old, created_at=day_start() - 1)
    whole, narrow = ledger.since(day_start()), ledger.spend_since(day_start())
    assert [r.id for r in narrow] == [r.id for r in whole] and len(narrow) == 4
    assert all(r.workflow == {} and r.form is None for r in narrow)
    for user in (None, "ann", "bob"):
        expected = spend(whole, since=day_start(), user=user)
        assert spend(narrow, since=day_start(), user=user) == expected > 0


def test_day_start_is_utc_midnight():
    noon = 1_700_000_000 - 1_700_000_000 % 86400 + 43200
    assert day_start(noon) == noon - 43200
    assert day_start(noon - 43200) == noon - 43200
    assert day_start() <= time.time() < day_start() + 86400


def test_row_dollars_of_a_live_row_is_its_quote(ledger):
    rid = add(ledger, "IN_QUEUE", 0.07)
    assert row_dollars(ledger.get(rid)) == 0.07


# -- execution timeout --------------------------------------------------------------------------
def test_timeout_is_factor_times_quote_plus_cold_start_within_floor_and_ceiling():
    g = Guardrails(factor=3.0, floor_s=60, ceiling_s=3600)
    assert execution_timeout_ms(100, 80, g) == 540_000
    assert execution_timeout_ms(5, 5, g) == 60_000  # floor
    assert execution_timeout_ms(5000, 80, g) == 3_600_000  # ceiling
    assert policy(100, 80, g) == {"executionTimeout": 540_000}


def test_timeout_stays_inside_runpods_range():
    assert execution_timeout_ms(0, 0, Guardrails(floor_s=5, ceiling_s=5)) == RUNPOD_TIMEOUT_MIN_MS
    huge = Guardrails(floor_s=10**7, ceiling_s=10**8)
    assert execution_timeout_ms(1, 1, huge) == RUNPOD_TIMEOUT_MAX_MS == 604_800_000


def test_timeout_of_a_real_quote_covers_the_quote_and_its_cold_start():
    prices = cost.load_prices(PRICES_PATH)
    req = cost.CostRequest("t2v_14b", "quality", 1280, 720, 81, 20, 3.5)
    q = cost.quote(req, "H100 PRO", prices)
    g = Guardrails.from_env({})
    ms = execution_timeout_ms(q.execution_s, q.cold_start_s, g)
    assert ms >= (q.execution_s + q.cold_start_s) * 1000 * g.factor - 1
    assert ms <= g.ceiling_s * 1000
