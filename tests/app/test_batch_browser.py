"""Batch and draft → final in Debian's headless Chromium (Playwright) against the session's
studio: the Batch accordion shows one combined quote before anything is sent and runs a small
batch to the end (its jobs' table and videos); "Draft → final" on a finished turbo job fills the
form with the quality mode at the next bigger size, same seed and prompt, shows the final's own
quote, and Generate sends it."""

from __future__ import annotations

import re
import uuid

import pytest

from app.ui.batch import STORE_KEY
from tests.app.test_api import args, finished
from tests.app.test_browser import loaded, open_studio, wait_state
from tests.app.test_history import ledger_of

pytestmark = pytest.mark.slow

TAG = uuid.uuid4().hex[:6]
STATUS = "document.querySelector('#wp-batch-status')"


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def test_a_batch_changed_while_its_quote_is_on_its_way_is_refused(studio, context):
    """The page keeps what the batch's quote line priced: a count changed and Generate batch
    pressed before the new quote arrives (here it is held back) sends nothing, and says why."""
    page = open_studio(context, studio.base_url)
    prompt = f"held quote {TAG}"
    page.locator("#wp-prompt textarea").fill(prompt)
    page.locator("#wp-batch").get_by_text("Batch: several seeds or prompts").click()
    page.locator("#wp-batch-count input").fill("2")
    page.locator("#wp-batch-count input").press("Tab")
    page.wait_for_function(
        "document.querySelector('#wp-batch-quote').innerText.includes('Batch of 2 jobs')"
    )
    config = page.request.get(f"{studio.base_url}/config").json()
    (quote_fn,) = [i for i, d in enumerate(config["dependencies"])
                   if d["api_name"] == "page_batch_quote"]  # fmt: skip
    held = []

    def hold_the_batch_quote(route) -> None:
        if f'"fn_index":{quote_fn},' in (route.request.post_data or "").replace(" ", ""):
            held.append(route)  # never answered
        else:
            route.continue_()

    page.route("**/gradio_api/queue/join*", hold_the_batch_quote)
    page.locator("#wp-batch-count input").fill("3")
    page.locator("#wp-batch-count input").press("Tab")
    page.wait_for_function("document.querySelector('#wp-batch-count input').value === '3'")
    page.wait_for_timeout(0)  # lets Playwright run the route handler
    page.locator("#wp-batch-generate").click()
    toast = page.locator(".toast-body").filter(has_text="the form sent a different batch")
    toast.wait_for()
    assert held  # the line still priced 2 jobs
    assert "(3 jobs instead of 2) than its quote line priced ($" in toast.inner_text()
    assert "Batch of 2 jobs" in text_of(page, "#wp-batch-quote")
    assert not [r for r in ledger_of(studio).recent(50) if r.params.get("prompt") == prompt]


def test_batch_combined_quote_then_run_to_the_end(studio, context):
    page = open_studio(context, studio.base_url)
    page.locator("#wp-prompt textarea").fill(f"batch lantern {TAG} on a lake")
    page.locator("#wp-batch").get_by_text("Batch: several seeds or prompts").click()
    page.locator("#wp-batch-count input").fill("2")
    page.locator("#wp-batch-count input").press("Tab")
    page.wait_for_function(
        "document.querySelector('#wp-batch-quote') &&"
        " document.querySelector('#wp-batch-quote').innerText.includes('Batch of 2 jobs')"
    )
    quote = text_of(page, "#wp-batch-quote")
    m = re.search(r"≈ 2 × (\d+) GPU s = (\d+) GPU s on .+? = \$([\d.]+) for the batch", quote)
    assert m and int(m.group(2)) == 2 * int(m.group(1)), quote
    assert "per job" in quote and "per worker that starts cold (not included)" in quote
    assert page.evaluate(STATUS) is None  # nothing sent yet

    page.locator("#wp-batch-generate").click()
    page.wait_for_function(f"{STATUS} && {STATUS}.dataset.total === '2'")
    page.wait_for_function(f"{STATUS}.dataset.completed === '2'")
    # History's gallery shows the batch's jobs once it has ended, as after a job the page
    # followed (it waited for Refresh)
    page.wait_for_function(
        "[...document.querySelectorAll('#wp-hist-gallery .caption-label')]"
        f".filter(c => c.innerText.includes('batch lantern {TAG}')).length === 2"
    )
    rids = page.evaluate(f"{STATUS}.dataset.rids").split(",")
    # its jobs join this session's strip, newest first, as a job the page followed does
    page.wait_for_function("document.querySelectorAll('#wp-recent .caption-label').length === 2")
    strip = page.locator("#wp-recent .caption-label").all_inner_texts()
    assert strip == [f"{rids[1]} · COMPLETED", f"{rids[0]} · COMPLETED"], strip
    rows = [ledger_of(studio).get(r) for r in rids]
    assert [r.state for r in rows] == ["COMPLETED", "COMPLETED"]
    assert len({r.params["seed"] for r in rows}) == 2
    assert all(r.params["prompt"] == f"batch lantern {TAG} on a lake" for r in rows)
    table = text_of(page, "#wp-batch-status")
    assert all(r in table for r in rids) and table.count("COMPLETED") == 2
    # the table fits the form's column, its progress column included (it scrolls sideways
    # only where it cannot fit: a phone)
    fit = page.evaluate(
        "(() => { const w = document.querySelector('#wp-batch-status .wp-batch-table');"
        " const box = document.querySelector('#wp-batch').getBoundingClientRect();"
        " return [w.scrollWidth, w.clientWidth, w.getBoundingClientRect().right, box.right]; })()"
    )
    assert fit[0] <= fit[1] and fit[2] <= fit[3], fit
    page.wait_for_function("document.querySelectorAll('#wp-batch-gallery video').length === 2")
    # the gallery is as tall as its one row of videos, not a fixed box around them
    wrap, tile = page.evaluate(
        "['#wp-batch-gallery .grid-wrap', '#wp-batch-gallery button.thumbnail-item']"
        ".map(s => document.querySelector(s).getBoundingClientRect().height)"
    )
    assert wrap <= tile + 40, (wrap, tile)


def test_draft_to_final_fills_the_form_with_its_own_quote_and_runs(studio, client, context):
    prompt = f"draft heron {TAG} at dawn"
    status, _, _, draft = finished(
        client.predict(*args(prompt=prompt, seed=2468), api_name="/generate")
    )
    assert 'data-state="COMPLETED"' in status, status
    page = open_studio(context, studio.base_url)
    page.get_by_text("Open a job by id").click()
    page.locator("#wp-attach-id textarea, #wp-attach-id input").first.fill(draft)
    page.locator("#wp-attach").click()
    wait_state(page, f"d.rid === '{draft}' && d.state === 'COMPLETED'")

    page.locator("#wp-draft-final").click()
    page.wait_for_function(
        "document.querySelector('#wp-draft-final-note') &&"
        " document.querySelector('#wp-draft-final-note').innerText.includes('Draft → final')"
    )
    note = text_of(page, "#wp-draft-final-note")
    assert "turbo 480p square → quality 720p square" in note, note
    final_usd = re.search(r"final quote: ≈ \d+ GPU s on .+? = \$([\d.]+)", note).group(1)
    draft_usd = re.search(r"Draft quote \$([\d.]+)", note).group(1)
    assert float(final_usd) > float(draft_usd)
    page.wait_for_function(  # the quote line shows the final's own quote
        f"document.querySelector('#wp-quote').innerText.includes('${final_usd}')"
    )
    assert page.locator("#wp-mode input[value='quality']").is_checked()
    assert page.locator("#wp-resolution input").input_value() == "720p square"
    assert page.locator("#wp-seed input").input_value() == "2468"
    assert not page.locator("#wp-randomize input").is_checked()
    assert page.locator("#wp-prompt textarea").input_value() == prompt

    page.locator("#wp-generate").click()  # the operator's confirm
    done = wait_state(page, f"d.rid && d.rid !== '{draft}' && d.state === 'COMPLETED'")
    row = ledger_of(studio).get(done["rid"])
    assert (row.mode, row.params["width"], row.params["height"]) == ("quality", 960, 960)
    assert (row.params["seed"], row.params["prompt"]) == (2468, prompt)


def open_batch(page, prompt: str) -> None:
    page.locator("#wp-prompt textarea").fill(prompt)
    page.locator("#wp-batch").get_by_text("Batch: several seeds or prompts").click()


def batch_of(page, count: int) -> list[str]:
    """Generate batch for `count` seeds, once the batch line prices them: the batch's job ids."""
    page.locator("#wp-batch-count input").fill(str(count))
    page.locator("#wp-batch-count input").press("Tab")
    page.wait_for_function(
        f"document.querySelector('#wp-batch-quote').innerText.includes('Batch of {count} jobs')"
    )
    page.locator("#wp-batch-generate").click()
    page.wait_for_function(f"{STATUS} && {STATUS}.dataset.total === '{count}'")
    return page.evaluate(f"{STATUS}.dataset.rids").split(",")


def test_generate_batch_is_refused_while_its_line_shows_no_price(studio, context):
    """Generate batch is held to its own line as Generate is: with the defaults (one seed, no
    list, no prompts), or a number of seeds sent empty, the line shows no price, and pressing
    it sends nothing and says what to set (it sent one job)."""
    page = open_studio(context, studio.base_url)
    prompt = f"unpriced batch {TAG}"
    open_batch(page, prompt)
    hint = "Set a number of seeds, a seed list or several prompts"
    page.wait_for_function(
        f"document.querySelector('#wp-batch-quote').innerText.includes('{hint}')"
    )
    refusals = page.locator(".toast-body").filter(has_text="its quote line shows no price")
    page.locator("#wp-batch-generate").click()
    refusals.first.wait_for()
    said = refusals.first.inner_text()
    assert "batch quote: its quote line shows no price (number of seeds 1 with no" in said, said
    assert "set a number of seeds of 2 or more, a seed list or several prompts" in said, said
    page.locator("#wp-batch-count input").fill("")  # sent empty (None)
    page.locator("#wp-batch-count input").press("Tab")
    page.wait_for_function(
        "document.querySelector('#wp-batch-quote').innerText.includes('Set a number')"
    )
    page.locator("#wp-batch-generate").click()
    page.wait_for_function(
        "[...document.querySelectorAll('.toast-body')]"
        ".filter(t => t.innerText.includes('number of seeds None with no seed list')).length"
    )
    assert page.evaluate(STATUS) is None
    assert not [r for r in ledger_of(studio).recent(50) if r.params.get("prompt") == prompt]


def test_a_reload_follows_the_batch_again_and_its_jobs_join_the_strip(studio, context):
    """The page keeps its batch's job ids in the browser: a reload mid-batch shows its table
    again, its accordion open, and follows it to its end, and the batch's jobs join this
    session's strip (newest first); so does a reload once the batch has ended (a batch that
    ended before the reloaded page's load read it stayed in its closed accordion: about one
    reload in two here, as a batch of two jobs takes about as long as a reload)."""
    page = open_studio(context, studio.base_url)
    open_batch(page, f"reloaded batch {TAG}")
    rids = batch_of(page, 2)
    page.wait_for_function(f"localStorage.getItem('{STORE_KEY}') !== null")  # kept
    for _ in range(2):  # mid-batch (mostly: the batch may end first), then once it has ended
        page.reload()
        loaded(page)
        page.wait_for_function(f"{STATUS} && {STATUS}.dataset.rids === '{','.join(rids)}'")
        page.wait_for_function(f"{STATUS}.dataset.completed === '2'")
        assert page.locator("#wp-batch-status").is_visible()  # its accordion open
        page.wait_for_function("document.querySelectorAll('#wp-batch-gallery video').length === 2")
        page.wait_for_function(
            "document.querySelectorAll('#wp-recent .caption-label').length === 2"
        )
        strip = page.locator("#wp-recent .caption-label").all_inner_texts()
        assert strip == [f"{rids[1]} · COMPLETED", f"{rids[0]} · COMPLETED"], strip
    assert [r.state for r in map(ledger_of(studio).get, rids)] == ["COMPLETED"] * 2


def test_the_batch_table_reads_on_a_phone(studio, browser):
    """At 390 px each job of the table is a few lines, its state and progress first, with no
    sideways scroll (six columns scrolled sideways there, the state out of view)."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = open_studio(ctx, studio.base_url)
        open_batch(page, f"phone batch {TAG}")
        batch_of(page, 2)
        page.wait_for_function(f"{STATUS}.dataset.final === '2'")
        box, rows, head = page.evaluate(
            "(() => { const t = document.querySelector('#wp-batch-status .wp-batch-table');"
            " const r = [...t.querySelectorAll('tbody tr')].map(tr => {"
            "  const b = tr.getBoundingClientRect(), s = tr.querySelector('.wp-state')"
            "   .getBoundingClientRect(), p = tr.querySelector('progress')"
            "   .getBoundingClientRect(); return [b.height, s.top - b.top, s.right, p.right]; });"
            " return [[t.scrollWidth, t.clientWidth], r,"
            "  t.querySelector('thead').getBoundingClientRect().height]; })()"
        )
        assert box[0] <= box[1], box  # nothing to scroll sideways
        assert head == 0  # the column heads give way to the cards
        for height, state_top, state_right, bar_right in rows:
            assert height < 110 and state_top < 12, rows  # the state on the first line
            assert state_right <= 390 and bar_right <= 390, rows
    finally:
        ctx.close()
