"""RunPod's webhook into the studio (app/studio/webhooks.py, app/ui/webhook_route.py), the whole
path: a studio with WANPOD_PUBLIC_URL sends each job with a webhook carrying a per-job secret; the
local control plane POSTs the final status there; the studio accepts it once and records the end.
A forged webhook (wrong token, another job's body, unknown row) and a replayed one are refused."""

from __future__ import annotations

import http.client
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from app.studio.db import open_database
from app.studio.ledger import Ledger
from app.studio.webhooks import PATH, digest
from app.ui.webhook_route import MAX_BODY
from tests.app.conftest import start_studio
from tests.app.test_api import args, finished
from tests.helpers import free_port, wait_for


def test_the_final_status_comes_by_webhook_and_forged_or_replayed_ones_are_refused(stack, tmp_path):
    from gradio_client import Client

    port = free_port()
    data = tmp_path / "data"
    public = f"http://127.0.0.1:{port}"
    studio = start_studio(stack, data, port, WANPOD_PUBLIC_URL=public)
    try:
        client = Client(studio.base_url + "/", verbose=False)
        _status, video, _details, rid = finished(
            client.predict(*args(prompt="by webhook", steps=4), api_name="/generate")
        )
        assert Path(video).is_file()
        ledger = Ledger(data / "ledger.sqlite3")
        job_id = ledger.get(rid).job_id
        wait_for(lambda: stack.job_times(job_id)["webhook_done"], 30, "the webhook sent")
        assert stack.job_times(job_id)["webhook_calls"] == 1  # accepted (200) at once
        db = open_database(data / "ledger.sqlite3")
        row = db.execute("SELECT webhook_digest FROM jobs WHERE id=?", (rid,)).one()
        assert row["webhook_digest"] is None  # its secret is used up

        # a row of ours with a known secret, following the same RunPod job
        other = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={},
                              quote=None, gpu="H100 PRO")  # fmt: skip
        ledger.update(other, job_id=job_id, state="IN_QUEUE", submitted_at=time.time(),
                      webhook_digest=digest("the-right-token"))  # fmt: skip
        url = f"{public}{PATH}{other}"
        body = {"id": job_id, "status": "COMPLETED"}

        def post(token: str, payload: object = body, to: str = url) -> requests.Response:
            return requests.post(to, params={"token": token}, json=payload, timeout=10)

        assert post("a-guessed-token").status_code == 403
        assert post("the-right-token", {"id": "another-job"}).status_code == 403
        assert post("the-right-token", to=f"{public}{PATH}wp-nosuchrow").status_code == 403
        not_json = requests.post(url, params={"token": "the-right-token"}, data=b"not json")
        assert not_json.status_code == 400  # and the token is not used up by it
        # refused before a byte of the body is read: a wrong token, or more than MAX_BODY
        # announced (the body never sent: an answer at all shows it was not waited for)
        for token, length, status in (("a-guessed-token", 1 << 20, 403),
                                      ("the-right-token", MAX_BODY + 1, 413)):  # fmt: skip
            assert announced_only(public, f"{PATH}{other}?token={token}", length) == status
        accepted = post("the-right-token")
        assert accepted.status_code == 200, accepted.text
        replayed = post("the-right-token")
        assert replayed.status_code == 403 and "already used" in replayed.json()["detail"]
        wait_for(lambda: ledger.get(other).state == "COMPLETED", 30, "the row recorded")
        assert "the-right-token" not in studio.output()
    finally:
        studio.stop()


def announced_only(base_url: str, target: str, length: int) -> int:
    """POST `target` announcing a body of `length` bytes and sending none: the status of the
    answer (a route that waited for the body would time out here)."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    try:
        conn.putrequest("POST", target)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()
