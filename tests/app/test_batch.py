"""Batch planning, the combined quote's arithmetic, the batch budget check and the draft → final
size rule: pure functions (app/studio/batch.py, app/studio/promote.py), no server."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.endpoint.states import JobState
from app.errors import ConfigError, InputError, SubmitError
from app.settings import PRICES_PATH, Settings
from app.studio import batch, cost
from app.studio.checks import guardrails
from app.studio.cost import Actual
from app.studio.forms import MAX_SEED, FormValues
from app.studio.forms_catalog import load_forms
from app.studio.ledger import JobRow
from app.studio.owners import ANYONE
from app.studio.promote import larger_preset, promote
from app.studio.reuse import asked

BASE = FormValues(pipeline="t2v_14b", prompt="a fox", resolution="480p square", seed=100)


def test_count_of_seeds_with_a_fixed_seed_counts_up_from_it():
    p = batch.plan(dataclass_replace(BASE, randomize=False), count=3)
    assert p.seeds == (100, 101, 102)
    assert [(j.prompt, j.seed, j.randomize) for j in p.jobs] == [
        ("a fox", 100, False),
        ("a fox", 101, False),
        ("a fox", 102, False),
    ]
    assert p.describe() == "3 jobs (1 prompt × 3 seeds: 100, 101, 102)"


def test_random_seeds_are_distinct_in_range_and_fixed_per_job():
    p = batch.plan(BASE, count=5, rng=random.Random(7))
    assert len(set(p.seeds)) == 5 and all(0 <= s <= MAX_SEED for s in p.seeds)
    assert all(not j.randomize for j in p.jobs)
    assert batch.plan(BASE, count=5, rng=random.Random(8)).seeds != p.seeds


def test_prompts_times_seeds_share_the_same_seeds():
    p = batch.plan(
        dataclass_replace(BASE, randomize=False),
        count=2,
        prompts_text="a cat\n\n   a dog on a boat  \n",
    )
    assert [(j.prompt, j.seed) for j in p.jobs] == [
        ("a cat", 100),
        ("a cat", 101),
        ("a dog on a boat", 100),
        ("a dog on a boat", 101),
    ]
    assert p.prompts == ("a cat", "a dog on a boat")
    # everything else of the form stays as it was
    assert {(j.pipeline, j.resolution, j.mode) for j in p.jobs} == {
        ("t2v_14b", "480p square", "turbo")
    }


def test_an_explicit_seed_list_replaces_the_count():
    p = batch.plan(BASE, count=9, seeds_text="7, 8;9  10")
    assert p.seeds == (7, 8, 9, 10) and len(p.jobs) == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1, x", r"^batch seeds: 'x' is not a whole number; allowed: whole numbers 0\.\."),
        ("-1", r"^batch seeds: -1 is out of range"),
        (str(MAX_SEED + 1), r"^batch seeds: 9007199254740992 is out of range"),
        ("5 6 5", r"^batch seeds: 5 is listed twice"),
    ],
)
def test_bad_seed_lists_are_refused_naming_the_field(text, expected):
    with pytest.raises(InputError, match=expected):
        batch.plan(BASE, seeds_text=text)


@pytest.mark.parametrize("count", [0, -2, 2.5, "many"])
def test_bad_counts_are_refused_naming_the_setting(count):
    with pytest.raises(InputError, match=r"^number of seeds: .*allowed: a whole number 1\.\.16 "):
        batch.plan(BASE, count=count)


def test_a_batch_over_the_maximum_is_refused_before_anything():
    with pytest.raises(
        InputError,
        match=r"^batch: 3 prompts × 2 seeds = 6 jobs; allowed: at most 5 jobs per batch "
        r"\(set by WANPOD_BATCH_MAX\)",
    ):
        batch.plan(BASE, count=2, prompts_text="a\nb\nc", max_jobs=5)
    assert len(batch.plan(BASE, count=5, max_jobs=5).jobs) == 5


def test_the_maximum_is_a_documented_setting():
    assert Settings.from_env({}).batch_max == 16
    assert Settings.from_env({"WANPOD_BATCH_MAX": "4"}).batch_max == 4
    for bad in ("0", "x", "1000"):
        with pytest.raises(ConfigError, match="WANPOD_BATCH_MAX"):
            Settings.from_env({"WANPOD_BATCH_MAX": bad})


# -- the combined quote --------------------------------------------------------------------
def quotes(*steps: int) -> list[cost.Quote]:
    prices = cost.load_prices(PRICES_PATH)
    return [
        cost.quote(cost.CostRequest("t2v_14b", "turbo", 640, 640, 33, s, 1.0), "H100 PRO", prices)
        for s in steps
    ]


def test_combined_quote_adds_each_jobs_billed_seconds():
    qs = quotes(4, 4, 4)
    bq = batch.combine(qs)
    per_s = qs[0].per_s
    each = math.ceil(qs[0].execution_s)
    assert bq.jobs == 3 and bq.gpu_s == 3 * each
    assert bq.dollars == pytest.approx(3 * each * per_s)
    assert bq.dollars == pytest.approx(sum(q.dollars for q in qs))
    assert bq.job_dollars == (qs[0].dollars, qs[0].dollars)
    assert bq.cold_start_s == qs[0].cold_start_s  # apart, not in the total
    text = bq.summary()
    assert (
        f"≈ 3 × {each} GPU s = {3 * each} GPU s on H100 PRO = ${bq.dollars:.4f} for the batch"
        in text
    )
    assert f"${qs[0].dollars:.4f} per job" in text
    assert f"cold start +{math.ceil(qs[0].cold_start_s)} s = +${qs[0].cold_dollars:.4f}" in text
    assert "not included" in text


def test_combined_quote_of_unequal_jobs_gives_the_range():
    qs = quotes(4, 8)
    bq = batch.combine(qs)
    assert bq.gpu_s == math.ceil(qs[0].execution_s) + math.ceil(qs[1].execution_s)
    assert qs[0].dollars < qs[1].dollars
    assert f"${qs[0].dollars:.4f}–${qs[1].dollars:.4f} per job" in bq.summary()
    # a chain's line names its parts as segments (it said "per job")
    chain = bq.summary("the chain", "segment")
    assert "2 segments of" in chain and "per segment;" in chain and "job" not in chain, chain
    with pytest.raises(InputError, match=r"^batch: has no jobs"):
        batch.combine([])


# -- the batch budget ----------------------------------------------------------------------
def done_row(created_at: float, dollars: float, user: str | None = None) -> JobRow:
    """A finished ledger row that cost `dollars` (what the budgets add up)."""
    return JobRow(
        id="wp-done", job_id="j", created_at=created_at, updated_at=created_at,
        submitted_at=created_at, finished_at=created_at, template="t2v_14b", mode="turbo",
        params={}, workflow={}, quote=None, gpu="H100 PRO", state=JobState.COMPLETED,
        cost=Actual(billed_s=0, dollars=dollars), user=user,
    )  # fmt: skip


def test_budgets_are_checked_against_the_whole_batch():
    now = time.time()
    limits = guardrails.Guardrails(daily_usd=1.0, user_daily_usd=0.5, job_usd=0.2)
    rows = [done_row(now, 0.6), done_row(now, 0.1, user="ann")]
    # each job (0.15) is under every limit; three of them break the daily budget (0.7 + 0.45)
    found = batch.budget_refusals(0.45, 3, limits, rows, None, now)
    assert [r.limit for r in found] == ["daily budget"]
    assert found[0].value == (
        "$0.7000 spent today (all users) + this batch's (3 jobs) $0.4500 = $1.15"
    )
    assert found[0].setting == "WANPOD_BUDGET_DAILY_USD"
    found = batch.budget_refusals(0.45, 3, limits, rows, "ann", now)  # ann: 0.1 + 0.45 > 0.5
    assert [r.limit for r in found] == ["daily budget", "your daily budget"]
    assert batch.budget_refusals(0.3, 2, limits, rows, "ann", now) == []
    # the single-job limit is not applied to the total
    assert batch.budget_refusals(0.3, 2, limits, [], None, now) == []


# -- draft -> final: the next bigger preset --------------------------------------------------
@pytest.mark.parametrize(
    ("pipeline", "label", "expected"),
    [
        ("t2v_14b", "480p square", "720p square"),
        ("t2v_14b", "480p landscape", "720p landscape"),
        ("i2v_14b", "480p portrait", "720p portrait"),
        ("t2v_14b", "720p landscape", None),
        ("ti2v_5b", "480p landscape", "720p landscape"),
    ],
)
def test_the_final_size_is_the_next_bigger_preset_in_the_same_orientation(
    pipeline, label, expected
):
    forms, _ = load_forms()
    bigger = larger_preset(forms[pipeline], label)
    assert (bigger.label if bigger else None) == expected


def dataclass_replace(values: FormValues, **kw: Any) -> FormValues:
    import dataclasses

    return dataclasses.replace(values, **kw)


# -- a batch that stops half-way says so ---------------------------------------------------
class Refuses:
    """A stand-in for the Studio's two public methods a batch uses: the endpoint takes the
    first `takes` jobs and refuses the next one."""

    def __init__(self, takes: int) -> None:
        self.settings = Settings.from_env({})
        self.ops = None
        self.takes = takes
        self.sent: list[FormValues] = []

    def prepare(self, values: FormValues) -> Any:
        @dataclass
        class Prepared:
            quote: cost.Quote
            request: cost.CostRequest
            filled: Any = None

        return Prepared(quotes(4)[0], cost.CostRequest("t2v_14b", "turbo", 832, 480, 81, 4, 1.0))

    def submit(self, values: FormValues, user: str | None = None, **_: Any) -> str:
        if len(self.sent) >= self.takes:
            raise SubmitError("the endpoint did not take the job: injected 500")
        self.sent.append(values)
        return f"wp-{len(self.sent)}"


def test_a_batch_stopped_half_way_names_what_was_and_was_not_sent():
    studio = Refuses(takes=2)
    run = batch.BatchService(studio).submit(batch.plan(BASE, count=4))
    assert run.rids == ("wp-1", "wp-2") and len(studio.sent) == 2
    assert run.error == (
        "the batch stopped at job 3 of 4: the endpoint did not take the job: injected 500. "
        "Jobs 1–2 were sent and run; jobs 3–4 were NOT sent."
    )
    last = batch.BatchService(Refuses(takes=1)).submit(batch.plan(BASE, count=2)).error
    assert last.endswith("injected 500. Job 1 was sent and run; job 2 was NOT sent.")
    with pytest.raises(SubmitError, match="injected 500"):  # the first job refused: an error
        batch.BatchService(Refuses(takes=0)).submit(batch.plan(BASE, count=2))


def test_a_batch_other_than_the_one_its_quote_line_priced_is_refused_before_anything(tmp_path):
    """Generate batch sends the jobs its quote line priced (the page keeps them beside the seeds
    it drew); a form changed while that line was on its way makes another batch: refused, naming
    the difference and both prices, nothing sent. An API client (no line) is not compared."""
    import dataclasses

    from app.studio.jobs import Studio

    class Recording(Studio):
        sent: list[FormValues]

        def submit(self, values: FormValues, user: str | None = None, **kw: Any) -> str:
            self.sent.append(values)
            return f"wp-{len(self.sent)}"

    studio = offline_studio(tmp_path, Recording)
    studio.sent = []
    service = batch.BatchService(studio)
    shown = service.check(batch.plan(BASE, count=2)).shown()
    assert len(shown.requests) == 2 and shown.dollars > 0
    larger = dataclasses.replace(BASE, resolution="720p landscape")
    with pytest.raises(InputError) as refused:
        service.submit(batch.plan(larger, count=2, drawn=shown.seeds), shown=shown)
    assert str(refused.value).startswith(
        "batch quote: the form sent a different batch (job 1: width 1280 instead of 640, height "
        f"720 instead of 640) than its quote line priced (${shown.dollars:.4f}); this one is $"
    ), refused.value
    more = batch.plan(BASE, count=3, drawn=shown.seeds)
    with pytest.raises(InputError, match=r"\(3 jobs instead of 2\)"):
        service.submit(more, shown=shown)
    assert studio.sent == []
    assert len(service.submit(batch.plan(BASE, count=2, drawn=shown.seeds), shown=shown).rids) == 2
    assert len(service.submit(batch.plan(larger, count=2)).rids) == 2  # an API client's


# -- draft -> final refusals and values, on a real ledger ----------------------------------------
def offline_studio(folder: Path, cls: type | None = None) -> Any:
    """The studio's services (`cls`: Studio or a subclass) on a real ledger in `folder`, without
    an endpoint: they read the ledger and quote, and send nothing."""
    from app.studio.jobs import Studio
    from app.studio.ledger import Ledger
    from workflows.fill import fill

    forms, byo_fill = load_forms()
    return (cls or Studio)(
        settings=Settings.from_env({"WANPOD_DATA_DIR": str(folder)}),
        forms=forms,
        fill=fill,
        byo_fill=byo_fill,
        endpoint=None,
        ledger=Ledger(folder / "ledger.sqlite3"),
        tracker=None,
        prices=cost.load_prices(PRICES_PATH),
    )


@pytest.fixture
def offline(tmp_path):
    """The studio's services without an endpoint: promote reads the ledger and quotes only."""
    return offline_studio(tmp_path)


def job(studio, template="t2v_14b", mode="turbo", state="COMPLETED", res="480p square") -> str:
    values = FormValues(
        pipeline=template, mode=mode, prompt="a heron", resolution=res, seed=5, randomize=False
    )
    prep = studio.prepare(values)
    rid = studio.ledger.create(
        template=template,
        mode=mode,
        params=prep.filled.params,
        workflow=prep.filled.workflow,
        quote=prep.quote,
        gpu="H100 PRO",
        form=asked(values, prep.filled.params.get("seed")),
    )
    studio.ledger.update(rid, state=state)
    return rid


def test_draft_to_final_values_and_quote(offline):
    draft = job(offline)
    p = promote(offline, draft, ANYONE)
    v = p.values
    assert (v.pipeline, v.mode, v.resolution, v.seed, v.prompt) == (
        "t2v_14b",
        "quality",
        "720p square",
        5,
        "a heron",
    )
    assert (v.steps, v.cfg, v.shift, v.randomize) == (20, 3.5, 8.0, False)
    assert offline.prepare(v).filled.params["frames"] == offline.ledger.get(draft).params["frames"]
    assert p.quote.dollars > p.draft_quote.dollars
    assert p.summary().startswith(f"**Draft → final** from `{draft}`: turbo 480p square → ")


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"state": "FAILED"}, r"is FAILED, not finished"),
        ({"state": "IN_PROGRESS"}, r"is IN_PROGRESS, not finished"),
        ({"mode": "quality"}, r"ran in quality mode, not as a turbo draft"),
        (
            {"template": "ti2v_5b", "mode": "quality"},
            r"ran on .*\(Wan 2.2 5B\), which is quality only: it has no drafts",
        ),
        ({"res": "720p portrait"}, r"is already at the largest size of .* \(720p portrait\)"),
    ],
)
def test_draft_to_final_refusals_name_the_reason(offline, kw, why):
    rid = job(offline, **kw)
    with pytest.raises(InputError, match=rf"^job: {rid} {why}; allowed: a COMPLETED turbo job"):
        promote(offline, rid, ANYONE)
    with pytest.raises(InputError, match=r"^job: 'wp-none' is not a job of this studio"):
        promote(offline, "wp-none", ANYONE)


@pytest.mark.parametrize("size", ["", "1080p cinema"])
def test_draft_to_final_of_a_size_no_longer_a_preset_says_so(offline, size):
    import dataclasses

    rid = job(offline)
    row = offline.ledger.get(rid)
    offline.ledger.update(rid, form=dataclasses.replace(row.form, resolution=size))  # an old row
    with pytest.raises(InputError) as refused:
        promote(offline, rid, ANYONE)
    assert str(refused.value).startswith(
        f"job: {rid} ran at a size that is not one of Text to video (Wan 2.2 14B)'s presets "
        f"({size or 'none recorded'}; they are "
    ), refused.value
    assert "480p square" in str(refused.value) and "720p square" in str(refused.value)


def test_the_batch_line_says_billed_so_far_only_while_a_job_runs(offline, tmp_path):
    """The batch's table line: what its jobs have billed, "so far" while one still runs (it
    said "so far" after the batch had ended)."""
    from app.studio.forms import FormValues
    from app.studio.tracker import Tracker
    from app.ui.batch import batch_html

    # the views read the ledger through a tracker (not started: nothing is polled)
    offline.tracker = Tracker(offline.ledger, None, tmp_path, offline.prices)

    prep = offline.prepare(
        FormValues(pipeline="t2v_14b", prompt="a heron", resolution="480p square", seed=1)
    )
    rids = tuple(
        offline.ledger.create(template="t2v_14b", mode="turbo", params=dict(prep.filled.params),
                              workflow={}, quote=prep.quote, gpu="H100 PRO")
        for _ in range(2)
    )  # fmt: skip

    def line() -> str:
        views = [(r, offline.view(r, ANYONE), offline.ledger.get(r)) for r in rids]
        return batch_html(rids, views).split('<div class="wp-line">')[1].split("</div>")[0]

    billed = cost.Actual(billed_s=2, dollars=0.0023)
    offline.ledger.update(rids[0], state=JobState.COMPLETED, finished_at=time.time(), cost=billed)
    offline.ledger.update(rids[1], state=JobState.IN_PROGRESS, job_id="job-2")
    assert line().endswith("actual $0.0023 billed so far"), line()
    offline.ledger.update(rids[1], state=JobState.COMPLETED, finished_at=time.time(), cost=billed)
    assert line().endswith("actual $0.0046 billed"), line()
