"""The control plane's held job-takes (its long-polls for a job) with no worker process: the
test takes jobs itself with the raw worker key, as a worker attached by hand
(`--workers 0 --worker-key K`) would."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import pytest
import requests

from tests.endpoint.conftest import Plane, plane

pytestmark = pytest.mark.slow

WORKER_KEY = "test-worker-key-654321"
HOLD_S = 60  # a take is held this long: far longer than any wait below


@pytest.fixture
def bare_plane(tmp_path) -> Iterator[Plane]:
    args = ("--workers", "0", "--worker-key", WORKER_KEY, "--hold", str(HOLD_S))
    with plane(tmp_path, *args, wait_workers=None) as p:
        yield p


def take(p: Plane, worker: str) -> requests.Response:
    """One job-take of `worker`, held by the plane until a job is there (or HOLD_S)."""
    url = f"{p.base_url}/job-take/{worker}"
    return requests.get(url, headers={"Authorization": WORKER_KEY}, timeout=HOLD_S + 10)


def takes(p: Plane) -> dict:
    return p.emulator("state")["takes"]


def hold(p: Plane, pool: concurrent.futures.Executor, workers: list[str]) -> dict:
    """Start a job-take for each of `workers`, in this order, each held before the next."""
    futures = {}
    for w in workers:
        futures[w] = pool.submit(take, p, w)
        n = len(futures)
        p.wait_for(lambda n=n: takes(p)["held"] == n, 10, f"{n} held job-takes")
    return futures


def test_a_run_wakes_one_held_take_not_every_idle_one(bare_plane):
    workers = [f"w{i}" for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
        futures = hold(bare_plane, pool, workers)
        woken = takes(bare_plane)["woken"]
        job_ids = []
        for n in range(1, 4):
            job_ids.append(bare_plane.post("run", {"input": {"n": n}}).json()["id"])
            done, _ = concurrent.futures.wait(
                futures.values(), timeout=10, return_when=concurrent.futures.FIRST_COMPLETED
            )
            assert done, f"no held take was given job {n}"
            for w, f in list(futures.items()):
                if f in done:
                    assert f.result().status_code == 200
                    assert f.result().json()["id"] == job_ids[-1], w
                    del futures[w]
            assert len(futures) == 8 - n  # one take got the job; the others are still held
            assert takes(bare_plane) == {"held": 8 - n, "woken": woken + n}
        for w in list(futures):  # the rest are still waiting: give each a job to end them
            bare_plane.post("run", {"input": {"rest": w}})
            assert futures.pop(w).result().status_code == 200


def test_a_take_leaving_without_the_job_wakes_the_next(bare_plane):
    # w-sick is woken first (held first), but its worker reported itself unhealthy: its take
    # answers 429 (the SDK backs off), and the job must go to w-ok at once, not after HOLD_S
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = hold(bare_plane, pool, ["w-sick", "w-ok"])
        ping = f"{bare_plane.base_url}/ping/w-sick?status=unhealthy&check=gpu&reason=test"
        requests.get(ping, headers={"Authorization": WORKER_KEY}, timeout=10).raise_for_status()
        job_id = bare_plane.post("run", {"input": {}}).json()["id"]
        sick = futures["w-sick"].result(timeout=10)
        assert sick.status_code == 429
        ok = futures["w-ok"].result(timeout=10)
        assert ok.status_code == 200 and ok.json()["id"] == job_id
        assert bare_plane.client().status(job_id).worker_id == "w-ok"
