"""The studio serves with the C HTTP parser and libuv's loop, and settles its garbage collector
once up (app/ui/serving.py); the figures are in bench/studio_concurrency.py --mode protocol."""

import gc

import gradio as gr
import pytest

from app.ui import serving
from tests.helpers import wait_for


def test_the_studio_says_it_serves_with_httptools_and_uvloop(studio):
    line = "serving with HTTP parser httptools, event loop uvloop"
    wait_for(lambda: "serving with" in studio.output(), 60, "the serving line", studio.output)
    assert line in studio.output()  # said once Gradio has started its server


def test_describe_names_the_pair_a_started_server_runs():
    with gr.Blocks() as blocks:
        gr.Textbox()
    blocks.launch(prevent_thread_lock=True, quiet=True)
    try:
        assert serving.describe(blocks.server) == serving.FAST
    finally:
        blocks.close()


@pytest.fixture
def collector():
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_freezes_what_is_alive_and_collects_less_often(collector):
    kept = [object() for _ in range(10)]  # noqa: F841 (alive at settle: frozen)
    serving.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (serving.GEN0, serving.GEN1, serving.GEN2)
