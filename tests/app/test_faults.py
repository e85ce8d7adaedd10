"""Fault suite (issue 6): the studio's job service and tracker against a local stack that
misbehaves. Every case ends with the job accounted for in the ledger and nothing lost:
- RunPod answering 429 / 503 to /status while a job runs -> COMPLETED, video stored, cost recorded;
- 429 to /run -> retried (never a duplicate), COMPLETED; 500 to /run -> the row FAILED saying the
  job may exist (no blind resubmission);
- the control plane frozen (SIGSTOP) so /status times out -> the tracker backs off, then finishes;
- the studio's tracker stopped mid-job (app killed) -> a new one resumes the row from the ledger;
- a worker killed mid-job -> the row FAILED with the endpoint's reason, the next job still runs;
- a result larger than 20 MB -> delivered through S3 (moto) as a presigned URL, downloaded
  server-side, stored whole.
The stack here is private (2 workers, S3 configured), so faults never leak into other tests."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from app.endpoint import EndpointClient
from app.errors import SubmitError
from app.settings import PRICES_PATH, Settings
from app.studio import cost
from app.studio.checks.guardrails import row_dollars
from app.studio.fetch import Fetcher, FetchSettings
from app.studio.forms import FormValues
from app.studio.ledger import Ledger
from app.studio.tracker import Tracker
from emulators.stack import LocalStack, StackConfig
from tests.helpers import png_bytes, s3_server, wait_for

pytestmark = pytest.mark.slow

S3_KEY = "faultsuiteS3secret0123456789"


@pytest.fixture(scope="module")
def s3():
    srv = s3_server("wanpod-faults")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def fstack(s3, tmp_path_factory):
    env = {
        "BUCKET_ENDPOINT_URL": s3.base_url,
        "BUCKET_ACCESS_KEY_ID": "AKIDFAULTS",
        "BUCKET_SECRET_ACCESS_KEY": S3_KEY,
        "BUCKET_NAME": "wanpod-faults",
    }
    cfg = StackConfig(workers=2, step_delay=0.05, worker_env=env)
    with LocalStack(cfg) as stack:
        yield stack


def fstack_s3_url(stack) -> str:
    """The S3 endpoint the stack's workers upload to (what the studio may download from)."""
    return stack.config.worker_env["BUCKET_ENDPOINT_URL"]


def knobs(stack, **values) -> None:
    for url in stack.comfy_urls:
        requests.post(url + "/emulator/config", json=values, timeout=5).raise_for_status()


def fault(stack, **f) -> None:
    r = requests.post(
        f"{stack.plane_url}/emulator/faults", json=f, headers={"Authorization": stack.api_key}
    )
    r.raise_for_status()


def plane_state(stack) -> dict:
    r = requests.get(
        f"{stack.plane_url}/emulator/state", headers={"Authorization": stack.api_key}, timeout=5
    )
    r.raise_for_status()
    return r.json()


@pytest.fixture
def studio(fstack, tmp_path):
    """The studio's services as `python -m app` composes them (Blocks built, tracker started)."""
    from app.__main__ import assemble

    env = {
        **fstack.env(),
        "WANPOD_DATA_DIR": str(tmp_path / "data"),
        "WANPOD_POLL_S": "0.1",
        "BUCKET_SECRET_ACCESS_KEY": S3_KEY,
        "WANPOD_S3_ENDPOINT_URL": fstack_s3_url(fstack),  # moto on loopback: allowed by name
        "WANPOD_PREFLIGHT": "off",  # no inventory job racing the injected faults
    }
    settings = Settings.from_env(env)
    _, st = assemble(settings, fstack.base_url, fstack.api_key, False)
    knobs(fstack, step_delay=0.05, output_bytes=None)
    yield st
    st.tracker.stop()
    knobs(fstack, step_delay=0.05, output_bytes=None)


def values(prompt: str, **kw) -> FormValues:
    return FormValues(
        pipeline="t2v_14b",
        mode="turbo",
        prompt=prompt,
        resolution="480p landscape",
        seconds=1.0,
        **kw,
    )


def wait_final(ledger, rid: str, timeout: float = 90.0):
    def final():
        row = ledger.get(rid)
        return row if row.final else None

    return wait_for(final, timeout, f"{rid} to end", lambda: f"still {ledger.get(rid).state}")


def wait_state(ledger, rid: str, states: tuple[str, ...], timeout: float = 60.0):
    def reached():
        row = ledger.get(rid)
        return row if row.state in states else None

    return wait_for(reached, timeout, f"{rid} in {states}", lambda: ledger.get(rid).state)


def assert_stored(row) -> None:
    assert row.state == "COMPLETED", row.error
    assert row.result_path and Path(row.result_path).is_file()
    assert row.cost and row.cost.billed_s >= 1 and row.execution_ms


def test_status_429_and_503_while_a_job_runs(studio, fstack):
    knobs(fstack, step_delay=0.3)
    rid = studio.submit(values("rides through 429 and 503"))
    fault(fstack, status=429, count=3, ops=["status"])
    fault(fstack, status=503, count=3, ops=["status"])
    row = wait_final(studio.ledger, rid)
    assert_stored(row)


def test_a_burst_of_404s_or_of_answers_without_a_state_while_a_job_runs(studio, fstack):
    """RunPod's API answering "no such job" three times in a row while the job runs (a
    hiccup: the job goes on), or twice answering HTTP 200 with no status at all (an error body
    from a proxy): the job is still followed to its end and its video stored, not LOST after
    the third 404, nor left in a state nothing follows."""
    knobs(fstack, step_delay=0.3)
    rid = studio.submit(values("rides through 404s"))
    wait_state(studio.ledger, rid, ("IN_PROGRESS",))
    fault(fstack, status=404, count=3, ops=["status"])
    assert_stored(wait_final(studio.ledger, rid))
    rid = studio.submit(values("rides through stateless answers"))
    wait_state(studio.ledger, rid, ("IN_PROGRESS",))
    fault(fstack, status=200, count=2, ops=["status"])  # {"error": "injected fault 200"}
    assert_stored(wait_final(studio.ledger, rid))
    served = requests.get(
        f"{fstack.plane_url}/emulator/faults", headers={"Authorization": fstack.api_key}, timeout=5
    ).json()["faults"]
    assert [f["count"] for f in served] == [0] * len(served)  # every fault was answered


def test_run_429_is_retried_and_500_is_accounted_for(studio, fstack):
    fault(fstack, status=429, count=2, ops=["run"])
    rid = studio.submit(values("accepted after 429"))
    assert_stored(wait_final(studio.ledger, rid))
    assert (
        len([r for r in studio.ledger.recent(50) if r.params.get("prompt") == "accepted after 429"])
        == 1
    )

    fault(fstack, status=500, count=1, ops=["run"])
    with pytest.raises(SubmitError) as info:
        studio.submit(values("refused with 500"))
    assert "may have reached the endpoint" in str(info.value)
    assert "may or may not have been created" in str(info.value)
    [row] = [r for r in studio.ledger.recent(50) if r.params.get("prompt") == "refused with 500"]
    # it may run and cost: LOST (as a studio stopped mid-/run), its quote counted against the
    # budgets, and reconcilable with the id from RunPod's console
    assert row.state == "LOST" and "not resubmitted" in row.error and "reconcile" in row.error
    assert row.final and row.job_id is None and row_dollars(row) == row.quote.dollars > 0
    assert info.value.rid == row.id  # the row it left, for the page to show


def test_a_lost_submit_shows_its_lost_row_not_a_failure(studio, fstack, caplog):
    """The page's Generate whose /run answer was lost shows the LOST row, as History does, not
    "Failed:" (a word kept for jobs the endpoint did not take: this one may run and cost), and
    the log names the row for the operator's reconcile."""
    from types import SimpleNamespace

    from app.ui.callbacks import Callbacks

    page = Callbacks(studio, SimpleNamespace(values=lambda fields: values(**fields)))  # type: ignore[arg-type]
    page.quiet = True  # the page's own Generate (no toast)
    fault(fstack, status=500, count=1, ops=["run"])
    *_, last = page.generate(SimpleNamespace(username=None), prompt="lost with 500")  # type: ignore[arg-type]
    panel, result = last[0], last[-1]
    [row] = [r for r in studio.ledger.recent(50) if r.params.get("prompt") == "lost with 500"]
    assert row.state == "LOST" and result["state"] == "LOST" and result["job_id"] == row.id
    assert 'data-state="LOST"' in panel and "Failed" not in panel, panel
    assert f"job {row.id}: LOST" in caplog.text and "reconcile" in caplog.text


def test_a_slow_run_answer_keeps_its_lease_and_the_job_is_never_lost(fstack, tmp_path):
    """/run answers after longer than the lease (429s ridden out for up to RATE_WAIT_S, then a
    slow answer): the submitting replica renews the row's lease meanwhile, so neither its own
    lease scan nor another replica's takes the row for abandoned and marks it LOST (which ran
    the end-of-job hooks and showed pages a false end) before the answer comes."""
    from app.__main__ import assemble

    lease_s = 2.0  # the shortest WANPOD_LEASE_S allowed
    env = {**fstack.env(), "WANPOD_DATA_DIR": str(tmp_path / "a"), "WANPOD_POLL_S": "0.1",
           "WANPOD_PREFLIGHT": "off", "WANPOD_LEASE_S": str(lease_s),
           "WANPOD_S3_ENDPOINT_URL": fstack_s3_url(fstack)}  # fmt: skip
    _, studio = assemble(Settings.from_env(env), fstack.base_url, fstack.api_key, False)
    ended_by_b: list[str] = []
    other = Tracker(Ledger(tmp_path / "a" / "ledger.sqlite3"),
                    EndpointClient(fstack.base_url, fstack.api_key), tmp_path / "b",
                    cost.load_prices(PRICES_PATH), poll_s=0.1, lease_s=lease_s,
                    owner="replica-b", on_final=ended_by_b.append).start()  # fmt: skip
    ended_by_a: list[str] = []
    before = studio.tracker.on_final
    studio.tracker.on_final = lambda rid: (ended_by_a.append(rid), before and before(rid))
    try:
        fault(fstack, delay_s=3 * lease_s, count=1, ops=["run"])  # scans every lease/3 s
        rid = studio.submit(values("a slow /run answer"))
        row = studio.ledger.get(rid)
        assert row.job_id and row.live and row.error is None, (row.state, row.error)
        assert ended_by_a == [] and ended_by_b == []  # nothing took it for abandoned
        assert_stored(wait_final(studio.ledger, rid))
        assert ended_by_a == [rid] and ended_by_b == []
    finally:
        other.stop()
        studio.tracker.stop()


def test_a_job_that_could_not_be_sent_ends_failed_and_holds_no_budget(studio, tmp_path):
    """Its row is written (and its quote held) before /run; when keeping its input image
    fails first (here the inputs folder is a file), nothing is sent: the row is FAILED at
    once, counting $0, not left SUBMITTING to end LOST with its quote counted all day."""
    (tmp_path / "data" / "inputs").write_text("not a folder")
    image = tmp_path / "start.png"
    image.write_bytes(png_bytes(300, 200))
    job = FormValues(pipeline="i2v_14b", mode="turbo", prompt="never sent",
                     resolution="480p landscape", seconds=1.0, start_image=str(image))  # fmt: skip
    with pytest.raises(OSError):
        studio.submit(job)
    [row] = [r for r in studio.ledger.recent(50) if r.params.get("prompt") == "never sent"]
    assert row.state == "FAILED" and row.error.startswith("not sent: ") and row.job_id is None
    assert row_dollars(row) == 0


def test_frozen_control_plane_times_out_then_the_job_finishes(fstack, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    client = EndpointClient(fstack.base_url, fstack.api_key, timeout_s=0.5, retries=1)
    fetcher = Fetcher(FetchSettings(s3_endpoint=fstack_s3_url(fstack)))  # results on moto
    prices = cost.load_prices(PRICES_PATH)
    tracker = Tracker(ledger, client, tmp_path, prices, poll_s=0.1, fetcher=fetcher).start()
    try:
        from workflows.fill import fill

        knobs(fstack, step_delay=0.3)
        wf = fill("t2v_14b", {"prompt": "frozen plane", "seconds": 1.0}).workflow
        rid = ledger.create(
            template="t2v_14b", mode="turbo", params={}, workflow=wf, quote=None, gpu="H100 PRO"
        )
        ref = client.run({"workflow": wf})
        ledger.update(rid, job_id=ref.id, state=ref.state, submitted_at=time.time())
        tracker.watch(rid)
        wait_state(ledger, rid, ("IN_PROGRESS",))
        plane = next(p for p in fstack.procs if "emulators.runpod" in " ".join(map(str, p.args)))
        os.kill(plane.pid, signal.SIGSTOP)
        try:
            time.sleep(3.0)  # several /status calls time out meanwhile
            assert ledger.get(rid).live
        finally:
            os.kill(plane.pid, signal.SIGCONT)
        assert_stored(wait_final(ledger, rid))
    finally:
        tracker.stop()
        knobs(fstack, step_delay=0.05)


def test_app_killed_mid_job_resumes_from_the_ledger(studio, fstack, tmp_path):
    from app.__main__ import assemble

    knobs(fstack, step_delay=0.3)
    rid = studio.submit(values("survives a restart"))
    wait_state(studio.ledger, rid, ("IN_PROGRESS",))
    studio.tracker.stop()  # the app is gone: nobody polls this job
    time.sleep(1.0)
    assert studio.ledger.get(rid).live
    settings = studio.settings
    _, again = assemble(settings, fstack.base_url, fstack.api_key, False)
    try:
        assert_stored(wait_final(again.ledger, rid))
    finally:
        again.tracker.stop()


def test_worker_killed_mid_job_fails_the_row_and_the_next_job_runs(studio, fstack):
    knobs(fstack, step_delay=0.5)
    rid = studio.submit(values("worker dies"))
    row = wait_state(studio.ledger, rid, ("IN_PROGRESS",))
    workers = plane_state(fstack)["workers"]
    victim = next(w for w in workers.values() if row.job_id in w["jobs"])
    os.killpg(victim["pid"], signal.SIGKILL)
    row = wait_final(studio.ledger, rid, timeout=60)
    assert row.state == "FAILED" and row.error, row
    assert fstack.api_key not in row.error
    knobs(fstack, step_delay=0.05)
    assert_stored(wait_final(studio.ledger, studio.submit(values("after the crash")), 120))


def test_result_over_20_mb_arrives_through_s3(studio, fstack):
    size = 21 * 1024 * 1024
    knobs(fstack, output_bytes=size)
    rid = studio.submit(values("a big one"))
    row = wait_final(studio.ledger, rid, timeout=120)
    assert_stored(row)
    assert Path(row.result_path).stat().st_size == size
    assert row.outputs[0]["size"] == size
    assert "X-Amz" not in (row.error or "") and S3_KEY not in str(row.outputs)
