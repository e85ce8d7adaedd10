"""What an API client reads back is the same whatever the timing, and says what happened: a
refused /generate is an error however long the refusal took, /cancel and /cancel_chain answer
their outcome line, an empty job id is refused as empty, the form's files and the batch's seed
list and prompts are optional wherever they are taken, and a chain's quote line shows a refusal
that quotes what the user typed as text (app/ui/callbacks.py, app/ui/chain.py, app/ui/batch.py).
The page keeps its own answers: "Not submitted: <reason>" in its status panel, the outcome as a
toast, a fresh tab's idle panel."""

from __future__ import annotations

import time
from types import SimpleNamespace

import gradio as gr
import pytest
from gradio_client.exceptions import AppError

from app.errors import InputError, SubmitError
from app.studio.forms import FILE_FIELDS
from app.ui import callbacks
from app.ui.callbacks import Callbacks
from app.ui.status import SUBMITTING_HTML
from tests.app.test_page_end import page_callbacks
from tests.app.test_studio_api import endpoint

EVIL = "![x](http://127.0.0.1:9/track.png)"  # a tracking pixel, were it Markdown


class SlowSubmit:
    """A studio whose submit fails after `after_s` (a pre-flight reading the endpoint's
    inventory, over a minute old, before it refuses a LoRA the endpoint does not have)."""

    settings = SimpleNamespace(concurrency=2, secret_values=lambda: ())

    def __init__(self, error: Exception, after_s: float = 0.2) -> None:
        self.error, self.after_s = error, after_s

    def submit(self, values, user=None, shown=None):
        time.sleep(self.after_s)
        raise self.error

    def caller(self, user):  # one operator (no login)
        return None

    def check_files(self, values, caller):  # its own files, here none
        return None


FORM = SimpleNamespace(values=lambda fields: fields)  # the form's values, as given
LORA = InputError("loras", "'nope.safetensors' is not on the endpoint; allowed: detail.safetensors")


def test_a_late_refusal_is_an_api_clients_error_and_the_pages_not_submitted(monkeypatch):
    monkeypatch.setattr(callbacks, "SUBMITTING_AFTER_S", 0.01)  # the refusal comes after it
    api = Callbacks(SlowSubmit(LORA), FORM)  # type: ignore[arg-type]
    answers = []
    with pytest.raises(gr.Error) as refused:
        for answer in api.generate(None, prompt="a fox"):
            answers.append(answer)
    assert refused.value.message == str(LORA)
    assert [a[0] for a in answers] == [SUBMITTING_HTML]  # no result with a "REFUSED" state
    # the page's own Generate says it in the status panel, as it says a fast refusal
    status, *kept, result, _strip = api.live().generate(None, prompt="a fox")
    assert 'data-state="REFUSED"' in status
    assert "Not submitted: loras: &#x27;nope.safetensors&#x27; is not on the endpoint" in status
    assert kept == [gr.skip()] * 4 and result["state"] == "REFUSED"


def test_a_job_the_endpoint_did_not_take_is_a_failed_result_not_an_error(monkeypatch):
    monkeypatch.setattr(callbacks, "SUBMITTING_AFTER_S", 0.01)
    api = Callbacks(SlowSubmit(SubmitError("the endpoint answered 503")), FORM)  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="the endpoint answered 503"):  # a toast in a page
        *_streamed, (status, video, _details, job_id, _store, result) = api.generate(None)
    assert 'data-state="FAILED"' in status and video is None and job_id == ""
    assert result == {"job_id": None, "state": "FAILED", "final": True,
                      "error": "the endpoint answered 503"}  # fmt: skip


def test_an_empty_job_id_is_refused_for_an_api_client_and_idle_for_a_fresh_tab(client, tmp_path):
    with pytest.raises(AppError, match=r"^job: is empty; give the id of a job of this studio"):
        client.predict("  ", api_name="/attach")
    # the page attaches to its stored job at load: a fresh tab has none, and shows the idle panel
    page, _ledger = page_callbacks(tmp_path)
    status, video, details, job_id, store, result, strip = page.attach(None, "", None)
    assert 'data-state="IDLE"' in status and job_id == ""
    assert [video, details, store, result] == [gr.skip()] * 4 and strip == []


def test_cancel_answers_the_outcome_line(client):
    *_shown, data = client.predict(prompt="a heron lands", seconds=1.0, api_name="/generate")
    rid = data["job_id"]
    assert client.predict(rid, api_name="/cancel") == f"Job {rid} already ended COMPLETED."


def test_cancel_chain_answers_the_outcome_line(client):
    _status, _video, cid = client.predict(
        prompt="a heron lands", seconds=1.0, prompts="a heron lands", api_name="/storyboard"
    )
    assert client.predict(cid, api_name="/cancel_chain") == f"Chain {cid} already ended COMPLETED."


@pytest.mark.parametrize("name", ["/storyboard_quote", "/storyboard"])
def test_the_storyboards_files_are_optional_as_on_the_form(client, name):
    params = {p["parameter_name"]: p for p in endpoint(client, name)["parameters"]}
    for field in FILE_FIELDS:
        assert params[field]["parameter_has_default"] is True, field  # not "Required"
        assert params[field]["parameter_default"] is None
    line = client.predict(prompt="a fox", seconds=1.0, prompts="a fox\nthe fox sleeps",
                          api_name="/storyboard_quote")  # fmt: skip
    assert line.startswith("**Storyboard:** 2 new segments"), line


@pytest.mark.parametrize("name", ["/batch_quote", "/generate_batch"])
def test_the_batchs_seed_list_and_prompts_are_optional_as_their_labels_say(client, name):
    params = {p["parameter_name"]: p for p in endpoint(client, name)["parameters"]}
    for field in ("seeds", "prompts"):
        assert params[field]["parameter_has_default"] is True, field
        assert params[field]["parameter_default"] == "", field  # the API page's example too
    line = client.predict(prompt="a fox", count=2, api_name="/batch_quote")
    assert line.startswith("**Batch of 2 jobs (1 prompt × 2 seeds"), line


def test_a_chains_quote_line_shows_a_refusals_user_text_as_text(client):
    refused = [
        client.predict(prompt="a fox", resolution=EVIL, prompts="a fox\nb",
                       api_name="/storyboard_quote"),
        client.predict(job_id=EVIL, prompt="", api_name="/extend_quote"),
    ]  # fmt: skip
    for line in refused:
        assert line.startswith("⚠️ ") and EVIL in line.replace("\\", ""), line  # quoted
        assert "![" not in line, line  # `\!\[`: not an image the page would fetch
