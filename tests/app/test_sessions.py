"""A new browser session's page config is built as Gradio reads it (app/ui/sessions.py); the
CPU figures are in bench/studio_concurrency.py --mode protocol."""

import gradio as gr
from gradio.state_holder import SessionState

from app.ui.sessions import LazySessionState, lazy


def page() -> tuple[gr.Blocks, gr.Textbox, gr.Textbox]:
    with gr.Blocks() as blocks:
        name = gr.Textbox(value="kite", label="name")
        gr.Number(3, label="n")
        out = gr.Textbox(label="out")
        gr.Button("go").click(lambda s: s.upper(), name, out, api_name="go")
    return blocks, name, out


def test_a_new_session_computes_nothing_until_read_and_reads_what_gradio_would():
    blocks, name, _ = page()
    eager, lazy_ = SessionState(blocks), LazySessionState(blocks)
    assert dict.__len__(lazy_.config_values) == 0
    assert lazy_.config_values[name._id] == eager.config_values[name._id]
    assert dict.__len__(lazy_.config_values) == 1
    assert list(lazy_.config_values.items()) == list(eager.config_values.items())
    assert list(lazy_.components) == list(eager.components)  # a deep link's whole page
    assert name._id in lazy_.config_values and -1 not in lazy_.config_values


def test_a_launched_page_runs_its_events_with_lazy_sessions():
    from gradio_client import Client

    blocks, _, out = page()
    blocks.queue()
    blocks.launch(prevent_thread_lock=True, quiet=True)
    try:
        lazy(blocks)
        assert Client(blocks.local_url, verbose=False).predict("sea", api_name="/go") == "SEA"
        (state,) = blocks.state_holder.session_data.values()
        assert isinstance(state, LazySessionState)
        assert state.config_values[out._id]["props"]["value"] == "SEA"  # Gradio's update
    finally:
        blocks.close()
