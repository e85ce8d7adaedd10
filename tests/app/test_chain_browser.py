"""Extend from History in Debian's headless Chromium against the session's studio: a finished
job opened in History, "Extend" pressed, and the chain streams into the Longer video section
(opened by it) until its one stitched video plays; History then shows the chain as one item."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from app.studio import stitch
from app.studio.chain_store import ChainStore
from tests.app.test_api import args, finished
from tests.app.test_browser import TIMEOUT_MS, disabled, open_studio, slow_steps
from tests.app.test_history import ledger_of
from tests.app.test_history_browser import ITEM, OPENED_BUTTONS, filter_text, open_item
from tests.app.test_user_text import bait  # noqa: F401  (a fixture: a server counting fetches)

pytestmark = pytest.mark.slow

HERON = f"chain heron {uuid.uuid4().hex[:6]} on a misty lake"
CHAIN_BUTTONS = ("#wp-chain-extend", "#wp-chain-cancel", "#wp-chain-rerun", "#wp-chain-reuse")


def test_extend_from_history_makes_one_stitched_video(studio, context, client):
    status, _, _, rid = finished(
        client.predict(*args(prompt=HERON, seconds=1.0, seed=4242), api_name="/generate")
    )
    assert 'data-state="COMPLETED"' in status, status
    page = open_studio(context, studio.base_url)
    page.get_by_role("button", name="Longer video: Extend or Storyboard").click()
    # no job shown, no chain shown: Extend the shown job, and the chain's buttons, wait
    assert disabled(page, CHAIN_BUTTONS) == [True] * 4
    filter_text(page, HERON, 1)
    open_item(page, HERON)
    assert page.locator("#wp-hist-workflow-box").is_visible()  # a job's filled workflow
    page.locator("#wp-hist-extend").click()
    page.wait_for_function(
        "(() => { const s = document.querySelector('#wp-chain-status');"
        " return s && s.innerText.includes('COMPLETED') && s.innerText.includes('2 of 2'); })()",
        timeout=TIMEOUT_MS,
    )
    page.wait_for_function(
        "(() => { const v = document.querySelector('#wp-chain-video video');"
        " return v && v.readyState >= 2 && v.duration > 0; })()",
        timeout=TIMEOUT_MS,
    )
    assert page.locator("#wp-chain-video").is_visible()  # Extend opened the section
    cid = page.locator("#wp-chain-id textarea, #wp-chain-id input").first.input_value()
    assert disabled(page, CHAIN_BUTTONS[1:]) == [False] * 3  # the chain shown: its buttons
    ledger = ledger_of(studio)
    chain = ChainStore(ledger).get(cid)
    assert chain.kind == "extend" and chain.parent == rid and chain.state == "COMPLETED"
    assert stitch.frame_count(Path(chain.result_path)) == 17 + 17 - 1
    # History: the chain is one item next to the extended job, and opens as the chain
    filter_text(page, HERON, 2)
    item = page.locator(ITEM, has_text="chain, 2 of 2 segments done")
    assert HERON in item.inner_text()
    item.click()
    page.wait_for_function(
        f"document.querySelector('#wp-hist-details').innerText.includes({cid!r})"
    )
    page.wait_for_function(
        "(() => { const v = document.querySelector('#wp-hist-video video');"
        " return v && v.readyState >= 2 && v.duration > 0; })()",
        timeout=TIMEOUT_MS,
    )
    assert rid in page.locator("#wp-hist-details").inner_text()
    assert not page.locator("#wp-hist-workflow-box").is_visible()  # one per segment: none here
    # a chain opened: reused, rerun (the service points to Rerun chain), extended; no one
    # workflow to save
    assert disabled(page, OPENED_BUTTONS) == [False, False, False, True]


def test_a_refused_action_stays_on_screen_until_closed(studio, context):
    """A button's refusal is a toast that stays until the user closes it: the Longer video
    section has no panel of its own to say it in, and Gradio's toasts go after 10 s. The page's
    timers run on Playwright's clock, moved a minute on (checked to fail with Gradio's 10 s)."""
    context.clock.install()
    page = open_studio(context, studio.base_url)
    page.get_by_role("button", name="Longer video: Extend or Storyboard").click()
    page.locator("#wp-chain-run").click()  # no storyboard prompt: refused
    toast = page.locator(".toast-body", has_text="storyboard prompts: are empty; write one")
    toast.wait_for()
    page.clock.fast_forward(60_000)
    # still there, and not closing (a closing toast is made inert as it fades out)
    assert toast.is_visible() and toast.evaluate("e => e.closest('[inert]') === null")
    toast.locator(".toast-close").click()
    toast.wait_for(state="detached")


def test_a_chains_prompts_are_text_and_make_no_browser_fetch(studio, context, client, bait):  # noqa: F811
    """A storyboard whose prompts hold Markdown and HTML images, opened in History (and so in
    the Longer video section): its panels show the prompts as typed, and the browser fetches
    nothing from them."""
    url, hits = bait
    tag = f"chain bait {uuid.uuid4().hex[:6]}"
    md, html = f"![x]({url}/md.png)", f'<img src="{url}/html.png">'
    prompts = f"{tag} {md}\n{html} {tag}"
    status, _, cid = client.predict(
        *args(prompt="a fox", seconds=1.0, seed=5), prompts, False, api_name="/storyboard"
    )
    assert "COMPLETED" in status and "![" not in status, status
    page = open_studio(context, studio.base_url)
    page.get_by_role("button", name="Longer video: Extend or Storyboard").click()
    filter_text(page, tag, 1)
    page.locator(ITEM).first.click()
    for panel in ("#wp-hist-details", "#wp-chain-status"):  # the chain opened shows in both
        page.wait_for_function(
            f"document.querySelector('{panel}').innerText.includes({cid!r})", timeout=TIMEOUT_MS
        )
        text = page.locator(panel).inner_text()
        assert f"{tag} {md}" in text and html in text, text  # as typed, as text
        assert page.locator(f"{panel} img").count() == 0
    fetched = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in fetched if u.startswith(url)] == [] and hits == []


def test_a_chain_cancelled_shows_its_end_in_history_without_a_refresh(
    studio, context, client, stack
):
    """A running storyboard opened in History (so followed in the Longer video section) and
    cancelled there: History's panel and gallery item say CANCELLED once the chain has ended,
    with no press of Refresh (they kept RUNNING)."""
    from tests.app.test_history import ledger_of
    from tests.helpers import wait_for

    tag = f"chain cancel {uuid.uuid4().hex[:6]}"
    slow_steps(stack, 1.0)  # segments of several seconds: the chain is cancelled mid-way
    try:
        prompts = f"{tag} rises\n{tag} loops\n{tag} lands"
        client.submit(
            *args(prompt="a kite", seconds=1.0, seed=9), prompts, False, api_name="/storyboard"
        )
        store = ChainStore(ledger_of(studio))
        chain = wait_for(lambda: next((c for c in store.recent() if tag in str(c.plan)), None),
                         60, "the chain written")  # fmt: skip
        page = open_studio(context, studio.base_url)
        page.get_by_role("button", name="Longer video: Extend or Storyboard").click()
        filter_text(page, tag, 1)
        item = page.locator(ITEM).first
        assert "RUNNING" in item.inner_text()
        item.click()
        page.wait_for_function(
            f"document.querySelector('#wp-hist-details').innerText.includes({chain.id!r})"
        )
        page.locator("#wp-chain-cancel:not([disabled])").click()
    finally:
        slow_steps(stack, 0.1)
    page.wait_for_function(
        "document.querySelector('#wp-hist-details').innerText.includes('CANCELLED')",
        timeout=60_000,
    )
    page.wait_for_function(
        f"document.querySelector('{ITEM}').innerText.startsWith('CANCELLED')", timeout=10_000
    )
    assert store.get(chain.id).state == "CANCELLED"


def test_the_shown_jobs_extension_is_priced_on_its_own_line(studio, context, client):
    """A job shown on the page (here opened by id) has its extension priced at once, its prompt
    blank (the job's own), on the extension's own line; Extend the shown job then sends it."""
    prompt = f"extend line {uuid.uuid4().hex[:6]} a swan"
    *_, rid = finished(
        client.predict(*args(prompt=prompt, seconds=1.0, seed=77), api_name="/generate")
    )
    page = open_studio(context, studio.base_url)
    page.get_by_role("button", name="Longer video: Extend or Storyboard").click()
    page.get_by_text("Open a job by id").click()
    page.locator("#wp-attach-id textarea, #wp-attach-id input").first.fill(rid)
    page.locator("#wp-attach").click()
    page.wait_for_function(
        "document.querySelector('#wp-chain-extend-quote').innerText.includes("
        "'Extend: 1 new segment → one video of 33 frames')",
        timeout=TIMEOUT_MS,
    )
    assert "GPU s" in page.locator("#wp-chain-extend-quote").inner_text()
    assert "Extend" not in page.locator("#wp-chain-quote").inner_text()  # the storyboard's
    page.locator("#wp-chain-extend:not([disabled])").click()
    page.wait_for_function(
        "(() => { const s = document.querySelector('#wp-chain-status');"
        " return s && s.innerText.includes('2 of 2 segments done'); })()",
        timeout=TIMEOUT_MS,
    )
    cid = page.locator("#wp-chain-id textarea, #wp-chain-id input").first.input_value()
    chain = ChainStore(ledger_of(studio)).get(cid)
    assert chain.parent == rid and chain.state == "COMPLETED"


def test_rerun_chain_asks_with_its_price_then_sends_that_chain(studio, context, client):
    """Rerun chain first shows the rerun's price (and any limit it breaks), as Rerun exactly
    does; nothing is sent until Confirm rerun chain, and the chain sent is charged that price
    (it sent paid segments at once, at a price never shown)."""
    from tests.helpers import wait_for

    tag = f"chain rerun {uuid.uuid4().hex[:6]}"
    status, _, cid = client.predict(
        *args(prompt="a kite", seconds=1.0, seed=21), f"{tag} rises\n{tag} lands", False,
        api_name="/storyboard",
    )  # fmt: skip
    assert "COMPLETED" in status, status
    store = ChainStore(ledger_of(studio))
    page = open_studio(context, studio.base_url)
    page.get_by_role("button", name="Longer video: Extend or Storyboard").click()
    filter_text(page, tag, 1)
    page.locator(ITEM).first.click()  # opened: the chain shows in the section too
    page.wait_for_function(
        f"document.querySelector('#wp-chain-id textarea, #wp-chain-id input').value === {cid!r}"
    )
    page.locator("#wp-chain-rerun:not([disabled])").click()
    note = page.locator("#wp-chain-rerun-note")
    note.get_by_text("Confirm rerun chain", exact=False).wait_for()
    text = note.inner_text()
    assert f"Rerun chain {cid}" in text and "per segment" in text, text
    asked = float(text.split(" for the chain")[0].rsplit("$", 1)[1])
    assert [c.id for c in store.recent() if tag in str(c.plan)] == [cid]  # nothing sent yet
    page.locator("#wp-chain-rerun-confirm").click()
    page.wait_for_function(
        "(() => { const i = document.querySelector('#wp-chain-id textarea, #wp-chain-id input');"
        f" return i.value && i.value !== {cid!r}; }})()"
    )
    assert not page.locator("#wp-chain-rerun-confirm").is_visible()
    (again,) = [c for c in store.recent() if tag in str(c.plan) and c.id != cid]
    assert round(again.quote["dollars"], 4) == asked  # charged what the question showed
    wait_for(lambda: store.get(again.id).state == "COMPLETED", 120, "the rerun chain's end")


def test_the_extension_is_priced_only_while_its_section_is_open(studio, context):
    """A Generate with the Longer video section closed asks nothing about an extension (each
    new job id cost an extend_quote event: the studio's queue and a pass over the page); opened,
    the section prices the shown job's extension, and again at the end of the next job."""
    from tests.app.test_browser import start_job, wait_state

    page = open_studio(context, studio.base_url)
    config = page.evaluate("window.gradio_config")
    fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "extend_quote")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if f'"fn_index":{fn}' in (
        (r.post_data or "").replace(" ", "")) else None)  # fmt: skip
    start_job(page, f"closed section {uuid.uuid4().hex[:6]} a gull", quality=False)
    wait_state(page, "d.state === 'COMPLETED'")
    assert asked == []  # the section closed: no extension priced
    page.get_by_role("button", name="Longer video: Extend or Storyboard").click()
    line = page.locator("#wp-chain-extend-quote")
    line.get_by_text("Extend: 1 new segment", exact=False).wait_for()
    assert len(asked) == 1  # as it opened
    # the next job: its extension cannot be priced while it runs, and is once it has ended
    job = start_job(page, f"open section {uuid.uuid4().hex[:6]} a tern", quality=False)
    line.get_by_text(f"{job['rid']} has no finished video to extend", exact=False).wait_for()
    wait_state(page, "d.state === 'COMPLETED'")
    line.get_by_text("Extend: 1 new segment", exact=False).wait_for()
