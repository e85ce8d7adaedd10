"""The History section in Debian's headless Chromium (Playwright) against the session's studio:
the gallery shows a finished job with its thumbnail and filters it; an opened job replays its
video and shows its seed and recipe; "Reuse settings" from a job of another pipeline fills the
form with that job's values (the note names that job); "Rerun exactly" from the gallery makes a
new job with the same seed; a live job opened names its state, and "Follow live" follows it in
the page's status panel to its end; a chain is found by its own id, and "Reuse chain settings"
names it.

Jobs are made through the API first (fast), with prompts no other test uses, so the filters find
exactly them in the session's shared ledger."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from gradio_client import handle_file

from app.studio.ledger import Ledger
from tests.app.test_api import args, finished
from tests.app.test_browser import TIMEOUT_MS, disabled, open_studio, slow_steps, wait_state
from tests.app.test_history import ledger_of
from tests.helpers import png_bytes

pytestmark = pytest.mark.slow

TAG = uuid.uuid4().hex[:6]
OWL = f"history owl {TAG} gliding at night"
KOI = f"history koi {TAG} in a pond"
TI2V = "Text (+ optional image) to video (Wan 2.2 5B)"
ITEM = "#wp-hist-gallery button.thumbnail-item"


@pytest.fixture(scope="module")
def owl(client) -> str:
    status, _, _, rid = finished(
        client.predict(*args(prompt=OWL, seed=31337), api_name="/generate")
    )
    assert 'data-state="COMPLETED"' in status, status
    return rid


@pytest.fixture(scope="module")
def koi(client, tmp_path_factory) -> str:
    """A job of another pipeline than the page's first (t2v_14b), every value off its defaults,
    with its optional start image."""
    png = tmp_path_factory.mktemp("koi") / "koi.png"
    png.write_bytes(png_bytes(320, 180, (200, 120, 20)))
    a = args(
        "ti2v_5b", "quality", KOI, start=handle_file(str(png)), resolution="480p landscape",
        seconds=1.5, seed=9876, steps=5, cfg=4.5, shift=7.0, sampler="uni_pc",
    )  # fmt: skip
    status, _, _, rid = finished(client.predict(*a, api_name="/generate"))
    assert 'data-state="COMPLETED"' in status, status
    return rid


def filter_text(page, text: str, count: int) -> None:
    page.locator("#wp-hist-text textarea, #wp-hist-text input").first.fill(text)
    page.wait_for_function(
        f"document.querySelectorAll('{ITEM}').length === {count} && Array.from("
        f"document.querySelectorAll('{ITEM}')).every(b => b.innerText.includes({text!r}))"
        if count
        else f"document.querySelectorAll('{ITEM}').length === 0"
    )


def open_item(page, needle: str) -> None:
    page.locator(ITEM, has_text=needle).first.click()
    page.wait_for_function(
        "document.querySelector('#wp-hist-details') &&"
        f" document.querySelector('#wp-hist-details').innerText.includes({needle!r})"
    )


OPENED_BUTTONS = ("#wp-hist-reuse", "#wp-hist-rerun", "#wp-hist-extend", "#wp-hist-download")


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_gallery_thumbnail_filter_open_and_replay(studio, context, owl):
    page = open_studio(context, studio.base_url)
    filter_text(page, OWL, 1)
    item = page.locator(ITEM, has_text=OWL)
    caption = item.inner_text()
    for part in ("COMPLETED", "Text to video (Wan 2.2 14B)", "turbo", "640×640", "seed 31337", "$"):
        assert part in caption, caption
    assert page.evaluate(  # the caption wraps in full (no ellipsis)
        "(() => { const c = document.querySelector('#wp-hist-gallery .caption-label');"
        " return c.scrollWidth <= c.clientWidth + 1 && c.scrollHeight <= c.clientHeight + 1; })()"
    )
    thumb = item.locator("img")
    assert thumb.get_attribute("src").endswith(".thumb.jpg")  # the first frame, not a placeholder
    page.wait_for_function(
        f"(() => {{ const i = document.querySelector('{ITEM} img');"
        " return i && i.complete && i.naturalWidth > 0; })()"
    )
    # filters: another status, another pipeline, a text nothing has -> nothing; back -> the job
    choose(page, "wp-hist-status", "Failed")
    page.wait_for_function(f"document.querySelectorAll('{ITEM}').length === 0")
    assert "No job matches" in page.locator("#wp-hist-note").inner_text()
    choose(page, "wp-hist-status", "Completed")
    page.wait_for_function(f"document.querySelectorAll('{ITEM}').length === 1")
    choose(page, "wp-hist-pipeline", TI2V)
    page.wait_for_function(f"document.querySelectorAll('{ITEM}').length === 0")
    choose(page, "wp-hist-pipeline", "All")
    filter_text(page, f"no such prompt {TAG}", 0)
    filter_text(page, OWL, 1)

    # nothing opened: nothing to reuse, rerun, extend, save
    assert disabled(page, OPENED_BUTTONS) == [True] * 4
    open_item(page, OWL)
    page.wait_for_function(
        f"![{', '.join(repr(s) for s in OPENED_BUTTONS)}]"
        ".some(s => document.querySelector(s).disabled)"
    )
    page.wait_for_function(
        "(() => { const v = document.querySelector('#wp-hist-video video');"
        " return v && v.readyState >= 2 && v.duration > 0; })()",
        timeout=TIMEOUT_MS,
    )
    info = page.locator("#wp-hist-details").inner_text()
    assert owl in info and "seed=31337" in info and "Recipe:" in info, info
    row = ledger_of(studio).get(owl)
    assert row.recipe["template_version"] in info and row.recipe["comfyui_version"] in info
    assert "Actual:" in info and "Timings:" in info
    with page.expect_download() as download:
        page.locator("#wp-hist-download").click()
    assert json.loads(Path(download.value.path()).read_text()) == row.workflow


def test_the_gallery_fits_a_phone(studio, browser, owl):
    """On a phone the gallery shows two columns, both inside it, and a caption leaves the
    thumbnail's picture in view (four columns of at least 100 px overflowed it, and a caption
    wrapped in full covered the tile)."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = open_studio(ctx, studio.base_url)
        filter_text(page, OWL, 1)
        fit = page.evaluate(
            "(() => { const g = '#wp-hist-gallery', box = (s) =>"
            " document.querySelector(`${g} ${s}`).getBoundingClientRect();"
            " const grid = document.querySelector(`${g} .grid-container`);"
            " return {columns: getComputedStyle(grid).gridTemplateColumns.split(' ').length,"
            " wrap: box('.grid-wrap').right, tile: box('button.thumbnail-item'),"
            " caption: box('.caption-label')}; })()"
        )
        tile, caption = fit["tile"], fit["caption"]
        assert fit["columns"] == 2, fit
        assert tile["x"] + 2 * tile["width"] <= fit["wrap"], fit  # the second column too
        assert caption["y"] >= tile["y"] and caption["height"] <= 0.6 * tile["height"], fit
    finally:
        ctx.close()


def test_reuse_settings_from_another_pipeline(studio, context, koi):
    page = open_studio(context, studio.base_url)
    assert page.locator("#wp-pipeline input").input_value() == "Text to video (Wan 2.2 14B)"
    filter_text(page, KOI, 1)
    open_item(page, KOI)
    page.locator("#wp-hist-reuse").click()
    page.wait_for_function(f"document.querySelector('#wp-prompt textarea').value === {KOI!r}")
    # the note names the job the form was filled from: the opened one (the page shows none)
    page.wait_for_function(
        f"document.querySelector('#wp-form-note').innerText.includes('from job {koi}')"
    )
    # the quote for the reused form comes last in the chain: every value has landed by then
    page.wait_for_function(
        "document.querySelector('#wp-quote').innerText.includes('GPU s') &&"
        " document.querySelector('#wp-frames').innerText.includes('24 fps')"
    )
    page.get_by_role("button", name="Advanced").click()  # its fields render when opened
    page.locator("#wp-steps input[type=number]").wait_for()
    expected = {
        "#wp-pipeline input": TI2V,
        "#wp-resolution input": "480p landscape",
        "#wp-seconds input[type=number]": "1.5",
        "#wp-seed input": "9876",
        "#wp-steps input[type=number]": "5",
        "#wp-cfg input[type=number]": "4.5",
        "#wp-shift input[type=number]": "7",
    }
    got = {sel: page.locator(sel).first.input_value() for sel in expected}
    assert got == expected
    assert page.locator("#wp-mode input[value='quality']").is_checked()
    assert not page.locator("#wp-mode input[value='turbo']").is_visible()  # ti2v: quality only
    assert not page.locator("#wp-randomize input").is_checked()
    assert "37 frames" in page.locator("#wp-frames").inner_text()  # 1.5 s at 24 fps
    # its start image (kept per job, as sent: fitted to 832x480) is back in the form
    page.wait_for_function(
        "(() => { const i = document.querySelector('#wp-start img');"
        " return i && i.complete && i.naturalWidth === 832 && i.naturalHeight === 480; })()"
    )


def test_rerun_exactly_from_the_gallery(studio, context, owl):
    page = open_studio(context, studio.base_url)
    filter_text(page, OWL, 1)
    open_item(page, OWL)
    page.locator("#wp-hist-rerun").click()
    job = wait_state(page, f"d.rid && d.rid.startsWith('wp-') && d.rid !== '{owl}'")
    wait_state(page, "d.state === 'COMPLETED'")
    assert "seed=31337" in page.locator("#wp-details").inner_text()
    again = Ledger.get(ledger_of(studio), job["rid"])
    assert again.recipe["rerun_of"] == owl and again.params["seed"] == 31337
    # the gallery refreshes once the rerun has ended: both jobs, the newest first
    page.wait_for_function(f"document.querySelectorAll('{ITEM}').length === 2")
    assert "seed 31337" in page.locator(ITEM).first.inner_text()
    # the opened job is still the one marked, now second (Gradio kept the marked index, 0,
    # which marked the rerun)
    marked = (
        f"Array.from(document.querySelectorAll('{ITEM}'), b => b.classList.contains('selected'))"
    )
    page.wait_for_function(f"{marked}.join() === 'false,true'")


def test_a_live_job_opened_names_its_state_and_follows_live(studio, context, client, stack):
    """A job sent elsewhere (here the API), opened in History while it runs: its panel names
    the state it had (nothing keeps the panel current), and Follow live shows it in the page's
    status panel, which follows it to its end."""
    prompt = f"history heron {TAG} still flying"
    slow_steps(stack, 1.0)  # a few seconds live
    try:
        client.submit(*args(prompt=prompt, seed=5), api_name="/generate")
        deadline = time.monotonic() + 30
        while not (found := ledger_of(studio).search(prompt)) and time.monotonic() < deadline:
            time.sleep(0.1)
        rid = found[0].id
        page = open_studio(context, studio.base_url)
        filter_text(page, prompt, 1)
        open_item(page, prompt)
        info = page.locator("#wp-hist-details").inner_text()
        assert rid in info and "Live:" in info, info
        assert any(f"{s} when opened" in info for s in ("IN_QUEUE", "IN_PROGRESS")), info
        page.locator("#wp-hist-follow").click()
        wait_state(page, f"d.rid === '{rid}'")
    finally:
        slow_steps(stack, 0.1)
    wait_state(page, "d.state === 'COMPLETED'")
    assert "seed=5" in page.locator("#wp-details").inner_text()


def test_a_chain_found_by_its_id_and_reused_is_named_in_the_note(studio, context, client):
    prompt = f"history wren {TAG} on a branch"
    status, _, _, rid = finished(
        client.predict(*args(prompt=prompt, seconds=1.0, seed=8), api_name="/generate")
    )
    assert 'data-state="COMPLETED"' in status, status
    *_, cid = client.predict(job_id=rid, prompt="", colour_match=False, api_name="/extend")
    page = open_studio(context, studio.base_url)
    page.locator("#wp-hist-text textarea, #wp-hist-text input").first.fill(cid)
    page.wait_for_function(  # the chain alone (its parent job is an item of its own)
        f"document.querySelectorAll('{ITEM}').length === 1 &&"
        f" document.querySelector('{ITEM}').innerText.includes('chain, 2 of 2 segments done')"
    )
    page.locator(ITEM).first.click()
    page.wait_for_function(
        f"document.querySelector('#wp-hist-details').innerText.includes({cid!r})"
    )
    # History's Reuse settings: the form as the first segment had it, every segment's prompt
    # in the storyboard's field (the Longer video section opened to show them)
    page.locator("#wp-hist-reuse").click()
    page.wait_for_function(
        f"document.querySelector('#wp-form-note').innerText.includes('from chain {cid}')"
    )
    assert page.locator("#wp-prompt textarea").input_value() == prompt
    prompts = page.locator("#wp-chain-prompts textarea")
    both = json.dumps(f"{prompt}\n{prompt}")  # the job's, and the extension's (blank: its own)
    page.wait_for_function(
        "(() => { const t = document.querySelector('#wp-chain-prompts textarea');"
        f" return !!t && t.value === {both}; }})()"
    )
    assert prompts.is_visible()
    page.locator("#wp-prompt textarea").fill("")  # Reuse chain settings fills it again
    page.locator("#wp-chain-reuse:not([disabled])").click()  # the chain opened shows there
    page.wait_for_function(
        f"document.querySelector('#wp-prompt textarea').value === {json.dumps(prompt)}"
    )
    assert f"from chain {cid}" in page.locator("#wp-form-note").inner_text()
