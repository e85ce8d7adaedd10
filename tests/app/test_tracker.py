"""The tracker against the real local control plane: resuming rows at start, unknown jobs."""

from __future__ import annotations

import time

from app.endpoint import EndpointClient
from app.settings import PRICES_PATH
from app.studio import cost
from app.studio.ledger import Ledger
from app.studio.tracker import Tracker
from tests.helpers import wait_for


def row(ledger: Ledger) -> str:
    return ledger.create(
        template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None, gpu="H100 PRO"
    )


def test_rows_without_answer_or_unknown_to_the_endpoint_end_lost(stack, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    unanswered = row(ledger)  # the app died between writing the row and /run answering
    unknown = row(ledger)
    ledger.update(unknown, job_id="no-such-job", state="IN_QUEUE")
    client = EndpointClient(stack.base_url, stack.api_key, retries=0)
    tracker = Tracker(ledger, client, tmp_path, cost.load_prices(PRICES_PATH), poll_s=0.05)
    tracker.start()
    try:
        assert ledger.get(unanswered).state == "LOST"
        assert "while /run was answering: the job may have run" in ledger.get(unanswered).error
        wait_for(lambda: ledger.get(unknown).state == "LOST", what="the unknown job LOST")
        assert ledger.get(unknown).error == "the endpoint no longer knows this job"
        assert ledger.live() == []
    finally:
        tracker.stop()


def test_a_job_submitted_elsewhere_is_followed_and_stored(stack, tmp_path):
    from workflows.fill import fill

    filled = fill("t2v_14b", {"prompt": "tracker test", "seconds": 1.0})
    client = EndpointClient(stack.base_url, stack.api_key)
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    rid = row(ledger)
    ref = client.run({"workflow": filled.workflow})
    ledger.update(rid, job_id=ref.id, state=ref.state, submitted_at=time.time())
    tracker = Tracker(ledger, client, tmp_path, cost.load_prices(PRICES_PATH), poll_s=0.1)
    tracker.start()  # resumes the live row by itself
    try:
        wait_for(lambda: ledger.get(rid).state == "COMPLETED", 30, "the job COMPLETED")
        done = ledger.get(rid)
        assert done.result_path.startswith(str(tmp_path / "results" / rid))
        with open(done.result_path, "rb") as fh:
            assert fh.read(12)[4:8] == b"ftyp"
        assert done.cost.billed_s == -(-done.execution_ms // 1000)
        assert done.cost.dollars == done.cost.billed_s * 0.00116 and not done.cost.partial
    finally:
        tracker.stop()
