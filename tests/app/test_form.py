"""The form is one object (app/ui/form.py) that owns its components by `FormValues` field name.

A field added to the form in one place (its typed value and one `add` in `Form.build`) reaches
every callback that reads or fills the form: generate, quote, the batch quote, reuse and
draft -> final, in the API under its own name and description, and on the page. The studio here
is the real service on a real ledger, without an endpoint: it records the values each entry
point receives, and its `submit` sends nothing."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from app.errors import InputError, SubmitError
from app.studio.forms import FormValues
from app.studio.forms_catalog import load_forms
from app.studio.jobs import Studio
from app.studio.markup import md_text
from app.studio.owners import ANYONE
from app.studio.tracker import Tracker
from app.ui import page
from app.ui.fields import Checkbox, Dropdown, Number, Slider, Textbox
from app.ui.form import Form
from tests.app.test_api import args
from tests.app.test_batch import job, offline_studio
from tests.helpers import free_port


@dataclasses.dataclass(frozen=True)
class WithMotion(FormValues):
    motion: float = 0.5  # the new field's typed value (the service's side of it)


class MotionForm(Form):
    """The form with one more field: the one place the page changes."""

    built: ClassVar[list[MotionForm]] = []

    def __init__(self, forms: Any, **kw: Any) -> None:
        super().__init__(forms, shape=WithMotion, **kw)
        MotionForm.built.append(self)

    def build(self) -> Form:
        super().build()
        motion = Slider(0, 1, value=0.5, label="Motion", elem_id="wp-motion")
        self.add("motion", motion, "how much the camera moves")
        return self


class Recording(Studio):
    """The real service, recording the values each entry point receives; sends nothing."""

    seen: list[tuple[str, FormValues]]

    def prepare(self, values: FormValues, images: Any = None) -> Any:
        self.seen.append(("prepare", values))
        return super().prepare(values, images)

    def submit(self, values: FormValues, user: str | None = None, **_: Any) -> str:
        self.seen.append(("submit", values))
        raise SubmitError("recorded by the test; nothing sent")

    def reuse(self, rid: str, caller: Any) -> FormValues:
        base = dataclasses.asdict(super().reuse(rid, caller))
        values = WithMotion(**{**base, "seconds": 2.0}, motion=0.25)
        self.seen.append(("reuse", values))
        return values


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    folder = tmp_path_factory.mktemp("form")
    studio = offline_studio(folder, Recording)
    studio.seen = []
    # a tracker that is never started: the page's job panel shows finished rows
    studio.tracker = Tracker(studio.ledger, None, folder, studio.prices)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(page, "Form", MotionForm)
        blocks = page.build_ui(studio, demo_mode=False)
    port = free_port()
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        yield studio, MotionForm.built[-1], client
    finally:
        blocks.close()


def seen(studio: Recording, what: str) -> list[Any]:
    values = [v for kind, v in studio.seen if kind == what]
    studio.seen.clear()
    return values


def test_a_field_added_in_one_place_reaches_generate_quote_batch_and_reuse(motion):
    studio, form, client = motion
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name in ("/generate", "/quote", "/batch_quote"):
        params = {p["parameter_name"]: p for p in api[name]["parameters"]}
        assert params["motion"]["python_type"]["description"] == "how much the camera moves"
    form_args = [*args(), 0.75]  # the form's fields in FormValues order, motion last

    text = client.predict(*form_args, api_name="/quote")
    assert text.startswith("**Quote:**"), text
    assert [v.motion for v in seen(studio, "prepare")] == [0.75]

    *_page, result = client.predict(*form_args, api_name="/generate")
    assert result["state"] == "FAILED" and "recorded by the test; nothing sent" in result["error"]
    [sent] = seen(studio, "submit")
    assert (
        isinstance(sent, WithMotion) and sent.motion == 0.75 and sent.prompt == "a red fox in snow"
    )

    text = client.predict(*form_args, 3, "", "", api_name="/batch_quote")
    assert text.startswith("**Batch of 3 jobs"), text
    assert [v.motion for v in seen(studio, "prepare")] == [0.75] * 3

    # reuse and draft -> final: the API's answer and the page's form carry it too
    draft = job(studio)
    names = form.names
    reused = dict(zip(names, client.predict(draft, api_name="/reuse"), strict=True))
    assert reused["motion"] == 0.25 and reused["prompt"] == "a heron"
    *final, note = client.predict(draft, api_name="/draft_final")
    final = dict(zip(names, final, strict=True))
    assert (final["motion"], final["mode"], final["resolution"]) == (0.25, "quality", "720p square")
    assert note.startswith("**Draft → final**")
    shown = form.updates(studio.reuse(draft, ANYONE))
    assert shown[form["motion"]]["value"] == 0.25


def test_the_form_reads_its_values_by_name_and_type(motion):
    _, form, _ = motion
    raw = dict(zip(form.names, [*args(seed=12.0, steps=6.0), 0.5], strict=True))
    raw["start_image"] = {"path": "/tmp/a.png"}  # an upload as Gradio may pass it
    values = form.values(raw)
    assert isinstance(values, WithMotion)
    assert (values.seed, values.steps, values.start_image) == (12, 6, "/tmp/a.png")
    assert type(values.seed) is int and type(values.cfg) is float
    empty = form.values({**raw, "seed": None, "cfg": "", "sampler": "", "prompt": None})
    assert (empty.seed, empty.cfg, empty.sampler, empty.prompt) == (None, None, None, "")
    with pytest.raises(ValueError, match="'nope' is not a field of WithMotion"):
        form.add("nope", Slider(0, 1), "")


@pytest.fixture(scope="module")
def plain_form() -> Form:
    forms, _ = load_forms()
    with gr.Blocks():
        return Form(forms).build()


SAMPLERS = "euler, euler_cfg_pp, euler_ancestral, euler_ancestral_cfg_pp, heun, heunpp2, dpm_2"


@pytest.mark.parametrize(
    ("name", "sent", "refusal"),
    [
        # text for a checkbox: bool("false") is True, and the job would run an upscale
        ("upscale", "false", "upscale: 'false' is not allowed; allowed: true or false"),
        ("interpolate", "no", "smooth motion: 'no' is not allowed; allowed: true or false"),
        ("randomize", 0, "randomize: 0 is not allowed; allowed: true or false"),
        ("upscale", "", "upscale: '' is not allowed; allowed: true or false"),
        # an object for text: the prompt would be its repr; for a choice, 'None'
        ("prompt", {"text": "a fox"}, "prompt: {'text': 'a fox'} is not allowed; allowed: text"),
        ("loras", 5, "LoRAs: 5 is not allowed; allowed: text"),
        ("sampler", {"a": 1}, f"sampler: {{'a': 1}} is not allowed; allowed: {SAMPLERS}, "),
        ("pipeline", 3, "pipeline: 3 is not allowed; allowed: t2v_14b, i2v_14b, flf2v_14b, "),
        ("start_image", {"url": "x"}, "start image: {'url': 'x'} is not allowed; allowed: an "),
        # no number: the value as sent and the range of the job's pipeline and mode
        ("steps", [1], "steps: [1] is not allowed; allowed: a whole number, 2 to 60"),
        ("steps", "abc", "steps: 'abc' is not allowed; allowed: a whole number, 2 to 60"),
        ("steps", True, "steps: True is not allowed; allowed: a whole number, 2 to 60"),
        ("seconds", "long", "duration: 'long' is not allowed; allowed: a number, 0.25 to 10"),
        # a fraction of a step is refused (never clamped), not truncated to 60, 4 or 1
        ("steps", 60.9, "steps: 60.9 is not allowed; allowed: a whole number, 2 to 60"),
        ("steps", 4.5, "steps: 4.5 is not allowed; allowed: a whole number, 2 to 60"),
        ("steps", 1.9, "steps: 1.9 is not allowed; allowed: a whole number, 2 to 60"),
        ("seed", 1.5, "seed: 1.5 is not allowed; allowed: a whole number"),
    ],
)
def test_a_value_of_another_type_is_refused_naming_the_field_never_converted(
    plain_form, name, sent, refusal
):
    """An API client's value of another type than its field's is refused as the service
    refuses a value out of range: the field's label, the value as sent, what is allowed."""
    fields = dict(zip(plain_form.names, args(mode="quality"), strict=True))
    with pytest.raises(InputError) as exc:
        plain_form.values({**fields, name: sent})
    assert str(exc.value).startswith(refusal), str(exc.value)


def test_values_of_their_fields_types_pass_and_long_ones_are_shortened(plain_form):
    fields = dict(zip(plain_form.names, args(mode="quality"), strict=True))
    values = plain_form.values({**fields, "upscale": True, "randomize": None, "steps": 20.0})
    assert (values.upscale, values.randomize, values.steps) == (True, False, 20)
    assert type(values.steps) is int
    with pytest.raises(InputError) as exc:
        plain_form.values({**fields, "prompt": ["x" * 200]})
    shortened = repr(["x" * 200])[:77] + "..."  # as the service's refusals shorten a value
    assert str(exc.value) == f"prompt: {shortened} is not allowed; allowed: text"


def test_a_form_field_passes_a_value_of_another_type_on_for_the_form_to_refuse(plain_form):
    """Gradio's own components convert it (str() of an object, a bool for 1.0): the form's pass
    it on as sent; a component outside the form refuses it, naming its label."""
    for name, sent in (("upscale", "false"), ("prompt", {"a": 1}), ("sampler", {"a": 1}),
                       ("steps", [1]), ("steps", True), ("seed", "abc")):  # fmt: skip
        assert plain_form[name].preprocess(sent) == sent, name
    assert plain_form["steps"].preprocess(6) == 6 and plain_form["seed"].preprocess(7.0) == 7
    with gr.Blocks():
        box, text = Checkbox(label="Colour match"), Textbox(label="Job id (wp-...)")
        pick, count = Dropdown(["a", "b"], label="Pick"), Number(label="Count", precision=0)
    for component, sent, refusal in (
        (box, "false", "colour match: 'false' is not allowed; allowed: true or false"),
        (text, {"id": 1}, "job id: {'id': 1} is not allowed; allowed: text"),
        (pick, {"a": 1}, "pick: {'a': 1} is not allowed; allowed: a, b"),
        (count, True, "count: not a number (TypeError)"),
    ):
        with pytest.raises(gr.Error) as exc:
            component.preprocess(sent)
        assert exc.value.message == refusal
    assert box.preprocess(False) is False and text.preprocess("wp-1") == "wp-1"
    assert pick.preprocess("b") == "b" and count.preprocess(3.0) == 3


def test_the_api_refuses_a_value_of_another_type_and_sends_nothing(motion):
    """Through Gradio's API: `upscale="false"` once ran a paid upscale, a prompt object a job
    with its repr, 4.5 steps a 4-step job. Generate is refused naming the field; the quote line
    says the refusal; nothing reaches the service."""
    studio, _, client = motion
    studio.seen.clear()
    for change, refusal in (
        ({"upscale": "false"}, "upscale: 'false' is not allowed; allowed: true or false"),
        ({"prompt": {"text": "a fox in snow"}}, "prompt: {'text': 'a fox in snow'} is not "),
        ({"mode": "quality", "steps": 4.5}, "steps: 4.5 is not allowed; allowed: a whole number"),
    ):
        form_args = [*args(**change), 0.75]
        with pytest.raises(AppError) as exc:
            client.predict(*form_args, api_name="/generate")
        assert str(exc.value).startswith(refusal), str(exc.value)
        text = client.predict(*form_args, api_name="/quote")
        assert text.startswith(f"⚠️ {md_text(refusal)}"), text
    assert studio.seen == []  # neither quoted nor sent


def test_every_form_value_has_a_component_and_every_parameter_a_description(client):
    """The page's form has a component for each `FormValues` field, and the API names and
    describes every parameter of /generate, /quote and /batch_quote (no `param_0`...)."""
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    fields = [f.name for f in dataclasses.fields(FormValues)]
    for name, extra in (
        ("/generate", []),
        ("/quote", []),
        ("/batch_quote", ["count", "seeds", "prompts"]),
    ):
        params = api[name]["parameters"]
        assert [p["parameter_name"] for p in params] == fields + extra, name
        blank = [p["parameter_name"] for p in params if not p["python_type"]["description"]]
        assert blank == [], f"{name}: undescribed parameters {blank}"
        assert api[name]["description"], name
    assert [p["parameter_name"] for p in api["/reuse"]["parameters"]] == ["job_id"]


def test_the_layout_and_the_values_are_one_answer():
    """`updates(values)`: the layout of the values' pipeline and mode with the values in it; an
    empty value keeps the layout's (the mode's default)."""
    forms, _ = load_forms()
    with gr.Blocks():
        form = Form(forms).build()
    v = FormValues(pipeline="ti2v_5b", mode="quality", prompt="koi", resolution="",
                   seconds=1.5, seed=9, randomize=False, steps=5, cfg=None)  # fmt: skip
    out = form.updates(v)
    assert set(out) == set(form.outputs)  # the fields and the LoRA picker rows
    assert out[form["pipeline"]]["value"] == "ti2v_5b"
    assert out[form["mode"]]["choices"] == ["quality"] and out[form["mode"]]["value"] == "quality"
    assert out[form["resolution"]]["value"] == forms["ti2v_5b"].default_preset  # "" keeps it
    assert out[form["steps"]]["value"] == 5
    assert out[form["cfg"]]["value"] == forms["ti2v_5b"].advanced["quality"]["cfg"].default
    assert out[form["lora_high"]]["visible"] is False  # the 5B has no LoRA
    assert (
        out[form["start_image"]]["visible"] is True and out[form["end_image"]]["visible"] is False
    )
    assert form.frames_note("ti2v_5b", 1.5).startswith("1.5 s → **37 frames** at 24 fps")


def open_job(page, url: str, rid: str) -> None:
    """The page with job `rid` shown (opened by id), its load chain done."""
    page.goto(url)
    page.wait_for_function("document.querySelector('#wp-quote')?.innerText.trim()")
    page.get_by_role("button", name="Open a job by id").click()
    page.locator("#wp-attach-id textarea, #wp-attach-id input").first.fill(rid)
    page.locator("#wp-attach").click()
    page.wait_for_function(f"document.querySelector('#wp-status')?.dataset.rid === {rid!r}")


@pytest.mark.slow
@pytest.mark.parametrize("button", ["#wp-reuse", "#wp-draft-final"])
def test_a_click_asks_the_service_once_and_fills_the_added_field(motion, browser, button):
    """Reuse settings and Draft -> final: one reuse per click (the API's answer and the page's
    form come from the same call), and the page's form shows the added field."""
    studio, _, client = motion
    draft = job(studio)
    page = browser.new_page()
    page.set_default_timeout(120_000)  # other suites may load the machine; waits end on events
    try:
        open_job(page, client.src, draft)
        assert "81 frames" in page.locator("#wp-frames").inner_text()  # the page's 5 s
        studio.seen.clear()
        page.locator(button).click()
        # the frame note for the filled form's 2 s ends the chain (values, form, quote, note)
        page.wait_for_function("document.querySelector('#wp-frames').innerText.includes('33')")
        assert page.locator("#wp-prompt textarea").input_value() == "a heron"
        page.get_by_role("button", name="Advanced").click()
        assert page.locator("#wp-motion input[type=number]").input_value() == "0.25"
        assert [kind for kind, _ in studio.seen].count("reuse") == 1, studio.seen
    finally:
        page.close()
