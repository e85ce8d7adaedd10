"""The studio in Debian's headless Chromium (Playwright): form, quote, generate, progress, the
video playing, a closed-and-reopened tab and a restarted studio finding their job again."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.app.conftest import S3_SECRET, start_studio
from tests.helpers import free_port

pytestmark = pytest.mark.slow

TIMEOUT_MS = 120_000  # generous: other suites may load the 2 cores; waits end on conditions
STATE = "document.querySelector('#wp-status')"
# The quote line's own text: #wp-quote's innerText also holds the timer of Gradio's status tracker
# (hidden, show_progress="hidden") while a quote is on its way ("0.1s" before the line).
QUOTE_LINE = "#wp-quote [data-testid=markdown]"
QUOTE = f"document.querySelector('{QUOTE_LINE}')"
# The quote line prices the form as it stands, prompt included: a form without a prompt is
# priced too, beside the prompt's refusal (Callbacks.quoted), so a price alone does not say that
# the typed prompt's quote has come.
QUOTED_JS = (
    f"!!{QUOTE} && {QUOTE}.innerText.includes('GPU s')"
    f" && !{QUOTE}.innerText.includes('prompt: is empty')"
)


def wait_quoted(page) -> None:
    """Until the quote line prices the form as it stands, prompt included."""
    page.wait_for_function(QUOTED_JS)


def open_studio(context, url: str):
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    loaded(page)
    return page


def loaded(page) -> None:
    """Wait for the page's load chain (form update -> quote, then the health panel) to finish, so
    a click is not undone by a late load answer (nor the studio stopped under a page still
    fetching its parts)."""
    page.locator("#wp-prompt textarea").wait_for()
    page.wait_for_function(
        f"{QUOTE} && {QUOTE}.innerText.trim() !== '' &&"
        " document.querySelector('#wp-health') !== null"
    )


def disabled(page, selectors) -> list[bool]:
    """Whether each button (by CSS selector) is disabled."""
    return [page.locator(s).is_disabled() for s in selectors]


def state(page) -> dict:
    return page.evaluate(f"(() => {{ const s = {STATE}; return s ? {{...s.dataset}} : null; }})()")


def wait_state(page, js_condition: str) -> dict:
    page.wait_for_function(
        f"(() => {{ const s = {STATE}; if (!s) return false; const d = s.dataset; "
        f"const f = parseFloat(d.fraction); return {js_condition}; }})()",
        timeout=TIMEOUT_MS,
    )
    return state(page)


def start_job(page, prompt: str, quality: bool = True) -> dict:
    if quality:
        page.locator("#wp-mode input[value='quality']").check()
        page.locator("#wp-advanced").get_by_role("button", name="Advanced").click()
        page.wait_for_function(
            "document.querySelector('#wp-negative label, #wp-negative span') &&"
            " !document.querySelector('#wp-negative').innerText.includes('ignored in turbo')"
        )
    page.locator("#wp-prompt textarea").fill(prompt)
    wait_quoted(page)
    page.locator("#wp-generate").click()
    return wait_state(page, "d.rid && d.rid.startsWith('wp-')")


def wait_video_playable(page) -> dict:
    page.wait_for_function(
        "(() => { const v = document.querySelector('#wp-video video');"
        " return v && v.readyState >= 2 && v.duration > 0; })()",
        timeout=TIMEOUT_MS,
    )
    page.evaluate("document.querySelector('#wp-video video').muted = true")
    page.evaluate("document.querySelector('#wp-video video').play()")
    page.wait_for_function(
        "document.querySelector('#wp-video video').currentTime > 0", timeout=TIMEOUT_MS
    )
    return page.evaluate(
        "(() => { const v = document.querySelector('#wp-video video');"
        " return {readyState: v.readyState, duration: v.duration, t: v.currentTime}; })()"
    )


def slow_steps(stack, delay: float) -> None:
    for url in stack.comfy_urls:
        req = urllib.request.Request(
            url + "/emulator/config",
            data=json.dumps({"step_delay": delay}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.load(r)["step_delay"] == delay


@pytest.fixture
def slow_stack(stack):
    slow_steps(stack, 0.3)
    yield stack
    slow_steps(stack, 0.1)


def test_form_quote_generate_progress_and_playback(studio, context, slow_stack):
    page = open_studio(context, studio.base_url)
    # image inputs only where the pipeline uses them
    assert not page.locator("#wp-start").is_visible()
    page.locator("#wp-pipeline input").click()
    page.get_by_role("option", name="First and last frame to video (Wan 2.2 14B)").click()
    page.locator("#wp-end").wait_for(state="visible")
    assert page.locator("#wp-start").is_visible()
    page.locator("#wp-pipeline input").click()
    page.get_by_role("option", name="Text to video (Wan 2.2 14B)").click()
    page.locator("#wp-end").wait_for(state="hidden")
    assert "81 frames" in page.locator("#wp-frames").inner_text()  # 5 s at 16 fps

    job = start_job(page, "a lighthouse in a storm, waves crashing")
    first = wait_state(page, "d.state === 'IN_PROGRESS' && f > 0.1 && f < 0.9")
    line = page.locator("#wp-status .wp-line").inner_text()
    assert "Sampling: step" in line and "expert" in line and "elapsed" in line, line
    later = wait_state(page, f"f > {float(first['fraction'])}")
    assert later["rid"] == job["rid"]
    done = wait_state(page, "d.state === 'COMPLETED'")
    assert float(done["fraction"]) == 1.0
    video = wait_video_playable(page)
    assert video["duration"] > 1.0  # 81 frames at 16 fps
    details = page.locator("#wp-details").inner_text()
    assert "Actual:" in details and "seed=" in details and "Quote:" in details
    storage = page.evaluate("JSON.stringify(window.localStorage)")
    assert slow_stack.api_key not in storage and S3_SECRET not in storage
    assert slow_stack.api_key not in page.content()


def test_a_refused_live_stream_is_opened_again_until_the_jobs_end(studio, context, slow_stack):
    """A proxy in front of the studio answers 502 while the studio restarts: the page asks for
    the job's view and, while the job is still live, opens its stream again (at growing
    intervals), so it still shows the end."""
    page = open_studio(context, studio.base_url)
    refused: list[str] = []

    def bad_gateway(route) -> None:
        if len(refused) < 2:
            refused.append(route.request.url)
            route.fulfill(status=502, body="Bad Gateway")
        else:
            route.continue_()

    page.route("**/wanpod/live/**", bad_gateway)
    job = start_job(page, "a kite behind a gateway")
    done = wait_state(page, f"d.rid === '{job['rid']}' && d.state === 'COMPLETED'")
    assert len(refused) == 2 and done["final"] == "1"


def test_closed_tab_reopened_finds_its_job(studio, context, slow_stack):
    page = open_studio(context, studio.base_url)
    job = start_job(page, "a paper boat on a river")
    wait_state(page, "d.state === 'IN_PROGRESS'")
    page.close()
    again = open_studio(context, studio.base_url)
    seen = wait_state(again, f"d.rid === '{job['rid']}'")
    assert seen["state"] in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    wait_state(again, "d.state === 'COMPLETED'")
    wait_video_playable(again)


def test_restarted_studio_resumes_the_job(stack, context, slow_stack, tmp_path):
    port = free_port()
    app = start_studio(stack, tmp_path / "data", port)
    try:
        page = open_studio(context, app.base_url)
        job = start_job(page, "a hot air balloon over hills")
        wait_state(page, "d.state === 'IN_PROGRESS'")
        app.proc.kill()  # no clean shutdown: the ledger alone must carry the job
        app.proc.wait(10)
        page.close()
        app = start_studio(stack, tmp_path / "data", port)
        again = open_studio(context, app.base_url)
        wait_state(again, f"d.rid === '{job['rid']}'")
        wait_state(again, "d.state === 'COMPLETED'")
        wait_video_playable(again)
    finally:
        app.stop()


# Follows the animation frames the page asks the browser for. An init script runs before any of
# the page's own scripts, so this wrapper sits under the studio's early script
# (app/ui/early_script.py) and sees only the requests that reach the browser: `__wpPending` is
# how many of them are waiting for their frame, `__wpChained` how many were asked for from a
# frame's own callback. A frame loop (each frame's callback asking for the next, as Gradio's
# leaked status-tracker timer does) keeps one waiting at every moment between frames and chains
# one per frame; a page without one has none waiting once its transitions are over.
FRAMES_JS = """
window.__wpFrames = 0;
window.__wpPending = 0;
window.__wpChained = 0;
const native = window.requestAnimationFrame.bind(window);
const nativeCancel = window.cancelAnimationFrame.bind(window);
const waiting = new Set();
let inFrame = 0;
window.requestAnimationFrame = (cb) => {
  window.__wpFrames += 1;
  if (inFrame) window.__wpChained += 1;  /* asked for from a frame's own callback: a loop */
  const id = native((t) => {
    waiting.delete(id);
    window.__wpPending = waiting.size;
    inFrame += 1;
    try { cb(t); } finally { inFrame -= 1; }
  });
  waiting.add(id);
  window.__wpPending = waiting.size;
  return id;
};
window.cancelAnimationFrame = (id) => {
  waiting.delete(id);
  window.__wpPending = waiting.size;
  nativeCancel(id);
};
"""


def test_an_idle_page_has_no_frame_loop(studio, browser):
    # Gradio 6's page loader leaves its status tracker's timer asking for a frame 60 times a
    # second forever; the studio's early script runs status-tracker timers at 4 Hz on a timer
    # instead. Polled on a timer (Playwright's default polling asks for animation frames).
    ctx = browser.new_context()
    try:
        ctx.add_init_script(FRAMES_JS)
        page = open_studio(ctx, studio.base_url)
        assert page.evaluate("window.__wpFrames") > 0  # the wrapper sees the page's frames
        page.wait_for_function("window.__wpPending === 0", polling=50, timeout=TIMEOUT_MS)
        # the page still works: status-tracker timers run, on a timer, and the form answers
        page.locator("#wp-prompt textarea").fill("an idle page, then a quote")
        wait_quoted(page)
    finally:
        ctx.close()


CHAINED_MAX = 10  # Gradio's one-off "next frame" waits (0 seen); a loop chains ~30 a second


def test_a_page_following_a_job_has_no_frame_loop(studio, browser, stack):
    # While an event runs, Gradio's status tracker starts an animation on Svelte's shared frame
    # loop, which asks for its next frames itself: the early script slows what a slowed frame
    # asks for too, so a page following a job steps that loop on a timer, not at the display's
    # rate (before: ~30 frames a second chained for as long as the job ran).
    slow_steps(stack, 4.0)
    ctx = browser.new_context()
    try:
        ctx.add_init_script(FRAMES_JS)
        page = open_studio(ctx, studio.base_url)
        start_job(page, "a lighthouse, followed", quality=False)
        # Gradio's one-off wait for an embedding iframe (up to 60 frames from the page's mount,
        # spread out while the page draws nothing) has ended: a loop always has one waiting
        page.wait_for_function("window.__wpPending === 0", polling=50, timeout=TIMEOUT_MS)
        page.evaluate("window.__wpChained = 0")
        done = f"{STATE}.dataset.state === 'COMPLETED'"
        page.wait_for_function(done, polling=100, timeout=TIMEOUT_MS)  # a timer, not frames
        assert page.evaluate("window.__wpChained") <= CHAINED_MAX
    finally:
        slow_steps(stack, 0.1)
        ctx.close()


# The seconds a clock text shows: " · 1 min 05 s elapsed · about ..." -> 65
CLOCK_SECONDS_JS = """
(c) => {
  const m = c.textContent.split(" · ")[1].match(/^(?:(\\d+) min )?(\\d+) s elapsed$/);
  return m ? 60 * parseInt(m[1] || "0") + parseInt(m[2]) : -1;
}
"""


def test_the_page_counts_elapsed_time_between_status_updates(studio, context, stack):
    # The server sends a live job's status when it changes (stage, step...) and every 30 s; in
    # between, the page's own clock advances the elapsed time from the last status's data. The
    # server renders a clock at its `data-elapsed` (rounded): a clock showing 2 s more than its
    # own data was counted by the page. Counted while sampling (4 s steps), where the line also
    # has a time left to count down: a job can show "Queued" (no time left) for 2 s and more
    # before that, the tracker's polls backing off while a job is queued (app/studio/polling.py).
    slow_steps(stack, 4.0)
    try:
        page = open_studio(context, studio.base_url)
        start_job(page, "a clock tower at dusk", quality=False)
        page.wait_for_function(
            f"""(() => {{
              const line = document.querySelector('#wp-status .wp-line');
              const c = document.querySelector('#wp-status .wp-clock');
              if (!c || !line || !line.textContent.startsWith('Sampling')) return false;
              return ({CLOCK_SECONDS_JS})(c) >= Math.ceil(parseFloat(c.dataset.elapsed)) + 2;
            }})()""",
            polling=100,
            timeout=TIMEOUT_MS,
        )
        text = page.locator("#wp-status .wp-clock").inner_text()
        assert "elapsed" in text and "left" in text, text
        wait_state(page, "d.state === 'COMPLETED'")
        assert page.locator("#wp-status .wp-clock").count() == 0  # final: no clock
        assert page.locator("#wp-status .wp-line").inner_text().startswith("Done in")
    finally:
        slow_steps(stack, 0.1)
