"""The page's Generate is one direct request (app/ui/page.py, `page_generate` takes no queue),
and Gradio's page shows no message for a direct request that fails: a refused Generate answers
"Not submitted: <reason>" in the status panel (`Callbacks.refused`), and any other error is
said there too (`said_in_panel`), never raised. An API client's /generate still gets the
refusal as an error."""

from __future__ import annotations

import logging

import gradio as gr
import pytest

from app.errors import InputError, user_message
from app.ui.callbacks import Callbacks, said_in_panel
from tests.app.test_page_end import page_callbacks

SECRET = "rpa_0123456789SECRET"


def test_a_refusal_is_the_pages_answer_and_an_api_clients_error(tmp_path):
    page, _ledger = page_callbacks(tmp_path)
    refusal = InputError("prompt", "is empty; describe the video you want")
    status, video, details, job_id, job_store, result = page.refused(refusal)
    assert 'data-state="REFUSED"' in status and "data-rid" not in status  # no job to follow
    assert "Not submitted: prompt: is empty; describe the video you want" in status
    assert [video, details, job_id, job_store] == [gr.skip()] * 4  # the page as it was
    assert result == {"job_id": None, "state": "REFUSED", "final": True,
                      "error": "prompt: is empty; describe the video you want"}  # fmt: skip
    api = Callbacks(page.studio, form=None)  # type: ignore[arg-type]
    with pytest.raises(gr.Error, match="prompt: is empty"):
        api.refused(refusal)


def test_any_other_error_is_said_in_the_panel_in_the_users_words(caplog):
    def generate(request, **fields):
        raise RuntimeError(f"connection to https://api.runpod.ai?key={SECRET} reset")

    caplog.set_level(logging.WARNING, logger="wanpod.app")
    answer = said_in_panel(generate, lambda exc: user_message(exc, (SECRET,)))(None, prompt="x")
    status, *kept, result = answer
    assert 'data-state="ERROR"' in status
    assert "Generate failed: internal error (RuntimeError)" in status
    assert "History shows whether the job was sent" in status
    assert kept == [gr.skip()] * 4 and result["state"] == "ERROR"
    assert "internal error (RuntimeError)" in caplog.text
    assert SECRET not in status + str(result) + caplog.text


def test_a_gradio_error_keeps_its_words():
    def shutting_down(request, **fields):
        raise gr.Error("The studio is shutting down: reload the page in a moment.")

    status, *_kept, result = said_in_panel(shutting_down, str)(None)
    assert "Generate failed: The studio is shutting down" in status
    assert result["error"] == "The studio is shutting down: reload the page in a moment."
