"""A browser session's page config is built as Gradio reads it (app/ui/sessions.py); the
CPU figures are in bench/studio_concurrency.py --mode protocol."""

import gradio as gr
from gradio.state_holder import SessionState

from app.ui.gradio_internals import REVIEWED_WITH
from app.ui.sessions import LazySessionState, lazy
from tests.helpers import REPO


def page() -> tuple[gr.Blocks, gr.Textbox, gr.Textbox, gr.State]:
    with gr.Blocks() as blocks:
        name = gr.Textbox(value="kite", label="name")
        gr.Number(3, label="n")
        out = gr.Textbox(label="out")
        kept = gr.State("")
        gr.Button("go").click(lambda s: s.upper(), name, out, api_name="go")
    return blocks, name, out, kept


def test_the_gradio_these_internals_were_checked_against_is_the_one_installed_and_pinned():
    """app/ui/sessions.py overrides parts of gradio.state_holder and app/ui/queue_pace.py sets
    two of the queue's attributes: a Gradio upgrade must fail here until they are checked again
    (docs/operating.md says what to compare)."""
    pinned = (REPO / "requirements" / "app.txt").read_text()
    assert f"gradio=={REVIEWED_WITH}\n" in pinned, "requirements/app.txt moved Gradio"
    assert gr.__version__ == REVIEWED_WITH, (
        f"Gradio {gr.__version__} is installed; app/ui/sessions.py and app/ui/queue_pace.py "
        f"were checked against {REVIEWED_WITH}: see app/ui/gradio_internals.py"
    )


def test_a_new_session_computes_nothing_until_read_and_reads_what_gradio_would():
    blocks, name, _, _ = page()
    eager, lazy_ = SessionState(blocks), LazySessionState(blocks)
    assert dict.__len__(lazy_.config_values) == 0
    assert lazy_.config_values[name._id] == eager.config_values[name._id]
    assert dict.__len__(lazy_.config_values) == 1
    assert list(lazy_.config_values.items()) == list(eager.config_values.items())
    assert list(lazy_.components) == list(eager.components)  # a deep link's whole page
    assert name._id in lazy_.config_values and -1 not in lazy_.config_values


def test_what_an_event_changes_is_noted_then_read_as_gradio_computes_it():
    """The calls Gradio's pre- and post-processing make (an input's value, an output's new
    component for gr.skip()/gr.update(), a State's value), on both kinds of session: nothing is
    computed by the lazy one until read, and then every entry equals the eager one's."""
    blocks, name, out, kept = page()
    eager, lazy_ = SessionState(blocks), LazySessionState(blocks)
    for state in (eager, lazy_):
        state._update_value_in_config(name._id, "sea")  # an input's value
        state[out._id] = gr.Textbox(label="out", lines=3, render=False)  # an output's update
        state._update_config(out._id)
        state._update_value_in_config(out._id, "SEA")
        state[kept._id] = "job-1"  # a State
        state[out._id] = gr.Textbox(label="out", lines=5, render=False)  # a gr.skip() later
        state._update_config(out._id)
    assert dict.__len__(lazy_.config_values) == 0
    assert list(lazy_.config_values.items()) == list(eager.config_values.items())
    assert lazy_.config_values[out._id]["props"]["lines"] == 5
    assert lazy_.config_values[name._id]["props"]["value"] == "sea"
    lazy_._update_value_in_config(name._id, "sky")  # read already: updated in place, as Gradio
    eager._update_value_in_config(name._id, "sky")
    assert lazy_.config_values[name._id] == eager.config_values[name._id]
    assert lazy_.state_data == eager.state_data and set(lazy_._state_ttl) == set(eager._state_ttl)


def test_a_launched_page_runs_its_events_with_lazy_sessions():
    from gradio_client import Client

    blocks, _, out, _ = page()
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
