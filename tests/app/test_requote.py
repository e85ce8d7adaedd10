"""The page's quote lines follow the form in order (app/ui/requote.py): no quote line is a change
listener of the studio's (Gradio runs such a listener's simultaneous triggers side by side and
lands their answers in any order); each line's page event runs on its hidden trigger, one at a
time, and reads the settled form. In headless Chromium against the studio on the local stack."""

from __future__ import annotations

import json

import pytest
import requests

from app.ui import requote
from tests.app.test_browser import open_studio, wait_quoted
from tests.app.test_inputs_browser import pick_pipeline, wait_quote

LINES = {"wp-quote": requote.FORM, "wp-batch-quote": requote.BATCH,
         "wp-chain-quote": requote.STORYBOARD}  # fmt: skip


def test_each_quote_line_is_answered_by_its_trigger_only(studio):
    config = requests.get(f"{studio.base_url}/config", timeout=30).json()
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    for line, trigger in LINES.items():
        (line_id,) = [i for i, e in ids.items() if e == line]
        # (the chain panel's line also shows Extend's quote, of the extend prompt: no form field)
        writers = [d for d in config["dependencies"] if line_id in d["outputs"]
                   and d["backend_fn"] and d["api_name"] != "extend_quote"]  # fmt: skip
        # the page's own event and the API's (on a trigger the page never clicks)
        assert len(writers) == 2, (line, [d.get("api_name") for d in writers])
        for d in writers:
            (target,) = d["targets"]
            assert target[1] == "click", (line, d.get("api_name"), d["targets"])
        page = next(d for d in writers if d["api_name"].startswith("page_"))
        assert ids[page["targets"][0][0]] == trigger and page["trigger_mode"] == "always_last"


@pytest.mark.slow
def test_a_pipeline_switch_asks_for_its_quote_with_the_settled_form(studio, context):
    """Switching the pipeline sets a dozen fields at once; the page asks for the quote once they
    are set: every quote it asks for carries the new pipeline's mode, none a half-updated form,
    and the line ends on the new pipeline's own answer."""
    config = requests.get(f"{studio.base_url}/config", timeout=30).json()
    (page_quote,) = [d["id"] for d in config["dependencies"] if d["api_name"] == "page_quote"]
    asked: list[list] = []

    def on_request(req) -> None:
        if "/queue/join" in req.url and req.method == "POST":
            body = json.loads(req.post_data)
            if body["fn_index"] == page_quote:
                asked.append(body["data"][:2])  # pipeline, mode

    context.on("request", on_request)
    page = open_studio(context, studio.base_url)
    page.locator("#wp-prompt textarea").fill("a fox in snow")
    wait_quoted(page)
    asked.clear()
    pick_pipeline(page, "Bring your own API workflow")
    text = wait_quote(page, "workflow")
    assert text.startswith("⚠️ workflow file:"), text
    assert asked and all(a == ["byo", "as uploaded"] for a in asked), asked
    assert len(asked) <= 2, asked  # one burst of changes, one quote (two on a slow page)
