"""app/ui/inline.py: an event whose components are processed in its callback's own call gets
what Gradio itself would give it, and sends what Gradio would send. Checked against Gradio: one
launched Blocks, the same callback wired twice (Gradio's processing, and `here` with
NO_PROCESSING), the same inputs sent to both over the queue, an uploaded image among them."""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client, handle_file

from app.ui.fields import Image, Number, Textbox
from app.ui.inline import NO_PROCESSING, here
from tests.helpers import REPO, free_port

FILES = REPO / "tests/fixtures/comfyui/recordings/files"
PNG = FILES / "image_success/image_00001_.png"
MP4 = FILES / "video_success/acceptance_00001_.mp4"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    served = tmp_path_factory.mktemp("served")
    video = served / "clip.mp4"
    shutil.copy(MP4, video)
    seen: dict[str, list] = {"plain": [], "here": []}

    def answer(name):
        def fn(request: gr.Request, note: str | None = None, **fields):
            # what the callback was given: each value's type and, for the image, its content
            image = fields["image"]
            seen[name].append({
                "request": isinstance(request, gr.Request),
                "note": note,
                "seed": (type(fields["seed"]).__name__, fields["seed"]),
                "image": Path(image).read_bytes() == PNG.read_bytes() if image else None,
            })  # fmt: skip
            yield "**working**", None, {"step": 1}, "kept", gr.skip()
            # an update with a value: the value is processed, the rest of the update kept
            shown = gr.update(value=[(str(PNG), "the start")], selected_index=0)
            yield f"**done** {fields['seed']}", str(video), {"step": 2}, gr.skip(), shown

        return fn

    with gr.Blocks() as blocks:
        fields = {
            "seed": Number(label="Seed", precision=0),
            "image": Image(label="Start image", type="filepath"),
        }
        note = Textbox(label="Note")
        outs = [gr.Markdown(), gr.Video(), gr.JSON(), gr.State(), gr.Gallery()]
        inputs = {**fields, "note": note}
        go_plain, go_here = gr.Button(), gr.Button()
        go_plain.click(answer("plain"), inputs_kwargs=inputs, outputs=outs, api_name="plain")
        go_here.click(
            here(answer("here"), inputs, outs),
            inputs_kwargs=inputs,
            outputs=outs,
            api_name="here",
            **NO_PROCESSING,
        )
    blocks.queue().launch(
        server_port=free_port(), prevent_thread_lock=True, allowed_paths=[str(served)], quiet=True
    )
    try:
        yield Client(blocks.local_url, verbose=False), seen
    finally:
        blocks.close()


def test_the_callback_gets_what_gradio_would_give_it_and_sends_the_same(app):
    client, seen = app
    got = {}
    for name in ("plain", "here"):
        job = client.submit(seed=41.6, image=handle_file(str(PNG)), note="hi", api_name=f"/{name}")
        got[name] = (job.result(timeout=60), job.outputs())
    assert seen["here"] == seen["plain"]
    assert seen["here"] == [{"request": True, "note": "hi", "seed": ("int", 42), "image": True}]
    (plain_end, plain_steps), (here_end, here_steps) = got["plain"], got["here"]
    assert here_end[0] == plain_end[0] == "**done** 42"
    assert here_end[2] == plain_end[2] == {"step": 2}
    # the video served the same way: a file the client downloads, the same bytes
    assert Path(here_end[1]).read_bytes() == Path(plain_end[1]).read_bytes() == MP4.read_bytes()
    assert len(here_steps) == len(plain_steps) == 2
    # the gallery's update: its picture served as a file, its caption kept
    shown = here_end[3]  # (the client drops the State)
    assert shown == plain_end[3] and shown["selected_index"] == 0
    (item,) = shown["value"]
    assert item["caption"] == "the start" and Path(item["image"]).read_bytes() == PNG.read_bytes()


def test_a_refused_input_names_its_field_as_gradio_does(app):
    client, _ = app
    for name in ("plain", "here"):
        with pytest.raises(Exception, match=r"^seed: not a number \(ValueError\)$"):
            client.predict(seed="many", image=None, note="", api_name=f"/{name}")
