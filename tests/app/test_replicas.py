"""Two studio replicas (`python -m app` processes) on one real PostgreSQL ledger, in front of the
local RunPod control plane: each live job is followed by one replica at a time; a replica killed
mid-job loses its hold and the other finishes the job and stores it once; a page attached through
the dead replica re-attaches through the other (the job is found in the shared ledger)."""

from __future__ import annotations

from pathlib import Path

from app.studio.db import open_database
from app.studio.ledger import Ledger
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
