"""The page's end of a job it followed (app/ui/callbacks.py, `Callbacks.ended`): the final view
and the session's strip, or, when they cannot be read, the reason in the status panel. The page
asks for its end in a direct request (`page_final_only`), and Gradio's page shows no error
toast for a failed direct request: an error raised there would leave the page silent."""

from __future__ import annotations

import sqlite3

import gradio as gr

from app.endpoint.states import JobState
from app.settings import PRICES_PATH, Settings
from app.studio import cost
from app.studio.jobs import Studio
from app.studio.ledger import Ledger
from app.studio.tracker import Tracker
from app.ui.callbacks import Callbacks
from workflows.fill import fill


def page_callbacks(tmp_path) -> tuple[Callbacks, Ledger]:
    """The page's callbacks over a real studio with a real SQLite ledger (no endpoint)."""
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    prices = cost.load_prices(PRICES_PATH)
    tracker = Tracker(ledger, None, tmp_path, prices)
    studio = Studio(
        settings=Settings.from_env({"WANPOD_DATA_DIR": str(tmp_path)}), forms={}, fill=fill,
        endpoint=None, ledger=ledger, tracker=tracker, prices=prices,
    )  # type: ignore[arg-type]  # fmt: skip
    return Callbacks(studio, form=None).live(), ledger  # type: ignore[arg-type]


def failed_job(ledger: Ledger) -> str:
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None,
                        gpu="H100 PRO")  # fmt: skip
    ledger.update(rid, job_id="job-1", state=JobState.FAILED, error="out of memory")
    return rid


def test_the_end_answers_the_final_view_and_the_strip(tmp_path):
    page, ledger = page_callbacks(tmp_path)
    rid = failed_job(ledger)
    status, video, details, result, recent, rids = page.ended(None, rid, ["wp-older"])
    assert 'data-state="FAILED"' in status and 'data-final="1"' in status
    assert "out of memory" in status and video is None and rid in details
    assert result["state"] == "FAILED" and result["job_id"] == rid
    assert rids == [rid, "wp-older"] and recent == []  # no video: no tile


def test_a_job_the_endpoint_did_not_take_answers_the_strip_alone(tmp_path):
    page, _ledger = page_callbacks(tmp_path)
    *shown, recent, rids = page.ended(None, "", ["wp-older"])
    assert all(isinstance(v, dict) and v.get("__type__") == "update" for v in shown), shown
    assert recent == [] and rids == ["wp-older"]


def test_a_ledger_that_fails_is_said_in_the_status_panel_not_raised(tmp_path, caplog):
    page, ledger = page_callbacks(tmp_path)
    rid = failed_job(ledger)
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as other:  # the ledger breaks mid-run
        other.execute("DROP TABLE jobs")
    answer = page.ended(None, rid, [])
    status, *rest = answer
    assert 'data-state="ERROR"' in status and "data-final" not in status  # not followed again
    assert f"The end of job {rid} could not be read: the job ledger failed" in status
    assert "no such table: jobs" in status and "Reload the page to see it." in status
    assert rest == [gr.skip()] * 5  # the video, details, result and strip stay as they were
    assert f"the end of job {rid} could not be read: the job ledger failed" in caplog.text
