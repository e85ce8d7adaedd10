"""Batch and draft → final through the API (gradio_client, local stack): each batch job is its own
ledger row and RunPod job, the combined quote adds the jobs' own quotes, a batch that would break
a budget is refused whole before any row is written, and a finished turbo draft is promoted to
the quality mode at the next bigger size with the same seed and prompt and its own quote."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app.settings import PRICES_PATH
from app.studio import cost
from app.studio.ledger import Ledger
from app.studio.markup import md_text
from tests.app.conftest import start_studio
from tests.app.test_api import args, finished


def ledger_of(studio) -> Ledger:
    return Ledger(Path(studio.env["WANPOD_DATA_DIR"]) / "ledger.sqlite3")


def batch_args(form: list, count=1, seeds="", prompts="") -> list:
    return [*form, count, seeds, prompts]


def run_batch(client, form, **kw) -> tuple[str, list, list[str]]:
    status, gallery, ids = client.predict(*batch_args(form, **kw), api_name="/generate_batch")
    return status, gallery, [i.strip() for i in ids.split(",") if i.strip()]


def dollars(text: str, label: str) -> float:
    return float(re.search(label + r"\$([\d.]+)", text).group(1))


def test_batch_of_three_seeds_is_three_jobs_with_one_combined_quote(client, studio, png_file):
    form = args("i2v_14b", start=handle_file(str(png_file)), randomize=True)
    text = client.predict(*batch_args(form, count=3), api_name="/batch_quote")
    m = re.search(
        r"\*\*Batch of 3 jobs \(1 prompt × 3 seeds: [\d, ]+\):\*\* ≈ 3 × (\d+) GPU s = (\d+) GPU s"
        r" on (.+?) = \$([\d.]+) for the batch \(\$([\d.]+) per job",
        text,
    )
    assert m, text
    each, total, gpu, batch_usd, job_usd = m.groups()
    per_s = cost.load_prices(PRICES_PATH).price(gpu)
    assert int(total) == 3 * int(each)
    assert float(job_usd) == pytest.approx(int(each) * per_s, abs=5e-5)
    assert float(batch_usd) == pytest.approx(3 * int(each) * per_s, abs=5e-5)
    assert "cold start +" in text and "per worker that starts cold (not included)" in text
    single = client.predict(*form, api_name="/quote")  # the form's own quote = the per-job one
    assert re.search(r"≈ (\d+) GPU s", single).group(1) == each

    before = len(ledger_of(studio).recent(1000))
    status, gallery, rids = run_batch(client, form, count=3)
    assert len(rids) == 3 and len(set(rids)) == 3
    assert 'data-total="3"' in status and 'data-completed="3"' in status, status
    rows = [ledger_of(studio).get(r) for r in rids]
    assert len(ledger_of(studio).recent(1000)) == before + 3
    assert [r.state for r in rows] == ["COMPLETED"] * 3
    assert len({r.params["seed"] for r in rows}) == 3
    assert len({r.job_id for r in rows}) == 3  # three RunPod jobs
    assert all(r.params["prompt"] == "a red fox in snow" for r in rows)
    assert len(gallery) == 3
    assert [item["caption"].split(" · ")[0] for item in gallery] == rids
    for item in gallery:
        assert Path(item["video"]).read_bytes()[4:8] == b"ftyp"

    # one of them as a draft: its kept start image comes along to the final's form
    values = client.predict(rows[0].id, api_name="/draft_final")
    pipeline, mode, prompt, _neg, start, _end, _wf, resolution, _s, seed, randomize, *_ = values
    assert (pipeline, mode, resolution, seed, randomize) == (
        "i2v_14b",
        "quality",
        "720p square",
        rows[0].params["seed"],
        False,
    )
    assert prompt == "a red fox in snow"
    with Image.open(start) as img:
        assert img.size == (640, 640)  # the draft's input as sent (fitted to its size)


def test_batch_of_two_prompts(client, studio):
    form = args("t2v_14b", resolution="720p landscape", seed=55)
    status, _, rids = run_batch(client, form, prompts="a cat on a roof\n\na dog on a boat\n")
    assert 'data-completed="2"' in status, status
    rows = [ledger_of(studio).get(r) for r in rids]
    assert [(r.params["prompt"], r.params["seed"], r.state) for r in rows] == [
        ("a cat on a roof", 55, "COMPLETED"),
        ("a dog on a boat", 55, "COMPLETED"),
    ]
    assert {(r.params["width"], r.params["height"]) for r in rows} == {(1280, 720)}
    with pytest.raises(AppError, match=r"^job: wp-\S+ is already at the largest size of"):
        client.predict(rids[0], api_name="/draft_final")


def test_a_batch_of_seeds_without_a_prompt_is_priced_and_refused(client, studio):
    # as the form's own quote line: the settings' price (a prompt's words cost nothing), the
    # refusal under it; Generate batch is refused for it, and no job is sent
    empty = client.predict(*batch_args(args(prompt=""), seeds="1, 2, 3"), api_name="/batch_quote")
    typed = client.predict(*batch_args(args(), seeds="1, 2, 3"), api_name="/batch_quote")
    assert typed.startswith("**Batch of 3 jobs"), typed
    refusal = md_text("prompt: is empty; describe the video you want (job 1 of 3)")
    assert empty == f"{typed}\n\n⚠️ {refusal}", empty  # the field named once, the job counted
    before = len(ledger_of(studio).recent(1000))
    with pytest.raises(AppError, match=r"prompt: is empty"):
        run_batch(client, args(prompt=""), seeds="1, 2, 3")
    assert len(ledger_of(studio).recent(1000)) == before
    # a batch of prompts needs none in the form (each line is a job's prompt)
    lines = client.predict(*batch_args(args(prompt=""), prompts="a\nb"), api_name="/batch_quote")
    assert lines.startswith("**Batch of 2 jobs") and "⚠️" not in lines, lines


def test_a_batch_without_its_image_is_priced_and_refused(client, studio, png_file):
    # every job of the batch sends the form's images: a missing one is said under the price
    form = args("i2v_14b", resolution="480p landscape")
    missing = client.predict(*batch_args(form, seeds="1, 2"), api_name="/batch_quote")
    price, refusal = missing.split("\n\n")
    assert price.startswith("**Batch of 2 jobs"), missing
    assert refusal.startswith("⚠️ start image\\: Image to video"), missing
    given = args("i2v_14b", resolution="480p landscape", start=handle_file(str(png_file)))
    assert client.predict(*batch_args(given, seeds="1, 2"), api_name="/batch_quote") == price
    before = len(ledger_of(studio).recent(1000))
    with pytest.raises(AppError, match=r"^start image: .*needs a start image"):
        run_batch(client, form, seeds="1, 2")
    assert len(ledger_of(studio).recent(1000)) == before


def test_batch_attach_streams_a_batch_by_its_ids(client, studio):
    # an API client (no quote line) still sends a batch of the defaults: one job
    status, gallery, (one,) = run_batch(client, args(prompt="a single batch job"))
    assert 'data-total="1"' in status and len(gallery) == 1, status
    status, gallery, rids = run_batch(client, args(prompt="an owl at dusk"), count=2)
    again, videos, ids = client.predict(", ".join([*rids, "wp-nope"]), api_name="/batch_attach")
    assert ids == ", ".join([*rids, "wp-nope"])
    assert 'data-total="3" data-final="3" data-completed="2"' in again, again
    assert again.count("an owl at dusk") == 2, again
    assert 'data-rid="wp-nope" data-state="UNKNOWN"' in again  # an unknown id: an unknown row
    quoted = re.compile(r"quote \$[\d.]+ · actual \$[\d.]+")  # the jobs' own, as generate said
    assert quoted.search(again).group() == quoted.search(status).group(), (again, status)
    assert [v["caption"].split(" · ")[0] for v in videos] == rids
    with pytest.raises(AppError, match=r"^batch job ids: is empty; allowed: the ids /generate_b"):
        client.predict("  ", api_name="/batch_attach")
    many = ", ".join(f"wp-{k}" for k in range(17))
    with pytest.raises(
        AppError, match=r"^batch job ids: 'wp-0, .* holds 17 ids; allowed: .*1\.\.16"
    ):
        client.predict(many, api_name="/batch_attach")
    assert ledger_of(studio).get(one).state == "COMPLETED"


def test_draft_to_final_quality_larger_size_same_seed_and_prompt(client, studio):
    _, _, draft_details, draft = finished(
        client.predict(*args(prompt="a heron at dawn", seed=321), api_name="/generate")
    )
    assert "**COMPLETED**" in draft_details, draft_details
    *values, note = client.predict(draft, api_name="/draft_final")
    pipeline, mode, prompt, _neg, _st, _en, _wf, resolution, _sec, seed, randomize, *adv = values
    assert (pipeline, mode, prompt, resolution, seed, randomize) == (
        "t2v_14b",
        "quality",
        "a heron at dawn",
        "720p square",
        321,
        False,
    )
    assert adv[:2] == [20, 3.5]  # the quality mode's own steps and cfg, not the draft's 4 and 1
    assert f"from `{draft}`" in note and "turbo 480p square → **quality 720p square**" in note
    draft_usd = dollars(note, "Draft quote ")
    final_usd = dollars(note, r"final quote:\*\* ≈ \d+ GPU s on .+? = ")
    assert final_usd > draft_usd > 0
    assert draft_usd == pytest.approx(ledger_of(studio).get(draft).quote.dollars, abs=5e-5)
    own = client.predict(*values, api_name="/quote")  # the final's own quote, as the page shows
    assert dollars(own, r"GPU s on .+? = ") == pytest.approx(final_usd, abs=5e-5)

    status, video, _, final = finished(client.predict(*values, api_name="/generate"))
    assert 'data-state="COMPLETED"' in status, status
    row = ledger_of(studio).get(final)
    assert (row.mode, row.params["width"], row.params["height"]) == ("quality", 960, 960)
    assert row.params["seed"] == 321 and row.params["prompt"] == "a heron at dawn"
    assert row.params["frames"] == ledger_of(studio).get(draft).params["frames"]
    assert Path(video).read_bytes()[4:8] == b"ftyp"
    with pytest.raises(AppError, match=r"ran in quality mode, not as a turbo draft; allowed: a"):
        client.predict(final, api_name="/draft_final")
    with pytest.raises(AppError, match=r"^job: 'wp-nope' is not a job of this studio"):
        client.predict("wp-nope", api_name="/draft_final")


@pytest.fixture(scope="module")
def tight(stack, tmp_path_factory):
    """A studio with a $0.05 day, a $0.05 job and at most 4 jobs per batch."""
    proc = start_studio(
        stack,
        tmp_path_factory.mktemp("tight"),
        WANPOD_BUDGET_DAILY_USD="0.05",
        WANPOD_MAX_JOB_USD="0.05",
        WANPOD_BATCH_MAX="4",
        WANPOD_PREFLIGHT="off",
    )
    yield proc, Client(proc.base_url + "/", verbose=False)
    proc.stop()


def test_a_batch_over_budget_is_refused_whole_before_any_row(tight):
    proc, tc = tight
    form = args(prompt="an expensive fox")
    job_usd = dollars(tc.predict(*form, api_name="/quote"), r"GPU s on .+? = ")
    assert 2 * job_usd <= 0.05 < 3 * job_usd  # two fit the day, three do not
    ok = tc.predict(*batch_args(form, count=2), api_name="/batch_quote")
    assert "Over the studio's limits" not in ok, ok
    warned = tc.predict(*batch_args(form, count=3), api_name="/batch_quote")
    assert "Over the studio's limits" in warned and "this batch's (3 jobs)" in warned
    with pytest.raises(
        AppError,
        match=r"^refused by the studio's limits:\ndaily budget: \$0.00 spent today "
        rf"\(all users\) \+ this batch's \(3 jobs\) \${3 * job_usd:.4f} = "
        r".*\(set by WANPOD_BUDGET_DAILY_USD\)",
    ):
        tc.predict(*batch_args(form, count=3), api_name="/generate_batch")
    with pytest.raises(AppError, match=r"^refused by the studio's limits:\njob cost: this job is"):
        tc.predict(*batch_args(args(mode="quality", steps=20, cfg=3.5, shift=8.0), count=2),
                   api_name="/generate_batch")  # fmt: skip
    with pytest.raises(AppError, match=r"^batch: 1 prompt × 5 seeds = 5 jobs; allowed: at most 4"):
        tc.predict(*batch_args(form, seeds="1 2 3 4 5"), api_name="/generate_batch")
    assert ledger_of(proc).recent(100) == []  # nothing written, nothing sent
