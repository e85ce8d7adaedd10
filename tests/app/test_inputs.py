"""Issue 14's money and input rules in the service (app/studio), without a browser: the job sent
is the job quoted, out-of-range values are refused (never clamped), batch seeds quoted = run,
images checked before Generate, an empty negative prompt honoured, today's spend line."""

from __future__ import annotations

import dataclasses
import time

import pytest

from app.errors import ImageError, InputError
from app.studio import batch
from app.studio.forms import FormValues, field_of
from app.studio.images import MIN_IMAGE_SIDE, closest_aspect, fit_note, prepare_image
from app.studio.inputs import describe, matching_preset
from app.studio.shown import Shown, check_shown
from app.studio.spend import spend_line
from tests.app.test_batch import offline_studio
from tests.helpers import png_bytes

T2V = FormValues(pipeline="t2v_14b", mode="turbo", prompt="a heron", resolution="480p square")


@pytest.fixture
def studio(tmp_path):
    return offline_studio(tmp_path)


def test_the_job_sent_must_be_the_one_on_the_quote_line(studio):
    shown_prep = studio.prepare(T2V)
    shown = Shown(shown_prep.request, shown_prep.quote)
    same = studio.prepare(dataclasses.replace(T2V, prompt="another heron"))  # prompt: same cost
    check_shown(shown, same.request, same.quote)
    check_shown(None, same.request, same.quote)  # an API client saw no quote line
    clamped = studio.prepare(dataclasses.replace(T2V, steps=6))  # what a clamped box sends
    with pytest.raises(InputError) as exc:
        check_shown(shown, clamped.request, clamped.quote)
    text = str(exc.value)
    assert text.startswith("quote: the form sent a different job (steps 6 instead of 4)"), text
    assert f"(${shown_prep.quote.dollars:.4f})" in text and "Nothing was sent" in text


def test_generate_is_refused_while_the_quote_line_shows_a_refusal(studio):
    prep = studio.prepare(T2V)
    refused = Shown(problem="steps: 61 is above the maximum", field="steps")
    with pytest.raises(InputError, match=r"^steps: the quote line shows a refusal \(steps: 61"):
        check_shown(refused, prep.request, prep.quote)


def test_a_line_priced_beside_its_prompt_refusal_stands_for_its_price(studio):
    # a fresh page prices its settings before a prompt is written (Callbacks.quoted): the
    # prompt typed and Generate pressed before the next quote arrives sends that job, at that
    # price; other settings are refused as on any quote line
    priced = studio.prepare(dataclasses.replace(T2V, prompt="a video"))
    shown = Shown(priced.request, priced.quote, "prompt: is empty", "prompt")
    typed = studio.prepare(T2V)
    check_shown(shown, typed.request, typed.quote)
    longer = studio.prepare(dataclasses.replace(T2V, seconds=3.0))
    with pytest.raises(InputError, match=r"^quote: the form sent a different job \(frames "):
        check_shown(shown, longer.request, longer.quote)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"steps": 61}, r"^steps: .*61.*60"),
        ({"seconds": 1000.0}, r"^duration: .*1000"),
        ({"resolution": "8k"}, r"^resolution: '8k' is not offered; allowed: 480p"),
        ({"mode": "turbo", "pipeline": "ti2v_5b"}, r"^mode: 'turbo' is not offered; allowed"),
    ],
)
def test_out_of_range_values_are_refused_not_clamped(studio, change, expected):
    values = dataclasses.replace(T2V, **change)
    if values.pipeline == "ti2v_5b":
        values = dataclasses.replace(values, resolution="")
    with pytest.raises(InputError, match=expected):
        studio.prepare(values)


def test_a_refusal_names_a_form_field_for_the_page():
    assert field_of("duration") == "seconds" and field_of("start image") == "start_image"
    assert field_of("steps") == "steps" and field_of("LoRA strength (high noise)") == "lora_high"
    assert field_of("quote") == ""


def test_batch_seeds_quoted_are_the_seeds_run():
    quoted = batch.plan(T2V, count=3)
    again = batch.plan(T2V, count=3, drawn=quoted.seeds)
    assert again.seeds == quoted.seeds
    assert [j.seed for j in again.jobs] == list(quoted.seeds)
    assert len(batch.plan(T2V, count=2, drawn=quoted.seeds).seeds) == 2  # another count: new draw
    fixed = dataclasses.replace(T2V, randomize=False, seed=7)
    assert batch.plan(fixed, count=2, drawn=(1, 2)).seeds == (7, 8)  # not random: seed, seed+1


def test_an_empty_negative_prompt_is_sent_empty(studio):
    quality = dataclasses.replace(T2V, mode="quality", negative_prompt="")
    assert studio.prepare(quality).filled.params["negative_prompt"] == ""
    default = studio.forms["t2v_14b"].negative_default
    given = dataclasses.replace(quality, negative_prompt=default)
    assert studio.prepare(given).filled.params["negative_prompt"] == default


def test_images_are_checked_and_described_before_generate(studio, tmp_path):
    i2v = FormValues(pipeline="i2v_14b", mode="turbo", prompt="a heron", resolution="480p square")
    with pytest.raises(InputError, match=r"^start image: .* needs a start image; allowed: a PNG"):
        studio.images(i2v)
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(png_bytes(1, 1))
    with pytest.raises(ImageError) as exc:
        studio.images(dataclasses.replace(i2v, start_image=str(tiny)))
    assert str(exc.value) == (
        f"start image: 1x1 pixels is too small; allowed: at least {MIN_IMAGE_SIDE} pixels on the "
        "shortest side"
    )
    with pytest.raises(ImageError, match="too small"):
        prepare_image(png_bytes(1, 1), 480, 480, field="start image", name="s.png")
    wide = tmp_path / "wide.png"
    wide.write_bytes(png_bytes(832, 480))
    fits = studio.images(dataclasses.replace(i2v, start_image=str(wide)))
    assert describe(fits, "480p square") == (
        "start image 832x480: centre-cropped to 480x480 (aspect 1.73:1 → square), upscaled ×1.33 "
        "to 640x640; “480p landscape” would match its aspect ratio"
    )
    assert matching_preset(studio.forms["i2v_14b"], str(wide)) == "480p landscape"
    fits = studio.images(
        dataclasses.replace(i2v, start_image=str(wide), resolution="480p landscape")
    )
    assert describe(fits, "480p landscape") == (
        "start image 832x480: kept as is (“480p landscape” matches its aspect ratio)"
    )


def test_fitting_words():
    assert fit_note(416, 240, 832, 480) == "upscaled ×2.00 to 832x480"
    assert closest_aspect(600, 1000, {"a": (480, 480), "b": (480, 832)}) == "b"


def test_the_spend_line_names_endpoint_price_and_todays_spend(studio):
    prices = studio.prices
    line = spend_line("ep123", "H100 PRO", prices, [], 25.0, now=time.time())
    assert line == (
        f"<b>Endpoint</b> <code>ep123</code> · <b>H100 PRO</b> at ${prices.price('H100 PRO'):.5f}/s"
        " · <b>today (UTC):</b> $0.0000 spent by all users of the $25.00 daily budget"
    )


@pytest.mark.parametrize(
    ("cap", "words"),
    [
        (None, "(no daily budget set)"),
        (0.0, "(the daily budget is $0: every job is refused)"),  # it was "no budget set"
        (0.042, "of the $0.0420 daily budget"),  # as its refusal says it (it was "$0.04")
        (25.0, "of the $25.00 daily budget"),
    ],
)
def test_the_spend_line_says_the_budget_as_its_refusal_does(studio, cap, words):
    assert spend_line("ep", "H100 PRO", studio.prices, [], cap).endswith(
        f"spent by all users {words}"
    )


# -- the price a quote line showed is the job's ---------------------------------------------------
def recording_studio(tmp_path):
    """The studio's services on a real ledger; the quote of each job Generate would send is
    recorded, nothing sent."""
    from app.studio.jobs import Studio

    class Recording(Studio):
        def _send(self, prep, *args, **kw) -> str:
            self.sent.append(prep.quote)
            return f"wp-{len(self.sent)}"

    studio = offline_studio(tmp_path, Recording)
    studio.sent = []
    return studio


def a_job_ends_slower_than_quoted(studio, values: FormValues) -> None:
    """A job like `values` ends three times slower than quoted: the next quotes learn from it."""
    prep = studio.prepare(values)
    rid = studio.ledger.create(template=prep.template_id, mode=values.mode,
                               params=prep.filled.params, workflow=prep.filled.workflow,
                               quote=prep.quote, gpu="H100 PRO")  # fmt: skip
    slow = round(prep.quote.execution_s * 3000)
    studio.ledger.update(rid, state="COMPLETED", execution_ms=slow, finished_at=time.time())
    studio.forget_calibration()


def test_a_job_keeps_the_price_its_quote_line_showed(tmp_path):
    """A job that ended between the quote and Generate moved the calibration: the job sent is
    still quoted (stored, held against the budgets) at the price the line showed; an API client,
    which saw no line, is quoted as the job is now."""
    studio = recording_studio(tmp_path)
    line = studio.prepare(T2V)
    a_job_ends_slower_than_quoted(studio, T2V)
    now = studio.prepare(T2V).quote
    assert now.dollars > line.quote.dollars * 2  # the calibration moved
    studio.submit(T2V, shown=Shown(line.request, line.quote))
    studio.submit(T2V)
    assert studio.sent == [line.quote, now]


def test_a_batch_keeps_the_prices_its_quote_line_showed(tmp_path):
    studio = recording_studio(tmp_path)
    service = batch.BatchService(studio)
    shown = service.check(batch.plan(T2V, count=2)).shown()
    a_job_ends_slower_than_quoted(studio, T2V)
    run = service.submit(batch.plan(T2V, count=2, drawn=shown.seeds), shown=shown)
    assert studio.sent == list(shown.quotes) and run.quote.dollars == shown.dollars
    service.submit(batch.plan(T2V, count=2, drawn=shown.seeds))  # an API client's: priced now
    assert [q.dollars for q in studio.sent[2:]] == [studio.prepare(T2V).quote.dollars] * 2
