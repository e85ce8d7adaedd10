"""Operator features in headless Chromium against the local stack: login required when APP_AUTH is
set, a public bind without auth refused at start, a budget refusal, a pre-flight refusal naming
the missing file, the health panel following a job, and Cancel mid-run (the emulator reports the
interrupt, the ledger keeps the job CANCELLED with its partial cost)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app.studio.ledger import Ledger
from tests.app.conftest import start_studio, studio_env
from tests.app.test_browser import loaded, open_studio, slow_steps, wait_quoted, wait_state
from tests.helpers import free_port

pytestmark = pytest.mark.slow

TIMEOUT_MS = 60_000


def refusal_text(page) -> str:
    """The status panel's line once Generate has been refused ("Not submitted: <reason>")."""
    page.wait_for_function(
        "document.querySelector('#wp-status')?.dataset.state === 'REFUSED'", timeout=TIMEOUT_MS
    )
    line = page.locator("#wp-status .wp-line").inner_text()
    assert line.startswith("Not submitted: "), line
    return line


def generate(page, prompt: str) -> None:
    page.locator("#wp-prompt textarea").fill(prompt)
    wait_quoted(page)
    page.locator("#wp-generate").click()


def test_login_is_required_when_app_auth_is_set(stack, context, tmp_path):
    proc = start_studio(stack, tmp_path / "data", APP_AUTH="ann:open-sesame-42")
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(proc.base_url)
        page.locator("input[type='password']").wait_for()
        assert page.locator("#wp-prompt").count() == 0
        assert "open-sesame-42" not in page.content()
        page.locator("input[type='text']").first.fill("ann")
        page.locator("input[type='password']").fill("wrong")
        page.get_by_role("button", name="Login").click()
        page.get_by_text("Incorrect", exact=False).first.wait_for()
        page.locator("input[type='text']").first.fill("ann")
        page.locator("input[type='password']").fill("open-sesame-42")
        page.get_by_role("button", name="Login").click()
        loaded(page)  # the studio is stopped below: not under a page still fetching its parts
        assert urllib.request.urlopen(proc.base_url + "/", timeout=10).status == 200
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(proc.base_url + "/gradio_api/info", timeout=10)
        assert info.value.code == 401
        page.close()  # before its studio stops
    finally:
        proc.stop()


def test_public_bind_without_auth_is_refused_at_start(stack, tmp_path):
    port = free_port()
    env = {**studio_env(stack, tmp_path, port), "GRADIO_SERVER_NAME": "0.0.0.0"}
    run = subprocess.run(
        [sys.executable, "-m", "app"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert "refusing to start without a login" in run.stderr
    assert "APP_AUTH" in run.stderr and "APP_ALLOW_PUBLIC_WITHOUT_AUTH" in run.stderr
    assert stack.api_key not in run.stderr + run.stdout


@pytest.mark.parametrize("case", ["data folder under a file", "ledger database out of reach"])
def test_a_studio_that_cannot_start_says_why_in_one_line(stack, tmp_path, case):
    """What the studio needs at start and cannot have (a data folder it cannot make, a
    PostgreSQL ledger that takes no connection) is one line and exit 2, as a bad setting is,
    not a traceback; the database's password is not in it."""
    (tmp_path / "file").write_text("not a folder")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           **studio_env(stack, tmp_path / "data", free_port())}  # fmt: skip
    if case == "data folder under a file":
        env["WANPOD_DATA_DIR"] = str(tmp_path / "file" / "data")
        said = f"wanpod studio: {tmp_path / 'file' / 'data'} cannot be used (Not a directory)"
    else:
        env["WANPOD_DATABASE_URL"] = "postgresql://wanpod:Db_pa55word_X@127.0.0.1:1/wanpod"
        said = "wanpod studio: the ledger database postgresql://wanpod:***@127.0.0.1:1/wanpod"
    run = subprocess.run(
        [sys.executable, "-m", "app"], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert said in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "Db_pa55word_X" not in run.stderr + run.stdout


def test_budget_refusal_in_the_quote_and_on_generate(stack, context, tmp_path):
    proc = start_studio(stack, tmp_path / "data", WANPOD_BUDGET_DAILY_USD="0.001")
    try:
        page = open_studio(context, proc.base_url)
        page.locator("#wp-prompt textarea").fill("over budget")
        page.wait_for_function(
            "document.querySelector('#wp-quote').innerText.includes('daily budget')"
        )
        assert "Over the studio's limits" in page.locator("#wp-quote").inner_text()
        generate(page, "over budget")
        text = refusal_text(page)
        assert "daily budget" in text and "$0.0010 per UTC day" in text, text
        assert "WANPOD_BUDGET_DAILY_USD" in text
        # each broken limit on a line of its own, as the refusal's words put them (they ran
        # together on one line)
        assert "refused by the studio's limits:\n" in text, text
        assert page.locator("#wp-status[data-rid]").count() == 0  # no job
    finally:
        proc.stop()


def test_preflight_refusal_names_the_missing_file(studio, context, tmp_path):
    from workflows.fill import fill

    wf = fill("t2v_14b", {"prompt": "x", "mode": "turbo"}).workflow
    lora = next(n for n in wf.values() if n["class_type"] == "LoraLoaderModelOnly")
    lora["inputs"]["lora_name"] = "my_style_lora.safetensors"
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(wf))
    page = open_studio(context, studio.base_url)
    page.locator("#wp-pipeline input").click()
    page.get_by_role("option", name="Bring your own", exact=False).click()
    page.locator("#wp-workflow input[type='file']").set_input_files(str(path))
    generate(page, "pre-flight")
    text = refusal_text(page)
    assert "my_style_lora.safetensors → models/loras/" in text, text


def interrupted_count(stack) -> int:
    """Prompts that ended interrupted, over every ComfyUI emulator of the stack (the emulator's own
    count: the worker removes the interrupted prompt's history entry when it cleans up)."""
    n = 0
    for url in stack.comfy_urls:
        with urllib.request.urlopen(url + "/emulator/stats", timeout=5) as r:
            n += json.load(r)["interrupted_prompts"]
    return n


def test_health_panel_follows_a_job_and_cancel_interrupts_it(studio, context, stack):
    page = open_studio(context, studio.base_url)
    page.locator("#wp-health[data-ok='true']").wait_for()
    before = interrupted_count(stack)
    slow_steps(stack, 0.5)
    try:
        page.locator("#wp-mode input[value='quality']").check()
        generate(page, "to be cancelled")
        wait_state(page, "d.state === 'IN_PROGRESS' && f > 0.05")
        page.wait_for_function(
            "parseInt(document.querySelector('#wp-health').dataset.inProgress) >= 1",
            timeout=TIMEOUT_MS,
        )
        rid = page.locator("#wp-status").get_attribute("data-rid")
        page.locator("#wp-cancel").click()
        done = wait_state(page, "d.state === 'CANCELLED'")
        assert done["rid"] == rid
        page.wait_for_function(
            "parseInt(document.querySelector('#wp-health').dataset.inProgress) === 0",
            timeout=TIMEOUT_MS,
        )
    finally:
        slow_steps(stack, 0.1)
    deadline = time.monotonic() + 20
    while interrupted_count(stack) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert interrupted_count(stack) == before + 1, "the worker did not interrupt ComfyUI"
    row = Ledger(Path(studio.env["WANPOD_DATA_DIR"]) / "ledger.sqlite3").get(rid)
    assert row.state == "CANCELLED" and row.finished_at
    assert row.cost and row.cost.partial and row.cost.billed_s >= 1, row.cost
    assert "Actual:" in page.locator("#wp-details").inner_text()
