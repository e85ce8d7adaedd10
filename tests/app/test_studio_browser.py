"""Issue 14 in the browser: failures and states stay on screen, the job buttons wait for a job,
the layout keeps the result in view, the "Use via API" snippet runs as shown, and the demo video
shows the job (its aspect ratio scaled down, its prompt as a caption)."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from emulators.comfyui import scene
from emulators.comfyui.config import VIDEO_MAX_SIDE
from emulators.comfyui.values import Look
from tests.app.conftest import start_studio
from tests.app.test_browser import (
    TIMEOUT_MS,
    disabled,
    open_studio,
    slow_steps,
    start_job,
    state,
    wait_quoted,
    wait_state,
    wait_video_playable,
)
from tests.app.test_live_route import join
from tests.app.test_post_steps_live import hold
from tests.emulators.video_checks import Video
from tests.helpers import free_port
from workflows.fill import fill

pytestmark = pytest.mark.slow

JOB_BUTTONS = ("wp-cancel", "wp-rerun", "wp-reuse", "wp-draft-final")
JOB_SELECTORS = tuple(f"#{b}" for b in JOB_BUTTONS)
LINE = "#wp-status .wp-line"
# Every state the status panel shows, in order, recorded as it changes (set before a click).
RECORD_STATES = """
window.__wpStates = [];
new MutationObserver(() => {
  const s = document.querySelector('#wp-status');
  const st = s && s.dataset.state;
  if (st && window.__wpStates[window.__wpStates.length - 1] !== st) window.__wpStates.push(st);
}).observe(document.querySelector('#wp-status-box'), {subtree: true, childList: true,
  attributes: true});
"""


def transitions(page) -> list[str]:
    """How long Generate and the job buttons take to change (their CSS transitions)."""
    return page.evaluate(
        "ids => ids.map(i => getComputedStyle(document.getElementById(i)).transitionDuration)",
        ["wp-generate", *JOB_BUTTONS],
    )


def test_job_buttons_wait_for_a_job_and_cancel_is_one_state_with_its_cost(studio, context, stack):
    page = open_studio(context, studio.base_url)
    # no job yet: nothing to cancel, rerun, reuse, promote
    assert disabled(page, JOB_SELECTORS) == [True] * 4
    # and Cancel looks so too: as Rerun exactly does (it looked a faded, live red)
    looks = "id => getComputedStyle(document.getElementById(id)).backgroundColor"
    assert page.evaluate(looks, "wp-cancel") == page.evaluate(looks, "wp-rerun")
    # they switch at once as a job starts and ends: no frames drawn for a fade (app/ui/page.py)
    assert transitions(page) == ["0s"] * 5
    slow_steps(stack, 1.0)
    try:
        start_job(page, "a slow glacier, time-lapse")
        page.wait_for_function("!document.querySelector('#wp-cancel').disabled", timeout=TIMEOUT_MS)
        assert disabled(page, JOB_SELECTORS) == [False] * 4
        assert page.evaluate(looks, "wp-cancel") != page.evaluate(looks, "wp-rerun")  # red
        wait_state(page, "d.state === 'IN_PROGRESS' && f > 0.12")
        page.locator("#wp-cancel").click()
        done = wait_state(page, "d.state === 'CANCELLED'")
    finally:
        slow_steps(stack, 0.1)
    line = page.locator(LINE).inner_text()
    assert line.startswith("Cancelled") and line.lower().count("cancel") == 1, line
    assert "billed" in line and "$" in line, line  # the partial cost
    assert 0.1 < float(done["fraction"]) < 1.0  # the bar kept where the job stopped
    assert page.evaluate("document.querySelector('#wp-status progress').value") > 0.1
    assert "Error" not in page.locator("#wp-status-box").inner_text()
    # nothing left to cancel; the job can still be rerun, reused, promoted
    page.wait_for_function("document.querySelector('#wp-cancel').disabled", timeout=TIMEOUT_MS)
    assert disabled(page, JOB_SELECTORS) == [True, False, False, False]


def test_open_a_job_by_an_unknown_id_says_it_is_unknown(studio, context):
    page = open_studio(context, studio.base_url)
    page.get_by_role("button", name="Open a job by id").click()
    page.locator("#wp-attach-id textarea, #wp-attach-id input").first.fill("wp-nosuchjob42")
    page.locator("#wp-attach").click()
    wait_state(page, "d.state === 'UNKNOWN'")
    line = page.locator(LINE).inner_text()
    assert "Unknown job" in line and "wp-nosuchjob42" in line, line
    assert disabled(page, JOB_SELECTORS) == [True] * 4


def test_an_unreachable_endpoint_keeps_the_failure_on_screen(stack, context, tmp_path):
    closed = free_port()  # nothing listens here
    app = start_studio(stack, tmp_path / "data", RUNPOD_API_BASE=f"http://127.0.0.1:{closed}/v2")
    try:
        page = open_studio(context, app.base_url)
        # while health is red, the Generate area says so
        page.wait_for_function(
            "document.querySelector('#wp-generate-note').innerText.includes('not healthy')"
        )
        page.evaluate(RECORD_STATES)
        page.locator("#wp-prompt textarea").fill("a lighthouse nobody can reach")
        wait_quoted(page)
        page.locator("#wp-generate").click()
        wait_state(page, "d.state === 'FAILED'")
        page.wait_for_function("window.__wpStates.includes('FAILED')")
        states = page.evaluate("window.__wpStates")
        assert states.index("SUBMITTING") < states.index("FAILED"), states  # "Submitting…" first
        line = page.locator(LINE).inner_text()
        assert line.startswith("Failed: ") and "did not take the job" in line, line
        assert state_after_settling(page) == "FAILED"  # it stays: no fall back to "No job yet"
        # History's gallery, off screen at the job's end, shows the FAILED row once it comes
        # into view, without a Refresh
        assert "No jobs yet" in page.locator("#wp-hist-note").inner_text()
        page.locator("#wp-hist-gallery").scroll_into_view_if_needed()
        page.wait_for_function(
            "document.querySelector('#wp-hist-note').innerText.includes('1 job shown')"
        )
        assert page.locator("#wp-status-box .error").count() == 0  # no bare "Error" overlay
        # again: "Submitting…" at the click, then the failure (whether or not its panel is the
        # same as the one before)
        page.evaluate("window.__wpStates = []")
        page.locator("#wp-generate").click()
        page.wait_for_function("window.__wpStates.includes('SUBMITTING')")
        assert wait_state(page, "d.state !== 'SUBMITTING'")["state"] == "FAILED"
        assert page.locator(LINE).inner_text().startswith("Failed: ")
        assert stack.api_key not in page.content()
        # the studio sends the page's Generate one answer (the page said "Submitting…"
        # itself); an API client, which has no page, gets "Submitting…" first from the studio
        fields = {"wp-prompt": "a lighthouse nobody can reach"}
        messages = list(join(app.base_url, "page_generate", **fields))  # a direct request
        assert [m["msg"] for m in messages] == ["process_completed"], messages
        assert 'data-state="FAILED"' in messages[-1]["output"]["data"][0], messages
        answers = [m["output"]["data"][0] for m in join(app.base_url, "generate", **fields)
                   if m["msg"] == "process_generating"]  # fmt: skip
        assert 'data-state="SUBMITTING"' in answers[0], answers
        assert 'data-state="FAILED"' in str(answers[-1]), answers  # a diff of the one before
    finally:
        app.stop()


def test_generate_says_submitting_at_once_and_a_refusal_says_why_in_the_panel(studio, context):
    """The page shows "Submitting…" at the click, before the studio answers (which it does
    once, in a direct request: the job's first view); a refused Generate says why in the
    panel, where "Submitting…" was (Gradio's page shows no message for a direct request that
    fails)."""
    page = open_studio(context, studio.base_url)
    page.evaluate(RECORD_STATES)
    page.locator("#wp-prompt textarea").fill("")
    page.locator("#wp-generate").click()
    wait_state(page, "d.state === 'REFUSED'")
    assert page.evaluate("window.__wpStates") == ["SUBMITTING", "REFUSED"]
    line = page.locator(LINE).inner_text()
    assert line.startswith("Not submitted: prompt: is empty"), line
    assert state_after_settling(page) == "REFUSED"  # it stays

    page.evaluate("window.__wpStates = []")
    job = start_job(page, "a kite over the dunes", quality=False)
    wait_state(page, "d.state === 'COMPLETED'")
    states = page.evaluate("window.__wpStates")
    assert states[0] == "SUBMITTING" and states[-1] == "COMPLETED", states
    assert "IDLE" not in states and job["rid"].startswith("wp-")


def test_a_refusal_over_a_live_job_says_why_under_it_and_follows_the_job_on(studio, context, stack):
    """Generate refused while the page follows a live job: the job's panel comes back with the
    reason under its line, and the page follows the job on, to its end and its video (the
    panel's "Submitting…" stopped its live stream: the page opens it again)."""
    save = next(n for n, v in fill("t2v_14b", {"prompt": "x"}).workflow.items()
                if v["class_type"] == "SaveVideo")  # fmt: skip
    page = open_studio(context, studio.base_url)
    hold(stack, save)  # every job waits at its SaveVideo until let go
    try:
        job = start_job(page, "a heron waits in the reeds", quality=False)
        wait_state(page, f"d.rid === '{job['rid']}' && d.state === 'IN_PROGRESS'")
        page.locator("#wp-prompt textarea").fill("")
        page.locator("#wp-generate").click()
        why = page.locator("#wp-status .wp-refused")
        why.wait_for()
        assert why.inner_text().startswith("Not submitted: prompt: is empty"), why.inner_text()
        shown = state(page)
        assert shown["rid"] == job["rid"] and shown["final"] == "0", shown
    finally:
        hold(stack, None)
    wait_state(page, f"d.rid === '{job['rid']}' && d.state === 'COMPLETED'")
    assert wait_video_playable(page)["duration"] > 0  # its end asked for: the video shown


def state_after_settling(page) -> str:
    page.wait_for_function(  # the events after Generate (History's refresh) have run
        "!document.querySelector('#wp-hist-note .pending, #wp-status-box .pending')"
    )
    return page.evaluate("document.querySelector('#wp-status').dataset.state")


def test_mobile_ctrl_enter_generates_and_scrolls_to_the_progress(studio, browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = open_studio(ctx, studio.base_url)
        status_top = page.evaluate(
            "document.querySelector('#wp-status-box').getBoundingClientRect().top"
        )
        assert status_top > 844  # below the fold before Generate on a phone
        page.locator("#wp-prompt textarea").fill("a cat on a windowsill, rain outside")
        wait_quoted(page)
        page.locator("#wp-prompt textarea").press("Control+Enter")
        wait_state(page, "d.rid && d.rid.startsWith('wp-')")
        box = page.evaluate(
            "(() => { const r = document.querySelector('#wp-status-box')"
            ".getBoundingClientRect(); return [r.top, r.bottom]; })()"
        )
        assert box[0] >= -2 and box[1] <= 844, box  # the progress is in view
        wait_state(page, "d.state === 'COMPLETED'")
        # this session's strip shows the result
        page.locator("#wp-recent img, #wp-recent video").first.wait_for()
        # as a tile that fits the strip, not the strip's width of it cut to the strip's height
        tile, strip = page.evaluate(
            "[document.querySelector('#wp-recent img'), document.querySelector('#wp-recent')]"
            ".map(e => { const r = e.getBoundingClientRect(); return [r.width, r.bottom]; })"
        )
        assert tile[0] <= strip[0] / 3 and tile[1] <= strip[1] + 1, (tile, strip)
    finally:
        ctx.close()


def test_on_a_phone_a_refused_value_brings_its_field_into_view(studio, browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = open_studio(ctx, studio.base_url)  # its prompt empty
        page.locator("#wp-generate").scroll_into_view_if_needed()
        page.locator("#wp-generate").click()  # the page scrolls to the status panel first
        wait_state(page, "d.state === 'REFUSED'")
        page.wait_for_function(
            "(() => { const r = document.querySelector('#wp-prompt').getBoundingClientRect();"
            " return r.top >= 0 && r.bottom <= window.innerHeight; })()"
        )
        assert "prompt: is empty" in page.locator("#wp-prompt .wp-field-error").inner_text()
    finally:
        ctx.close()


def test_desktop_keeps_the_result_beside_the_form(studio, browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = open_studio(ctx, studio.base_url)
        # scrolled down the form to Generate, the result column (progress, video) stays in view
        page.evaluate("document.querySelector('#wp-health-box').scrollIntoView({block: 'end'})")
        page.wait_for_function("window.scrollY > 300")
        box = page.evaluate(
            "(() => { const r = document.querySelector('#wp-status-box')"
            ".getBoundingClientRect(); const f = document.querySelector('#wp-prompt')"
            ".getBoundingClientRect(); const g = document.querySelector('#wp-generate')"
            ".getBoundingClientRect(); return [r.top, r.left, f.right, g.top]; })()"
        )
        assert 0 <= box[0] < 100 and box[1] >= box[2], box  # beside the form, at the top
        assert box[3] < 900, box  # and Generate is in view too
    finally:
        ctx.close()


def caption_contrast(frame: Image.Image, prompt: str, seed: int, requested) -> float:
    """How much brighter the frame is where `prompt`'s caption letters are drawn than in the
    rest of its caption band (white letters on a dark band: large when the caption is there)."""
    bands = scene._bands(Look(caption=prompt, seed=seed), requested, frame.size)
    band, (x, y) = bands[-1]
    letters = band.getchannel("A").point(lambda a: 255 if a == 255 else 0)
    gray = frame.convert("L").crop((x, y, x + band.width, y + band.height))
    inside = ImageStat.Stat(gray, letters).mean[0]
    outside = ImageStat.Stat(gray, ImageChops.invert(letters)).mean[0]
    return inside - outside


def test_demo_video_has_the_jobs_aspect_and_its_prompt_as_caption(studio, context):
    prompt = "a red kite over a green hill, wide shot"
    page = open_studio(context, studio.base_url)
    page.locator("#wp-resolution input").click()
    page.get_by_role("option", name="480p landscape").click()
    page.locator("#wp-seed input").fill("77")
    page.locator("#wp-randomize input").uncheck()
    page.locator("#wp-prompt textarea").fill(prompt)
    wait_quoted(page)
    page.locator("#wp-generate").click()
    wait_state(page, "d.state === 'COMPLETED'")
    page.locator("#wp-video video").wait_for()
    page.wait_for_function("document.querySelector('#wp-cancel').disabled", timeout=TIMEOUT_MS)
    # a finished job: nothing to cancel
    assert disabled(page, JOB_SELECTORS) == [True, False, False, False]
    src = page.evaluate("document.querySelector('#wp-video video').src")
    path = Path(urllib.parse.unquote(src.split("file=", 1)[1]))
    video = Video(path.read_bytes())  # the stored mp4, decoded with PyAV
    side = VIDEO_MAX_SIDE
    assert video.size == (side, side * 480 // 832 // 8 * 8), video.size  # 832x480 -> 320x184
    frame = video.frames[len(video.frames) // 2]
    shown = caption_contrast(frame, prompt, 77, (832, 480))
    other = caption_contrast(frame, "a blue whale under a grey sea", 77, (832, 480))
    assert shown > 80 and shown > other + 40, (shown, other)


def test_the_use_via_api_snippet_runs_as_shown(studio, context, tmp_path):
    page = open_studio(context, studio.base_url)
    page.get_by_text("Use via API").first.click()
    code = page.locator("code, pre").filter(has_text='api_name="/generate"').first
    code.wait_for()
    snippet = code.inner_text()
    assert "Client(" in snippet and "handle_file" not in snippet, snippet
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "COMPLETED" in done.stdout, done.stdout[-2000:]
