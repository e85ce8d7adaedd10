"""The form's endpoint-dependent part, without a browser: what an inventory offers (LoRAs paired by
name, upscale models, smooth motion or what to install), the `loras` field both ways (picker rows
<-> fill's JSON), the form values reaching fill (and refused naming the field), and a start image
given as an https:// URL (checked, named by its extension, never shown with its query)."""

from __future__ import annotations

import json

import pytest

from app.errors import ImageError, InputError
from app.studio.checks.preflight import Inventory, Missing, parse_inventory
from app.studio.forms import FormValues, field_of, to_params
from app.studio.forms_catalog import load_forms
from app.studio.image_urls import check_url, shown, upload_name
from app.studio.inputs import describe, image_fits, job_images
from app.studio.offers import (
    Offers,
    Pick,
    files_of,
    is_pair,
    key_of,
    labels,
    offers,
    parse_field,
    picks_of,
    picks_text,
)
from tests.app.test_batch import offline_studio
from workflows.loras import LoraUse
from workflows.poststeps import post_steps

FORMS, _ = load_forms()
STYLE = ("style/my_style_high_noise.safetensors", "style/my_style_low_noise.safetensors")
INVENTORY = parse_inventory(
    {
        "models": {
            "loras": [*STYLE, "detail.safetensors", "wan22_glow_HIGH.safetensors"],
            "upscale_models": ["4x-UltraSharp.pth", "RealESRGAN_x2plus.pth"],
        },
        "nodes": ["KSamplerAdvanced", "RIFE VFI"],
    },
    fetched_at=1_700_000_000,
)


def values(**kw) -> FormValues:
    base = {"pipeline": "t2v_14b", "prompt": "a fox", "resolution": "480p square", "seconds": 2.0}
    return FormValues(**{**base, **kw})


# -- what the endpoint offers ---------------------------------------------------------------------


def test_the_inventory_offers_pairs_singles_and_lone_halves_with_the_upscale_models():
    o = offers(INVENTORY)
    assert o.known and o.fetched_at == 1_700_000_000
    kinds = {(opt.label, opt.kind): opt.files for opt in o.loras}
    assert kinds[("style/my_style", "pair")] == STYLE
    assert kinds[("detail", "single")] == ("detail.safetensors",)
    assert kinds[("wan22_glow", "high")] == ("wan22_glow_HIGH.safetensors",)
    default = post_steps().upscale.default_model
    assert o.upscale_models == (default, "4x-UltraSharp.pth")  # the catalog's default first
    assert o.interpolation == ""  # the RIFE node is there
    words = labels(o.loras)
    assert "style/my_style · pair, high + low noise" in words  # nested: its folder shown
    assert "detail · single file" in words


def test_without_the_rife_node_smooth_motion_says_what_to_install():
    inv = Inventory(INVENTORY.models, frozenset({"KSamplerAdvanced"}))
    why = offers(inv).interpolation
    assert "'RIFE VFI'" in why and "ComfyUI-Frame-Interpolation" in why
    assert "CUSTOM_NODES" in why or "worker image" in why
    text = Missing(nodes=("RIFE VFI",)).message()
    assert "RIFE VFI" in text and "ComfyUI-Frame-Interpolation" in text  # pre-flight says it too


def test_no_inventory_offers_nothing_and_says_so():
    o = offers(None)
    assert o == Offers() and not o.known and o.loras == ()


# -- the loras field both ways ------------------------------------------------------------------


def test_picker_rows_write_fills_loras_and_read_them_back():
    o = offers(INVENTORY)
    pair = next(opt for opt in o.loras if opt.kind == "pair")
    single = next(opt for opt in o.loras if opt.kind == "single")
    rows = [Pick(key_of(pair), 0.8, 0.6), Pick(), Pick(key_of(single), -0.5)]
    text = picks_text(rows)
    assert json.loads(text) == [
        {"high": STYLE[0], "low": STYLE[1], "strength": 1.0, "strength_high": 0.8,
         "strength_low": 0.6},
        {"file": "detail.safetensors", "strength": -0.5},
    ]  # fmt: skip
    back = picks_of(text, 4)
    assert back[0] == Pick(key_of(pair), 0.8, 0.6)
    assert back[1] == Pick(key_of(single), -0.5, None) and back[2:] == [Pick(), Pick()]
    same = picks_text([Pick(key_of(pair), 0.7, 0.7)])  # one strength for both experts
    assert json.loads(same) == [{"high": STYLE[0], "low": STYLE[1], "strength": 0.7}]
    assert picks_text([Pick(), Pick()]) == "" and key_of(pair) == key_of(LoraUse(*(None, *STYLE)))


def test_a_file_name_typed_into_a_row_is_a_single_file_as_the_api_takes_it(tmp_path):
    """The picker takes typed values (a file on the volume its list does not show): the row is
    the API's {"file": name}, judged by fill and pre-flight, never dropped."""
    typed = [Pick(" my_own_lora.safetensors ", 0.8), Pick(), Pick('{"high": 1}'), Pick("[2]")]
    assert json.loads(picks_text(typed)) == [
        {"file": "my_own_lora.safetensors", "strength": 0.8},
        {"file": '{"high": 1}', "strength": 1.0},  # not an option's key: a name, as typed
        {"file": "[2]", "strength": 1.0},
    ]
    assert not is_pair("x_high_noise.safetensors")
    assert files_of(key_of({"file": "detail.safetensors"})) == files_of("detail.safetensors")
    studio = offline_studio(tmp_path)
    ok = studio.prepare(values(loras=picks_text(typed[:1])))
    assert ok.filled.params["loras"] == [{"file": "my_own_lora.safetensors", "strength": 0.8}]
    with pytest.raises(InputError) as e:
        studio.prepare(values(loras=picks_text([Pick("notes.txt")])))
    assert str(e.value).startswith("LoRAs (LoRA 1, file): 'notes.txt' is not allowed; allowed: ")
    assert field_of(e.value.field) == "loras"


def test_the_loras_fields_refusal_is_placed_under_the_pickers_header():
    """`loras` is a hidden field (the rows write it): its refusal goes to the picker's accordion,
    which the page renders, where other fields' go to their own block."""
    import gradio as gr

    from app.studio.shown import Shown
    from app.ui.form import Form
    from app.ui.inputs import field_errors_html

    with gr.Blocks():
        form = Form(FORMS, offers=lambda: offers(INVENTORY)).build()
    said = field_errors_html(form, Shown(problem="LoRAs (LoRA 1): ...", field="loras"))
    assert 'data-field="loras" data-target="wp-extras"' in said
    said = field_errors_html(form, Shown(problem="steps: 61 ...", field="steps"))
    assert 'data-target="wp-steps"' in said


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[{", "is not JSON"),
        ('{"file": "a.safetensors"}', "is not allowed; allowed: a JSON list of up to 4 LoRAs"),
        ('["a.safetensors"]', "is not allowed; allowed: a JSON list"),
    ],
)
def test_a_loras_field_that_is_not_a_list_of_objects_is_refused_naming_it(text, words):
    with pytest.raises(InputError) as e:
        parse_field(text)
    assert e.value.field == "loras" and words in str(e.value)
    assert picks_of(text, 2) == [Pick(), Pick()]  # the rows stay empty; the quote line says why
    odd = picks_of('[{"file": "d.safetensors", "strength": "strong"}]', 1)
    assert odd == [Pick(key_of({"file": "d.safetensors"}))]  # shown; fill refuses the strength


# -- form values -> fill ------------------------------------------------------------------------


def test_loras_and_post_steps_reach_fill_as_its_named_parameters():
    stack = json.dumps([{"high": STYLE[0], "low": STYLE[1], "strength": 0.9}])
    v = values(loras=stack, upscale=True, upscale_model="4x-UltraSharp.pth", interpolate=True)
    params = to_params(FORMS["t2v_14b"], v)
    assert params["loras"] == [{"high": STYLE[0], "low": STYLE[1], "strength": 0.9}]
    assert params["upscale"] is True and params["upscale_model"] == "4x-UltraSharp.pth"
    assert params["interpolate"] is True and "interpolate_model" not in params  # its default
    plain = to_params(FORMS["t2v_14b"], values(upscale_model="4x-UltraSharp.pth"))
    assert not {"loras", "upscale", "upscale_model", "interpolate"} & set(plain)  # off: not sent


def test_a_bring_your_own_workflow_refuses_loras_and_post_steps():
    v = values(pipeline="byo", mode="as uploaded", loras='[{"file": "detail.safetensors"}]')
    with pytest.raises(InputError) as e:
        to_params(FORMS["byo"], v)
    assert e.value.field == "LoRAs" and "add the nodes to the workflow itself" in str(e.value)


def test_fills_refusals_name_the_lora_and_the_reason(tmp_path):
    studio = offline_studio(tmp_path)
    pair = json.dumps([{"high": STYLE[0], "low": STYLE[1]}])
    with pytest.raises(InputError) as e:
        studio.prepare(values(pipeline="ti2v_5b", mode="quality", loras=pair))
    assert e.value.field == "LoRAs (LoRA 1)" and field_of(e.value.field) == "loras"
    assert "the Wan 2.2 5B, one model" in str(e.value)
    bad = json.dumps([{"file": "a.safetensors"}, {"file": "b.safetensors", "strength": 7}])
    with pytest.raises(InputError) as e:
        studio.prepare(values(loras=bad))
    assert str(e.value).startswith("LoRAs (LoRA 2, strength): 7 is not allowed; allowed: -2 to 2")
    with pytest.raises(InputError) as e:
        studio.prepare(values(upscale=True, upscale_model="notes.txt"))
    assert e.value.field == "upscale model" and field_of(e.value.field) == "upscale_model"
    ok = studio.prepare(values(loras=pair, upscale=True, interpolate=True))
    assert ok.filled.params["loras"] == [{"high": STYLE[0], "low": STYLE[1], "strength": 1.0}]
    assert set(ok.filled.post_nodes.values()) == {"upscale", "interpolate"}


# -- a start image by URL -----------------------------------------------------------------------

SIGNED = "https://cdn.example.com/frames/start.JPG?X-Amz-Signature=d3adb33f&X-Amz-Expires=60"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://cdn.example.com/a.png", "uses http://; allowed: an https:// URL"),
        ("ftp://cdn.example.com/a.png", "uses ftp://"),
        ("cdn.example.com/a.png", "uses no scheme"),
        ("https://ann:pw@cdn.example.com/a.png", "carries user info"),
        ("https:///a.png", "has no host"),
        ("https://cdn.example.com:99999/a.png", "is not a URL"),
        ("https://cdn.example.com/" + "a" * 2100, "characters long; allowed: at most 2048"),
    ],
)
def test_a_start_image_url_that_can_never_work_is_refused_naming_the_field(url, words):
    with pytest.raises(ImageError) as e:
        check_url(url)
    assert e.value.field == "start image URL" and words in str(e.value)
    assert "pw" not in str(e.value)


def test_a_url_start_image_is_sent_for_the_worker_to_fetch_and_never_shown_with_its_query():
    assert check_url("  " + SIGNED + " ") == SIGNED
    assert upload_name(SIGNED, "wanpod_x_start_image") == "wanpod_x_start_image.jpg"
    assert upload_name("https://h/i/frame", "s") == "s.png"
    assert shown(SIGNED) == "https://cdn.example.com/frames/start.JPG?…"
    v = values(pipeline="i2v_14b", start_image_url=SIGNED)
    images = job_images(FORMS["i2v_14b"], v, (480, 480), "tag1")
    assert images.names == {"start_image": "wanpod_tag1_start_image.jpg"}
    uploads = images.uploads({"wanpod_tag1_start_image.jpg": "start_image"})
    assert uploads == [{"name": "wanpod_tag1_start_image.jpg", "image": SIGNED}]
    fits = image_fits(FORMS["i2v_14b"], v, (480, 480))
    words = describe(fits, "480p square")
    assert "start image from https://cdn.example.com/frames/start.JPG?…" in words
    assert "downloaded by the worker" in words and "Signature" not in words


def test_a_url_beside_an_uploaded_start_image_is_refused(png_file):
    v = values(pipeline="i2v_14b", start_image=str(png_file), start_image_url=SIGNED)
    with pytest.raises(InputError) as e:
        job_images(FORMS["i2v_14b"], v, (480, 480), "t")
    assert e.value.field == "start image URL" and "one of them" in str(e.value)


def test_a_failed_refresh_is_said_in_the_page_wording_with_the_old_inventory_kept():
    """Refresh from the endpoint that fails says so in a warning worded as every refusal of the
    page (`Callbacks.message`: secrets scrubbed, no exception class), and lays the offers out
    again from the inventory the studio still has."""
    import gradio as gr

    from app.errors import InventoryUnavailable, user_message
    from app.ui.form import Form

    def refresh():
        raise InventoryUnavailable("the inventory job failed: key sk-SECRET refused")

    forms, _ = load_forms()
    with gr.Blocks() as blocks:
        form = Form(forms, offers=lambda: offers(INVENTORY)).build()
        form.picker.wire(refresh, form["pipeline"], lambda exc: user_message(exc, ("sk-SECRET",)))
    refreshed = next(f.fn for f in blocks.fns.values() if f.name == "refreshed")
    with pytest.warns(UserWarning) as said:  # gr.Warning outside a request: a Python warning
        out = refreshed("t2v_14b")
    assert [str(w.message) for w in said] == [
        "inventory not refreshed: the inventory job failed: key *** refused"
    ]
    assert form.picker.note in out  # the offers laid out again
