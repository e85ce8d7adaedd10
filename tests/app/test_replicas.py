"""Two studio replicas (`python -m app` processes) on one real PostgreSQL ledger, in front of the
local RunPod control plane: each live job is followed by one replica at a time; a replica killed
mid-job loses its hold and the other finishes the job and stores it once; a page attached through
the dead replica re-attaches through the other (the job is found in the shared ledger). And two
replicas' trackers on one ledger while a result's storing outlasts the lease."""

from __future__ import annotations

from pathlib import Path

from app.studio.db import open_database
from app.studio.ledger import Ledger
from app.studio.tracker import Tracker
from tests.app.conftest import start_studio
from tests.app.test_api import args
from tests.helpers import wait_for

LEASE_S = "3"  # short, so the takeover is quick in a test (default 30 s)


def _stored_in(rid: str, *data_dirs: Path) -> list[Path]:
    return [d for d in data_dirs if (d / "results" / rid).is_dir()]


def test_a_replica_killed_mid_job_is_taken_over_and_the_job_stored_once(stack, postgres, tmp_path):
    from gradio_client import Client

    url = postgres.new_database()
    dirs = [tmp_path / "a", tmp_path / "b"]
    env = {"WANPOD_DATABASE_URL": url, "WANPOD_LEASE_S": LEASE_S}
    a = start_studio(stack, dirs[0], **env)
    b = start_studio(stack, dirs[1], **env)
    ledger = Ledger(url)
    try:
        # both alive: jobs sent through either are each followed (and stored) by one replica
        clients = [Client(s.base_url + "/", verbose=False) for s in (a, b)]
        jobs = [c.submit(*args(prompt=f"both alive {i}", steps=4), api_name="/generate")
                for i, c in enumerate(clients * 2)]  # fmt: skip
        rids = [job.result()[3] for job in jobs]
        assert [ledger.get(r).state for r in rids] == ["COMPLETED"] * 4
        assert all(len(_stored_in(r, *dirs)) == 1 for r in rids)

        # a longer job through A; A dies while it runs
        clients[0].submit(*args(prompt="survives its replica", steps=40), api_name="/generate")
        wait_for(lambda: any(r.state == "IN_PROGRESS" and r.job_id for r in ledger.live()), 60,
                 "the job running")  # fmt: skip
        (rid,) = [r.id for r in ledger.live()]
        holder = open_database(url).execute("SELECT lease_owner FROM jobs WHERE id=?", (rid,))
        a.proc.kill()
        a.proc.wait(10)
        attached = clients[1].submit(rid, api_name="/attach")  # the page re-attaches through B
        _status, video, _details, job_id, _store, _result = attached.result(timeout=120)
        assert job_id == rid
        row = ledger.get(rid)
        assert row.state == "COMPLETED" and row.stored_at is not None
        assert _stored_in(rid, *dirs) == [dirs[1]]  # stored by B, once; A never stored it
        assert Path(video).read_bytes()[4:8] == b"ftyp"
        after = open_database(url).execute("SELECT lease_owner FROM jobs WHERE id=?", (rid,))
        assert after.one()["lease_owner"] != holder.one()["lease_owner"]  # B took it over
        assert "taken over by another replica while storing" not in b.output()
    finally:
        a.stop()
        b.stop()


def test_a_result_stored_for_longer_than_the_lease_is_stored_once(tmp_path):
    """Storing a finished job's video takes longer than the lease (a large file over a slow
    link: results may take up to WANPOD_RESULT_TIMEOUT_S, 300 s, and the lease is 30 s). No
    poll renews the lease meanwhile, so the replica storing it renews it: the other replica
    does not take the job over, store it again and make the first one's final write fail,
    over and over until RunPod forgets the job."""
    import base64
    import os
    import time
    from types import SimpleNamespace

    from app.settings import PRICES_PATH
    from app.studio import cost
    from app.studio.store import LocalStore

    lease_s, store_s = 1.5, 2.5
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None,
                        gpu="H100 PRO")  # fmt: skip
    ledger.update(rid, job_id="job-1", state="IN_PROGRESS")
    video = os.urandom(5000)
    done = SimpleNamespace(state="COMPLETED", progress=None, error=None, delay_ms=5,
                           execution_ms=2000, worker_id="w",
                           output={"images": [{"filename": "v.mp4", "type": "base64",
                                               "data": base64.b64encode(video).decode(),
                                               "mime": "video/mp4"}]})  # fmt: skip
    stores: list[str] = []

    class Slow(LocalStore):  # the upload takes longer than the lease
        def __init__(self, folder, name):
            super().__init__(folder)
            self.name = name

        def keep(self, rid, saved):
            stores.append(self.name)
            time.sleep(store_s)  # the slow link itself
            return super().keep(rid, saved)

    prices = cost.load_prices(PRICES_PATH)
    replicas = [Tracker(Ledger(tmp_path / "ledger.sqlite3"), SimpleNamespace(status=lambda j: done),
                        tmp_path / n, prices, poll_s=0.05, lease_s=lease_s, owner=f"replica-{n}",
                        store=Slow(tmp_path / n / "results", n)) for n in "AB"]  # fmt: skip
    for r in replicas:
        r.start()
    try:
        row = wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the job stored")
    finally:
        for r in replicas:
            r.stop()
    assert row.state == "COMPLETED" and len(stores) == 1, stores
