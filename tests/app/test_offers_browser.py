"""The LoRA picker and the post-step options in headless Chromium: picking a pair (its low-noise
strength appears, the job runs with it, the details name it, Reuse puts it back in the picker, the
5B refuses it next to the picker), a file name typed into a row (judged as a picked file), and
smooth motion on an endpoint without the RIFE node (the option is disabled and says what to
install)."""

from __future__ import annotations

import pytest

from tests.app.conftest import USER_LORAS
from tests.app.test_browser import open_studio, wait_state

pytestmark = pytest.mark.slow
HIGH, LOW, _ = USER_LORAS["loras"]


def open_extras(page) -> None:
    """The accordion open, with the endpoint's inventory fetched (the refresh button waits)."""
    page.get_by_text("Your LoRAs · upscale · smooth motion").click()
    page.locator("#wp-offers-refresh").click()
    page.wait_for_function(
        "document.querySelector('#wp-offers-note')?.innerText.includes(\"endpoint's inventory:\")"
    )


def pick(page, row: int, name: str) -> None:
    page.locator(f"#wp-lora-{row} input").click()
    page.get_by_role("option", name=name, exact=False).first.click()


def test_picking_a_pair_runs_with_it_and_reuse_brings_it_back(volume_studio, context):
    page = open_studio(context, volume_studio.base_url)
    page.locator("#wp-prompt textarea").fill("a heron lifts off a misty lake")
    open_extras(page)
    assert page.locator("#wp-lora-1-low").is_hidden()
    pick(page, 1, "style/my_style · pair")
    page.locator("#wp-lora-1-low").wait_for(state="visible")  # a pair: per-expert strengths
    page.locator("#wp-lora-row-2").wait_for(state="visible")  # room for the next LoRA
    page.locator("#wp-lora-1-low input[type='number']").fill("0.6")
    page.locator("#wp-lora-1-low input[type='number']").press("Enter")
    page.wait_for_function("document.querySelector('#wp-quote')?.innerText.includes('(0.6)')")
    quote = page.locator("#wp-quote").inner_text()
    assert f"Adds: LoRAs {HIGH} (1) + {LOW} (0.6)" in quote, quote
    page.locator("#wp-generate").click()
    wait_state(page, "d.state === 'COMPLETED'")
    details = page.locator("#wp-details").inner_text()
    assert f"LoRAs: {HIGH} (1) + {LOW} (0.6)" in details, details

    page.locator("#wp-lora-1 input").click()  # change the form, then Reuse restores the job's
    page.get_by_role("option", name="none", exact=False).first.click()
    page.locator("#wp-lora-1-low").wait_for(state="hidden")
    page.locator("#wp-reuse").click()
    page.locator("#wp-lora-1-low").wait_for(state="visible")
    page.wait_for_function(
        "document.querySelector('#wp-lora-1 input')?.value.startsWith('style/my_style · pair')"
    )
    assert page.locator("#wp-lora-1-low input[type='number']").input_value() == "0.6"

    page.locator("#wp-pipeline input").click()  # the 5B: one model, so the pair is refused
    page.get_by_role("option", name="5B", exact=False).first.click()
    page.wait_for_function("document.querySelector('#wp-quote')?.innerText.includes('one model')")
    quote = page.locator("#wp-quote").inner_text()
    assert "LoRAs (LoRA 1)" in quote and "5B" in quote, quote
    note = page.locator("#wp-extras .wp-field-error")  # and next to the picker
    note.wait_for()
    assert "LoRAs (LoRA 1)" in note.inner_text() and "one model" in note.inner_text()
    page.get_by_text("Your LoRAs · upscale · smooth motion").click()  # closed: still said
    page.locator("#wp-lora-1").wait_for(state="hidden")
    assert note.is_visible()


def type_lora(page, row: int, name: str) -> None:
    box = page.locator(f"#wp-lora-{row} input")
    box.fill(name)
    box.press("Enter")


def test_a_typed_lora_name_is_a_single_file_judged_as_a_picked_one(volume_studio, context):
    """A file name typed into a row (a file on the volume the list does not show) is the API's
    {"file": name}: a name fill refuses is said next to the picker, one the endpoint lacks is
    named by pre-flight, and one it has runs with the job."""
    page = open_studio(context, volume_studio.base_url)
    page.locator("#wp-prompt textarea").fill("a lantern drifting down a river")
    open_extras(page)
    type_lora(page, 1, "notes.txt")
    note = page.locator("#wp-extras .wp-field-error")
    page.wait_for_function(
        "document.querySelector('#wp-extras .wp-field-error')?.innerText.includes('notes.txt')"
    )
    text = note.inner_text()
    assert "LoRAs (LoRA 1, file): 'notes.txt'" in text and "loras folder" in text, text

    type_lora(page, 1, "my_own_lora.safetensors")
    page.wait_for_function(
        "document.querySelector('#wp-quote')?.innerText.includes('my_own_lora.safetensors (1)')"
    )
    note.wait_for(state="detached")
    page.locator("#wp-lora-row-2").wait_for(state="visible")  # in use: room for the next
    page.locator("#wp-generate").click()  # pre-flight: the endpoint lacks it
    wait_state(page, "d.state === 'REFUSED'")
    line = page.locator("#wp-status .wp-line").inner_text()
    assert "my_own_lora.safetensors → models/loras/" in line, line

    type_lora(page, 1, "detail.safetensors")  # on the volume: runs with the job
    page.wait_for_function(
        "document.querySelector('#wp-quote')?.innerText.includes('LoRAs detail.safetensors (1)')"
    )
    page.locator("#wp-generate").click()
    wait_state(page, "d.state === 'COMPLETED'")
    details = page.locator("#wp-details").inner_text()
    assert "LoRAs: detail.safetensors (1)" in details, details


def test_smooth_motion_without_the_node_is_disabled_and_says_what_to_install(studio, context):
    page = open_studio(context, studio.base_url)
    open_extras(page)
    box = page.locator("#wp-interpolate input[type='checkbox']")
    box.wait_for()
    page.wait_for_function(
        "document.querySelector('#wp-interpolate input[type=checkbox]')?.disabled === true"
    )
    text = page.locator("#wp-interpolate").inner_text()
    assert "RIFE VFI" in text and "ComfyUI-Frame-Interpolation" in text, text
    note = page.locator("#wp-offers-note").inner_text()
    assert "Smooth motion:" in note and "ComfyUI-Frame-Interpolation" in note
    assert page.locator("#wp-upscale input[type='checkbox']").is_enabled()  # core nodes


def test_on_a_phone_each_option_and_its_model_stack(studio, browser):
    """A checkbox and its model's dropdown share a row where both fit (a desktop) and stack on a
    phone: the checkbox's label and help are not squeezed beside the dropdown."""
    widths = {}
    for width in (1440, 390):
        ctx = browser.new_context(viewport={"width": width, "height": 900})
        try:
            page = open_studio(ctx, studio.base_url)
            open_extras(page)
            widths[width] = page.evaluate(
                "['#wp-upscale', '#wp-upscale-model', '#wp-interpolate', '#wp-interpolate-model']"
                ".map(s => document.querySelector(s).getBoundingClientRect())"
                ".map(r => [Math.round(r.top), Math.round(r.width)])"
            )
        finally:
            ctx.close()
    for checkbox, model in ((0, 1), (2, 3)):
        (box_top, _), (model_top, _) = widths[1440][checkbox], widths[1440][model]
        assert box_top == model_top, widths  # side by side
        (box_top, box_w), (model_top, model_w) = widths[390][checkbox], widths[390][model]
        assert model_top > box_top and box_w == model_w, widths  # stacked, full width
