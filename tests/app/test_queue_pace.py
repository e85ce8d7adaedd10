"""Gradio's queue loops are slowed so an idle studio does not spin (app/ui/queue_pace.py); the
figures (idle CPU) are in bench/studio_concurrency.py --mode protocol."""

import gradio as gr
import pytest

from app.ui.queue_pace import ATTRIBUTES, STATUS_EVERY_S, calm, queue_up


def test_calm_sets_the_pace_of_gradios_own_queue():
    with gr.Blocks() as blocks:
        gr.Textbox()
    blocks.queue()
    spinning = {name: getattr(blocks._queue, name) for name in ATTRIBUTES}
    assert all(value < ATTRIBUTES[name] for name, value in spinning.items())  # Gradio's defaults
    calm(blocks)
    assert {name: getattr(blocks._queue, name) for name in ATTRIBUTES} == ATTRIBUTES


def test_an_absent_matplotlib_is_not_searched_for_at_every_event(monkeypatch):
    """Gradio imports matplotlib around every event; not installed, it is marked absent once."""
    import importlib.util
    import sys

    with gr.Blocks() as blocks:
        gr.Textbox()
    blocks.queue()
    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)
    calm(blocks)
    if importlib.util.find_spec("matplotlib") is not None:
        pytest.skip("matplotlib is installed here: nothing to mark")  # the app env has none
    assert sys.modules["matplotlib"] is None
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401


def test_a_gradio_without_those_loops_is_said_not_ignored():
    class Queue:
        sleep_when_free = 0.001

    class Blocks:
        _queue = Queue()

    with pytest.raises(RuntimeError, match="progress_update_sleep_when_free"):
        calm(Blocks())


def test_queue_positions_go_out_on_a_timer_not_at_every_start():
    with gr.Blocks() as blocks:
        gr.Textbox()
    queue_up(blocks, 64)
    assert blocks._queue.live_updates is False
    assert blocks._queue.update_intervals == STATUS_EVERY_S
