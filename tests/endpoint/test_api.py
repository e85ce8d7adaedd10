"""The control plane's public answers against the shapes RunPod documents
(section A), and the endpoint client's error mapping and retries, on a plane without workers
(one process: jobs stay IN_QUEUE)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from app.endpoint import EndpointClient, JobStatus
from app.errors import (
    AuthError,
    EndpointUnreachable,
    JobMayExist,
    JobNotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    UnknownEndpoint,
)
from app.studio.checks.guardrails import RUNPOD_TIMEOUT_MIN_MS
from tests.endpoint.conftest import EP, KEY, plane
from tests.helpers import free_port


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with plane(tmp_path_factory.mktemp("api"), "--workers", "0", wait_workers=None) as p:
        yield p


def test_auth_bearer_or_raw_key_else_401(api):
    assert api.get("health").status_code == 200
    raw = requests.get(f"{api.base_url}/health", headers={"Authorization": KEY}, timeout=5)
    assert raw.status_code == 200
    assert api.get("health", key=None).status_code == 401
    assert api.get("health", key="wrong").status_code == 401
    other = api.base_url.replace(f"/v2/{EP}", "/v2/nope")
    r = requests.get(f"{other}/health", headers={"Authorization": KEY}, timeout=5)
    assert r.status_code == 404


def test_the_bearer_scheme_is_case_insensitive(api):
    for scheme in ("bearer", "BEARER", "BeArEr"):
        h = {"Authorization": f"{scheme} {KEY}"}
        assert requests.get(f"{api.base_url}/health", headers=h, timeout=5).status_code == 200
        state = requests.get(f"{api.server.base_url}/emulator/state", headers=h, timeout=5)
        assert state.status_code == 200
    wrong = {"Authorization": "bearer wrong"}
    assert requests.get(f"{api.base_url}/health", headers=wrong, timeout=5).status_code == 401


def test_run_status_cancel_retry_purge_shapes(api):
    r = api.post("run", {"input": {"sleep": 1}})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "status"} and body["status"] == "IN_QUEUE"
    assert body["id"].endswith("-u1")
    st = api.get(f"status/{body['id']}").json()
    assert st == {"id": body["id"], "status": "IN_QUEUE"}
    assert api.post(f"status/{body['id']}").json() == st  # GET or POST
    s = api.get(f"stream/{body['id']}").json()
    assert s == {"id": body["id"], "status": "IN_QUEUE", "stream": []}
    c = api.post(f"cancel/{body['id']}").json()
    assert c == {"id": body["id"], "status": "CANCELLED"}
    assert api.get(f"status/{body['id']}").json()["status"] == "CANCELLED"
    retry = api.post(f"retry/{body['id']}")
    assert retry.status_code == 400 and "FAILED or TIMED_OUT" in retry.json()["error"]
    ids = [api.post("run", {"input": {}}).json()["id"] for _ in range(2)]
    purge = api.post("purge-queue").json()
    assert purge["status"] == "completed" and purge["removed"] >= 2
    assert api.get(f"status/{ids[0]}").status_code == 404


def test_health_shape(api):
    h = api.health()
    assert set(h["jobs"]) == {"completed", "failed", "inProgress", "inQueue", "retried"}
    # RunPod documents idle, initializing, ready, running, throttled; unhealthy is the SDK's report
    assert set(h["workers"]) == {
        "idle",
        "initializing",
        "ready",
        "running",
        "throttled",
        "unhealthy",
    }
    assert all(isinstance(v, int) for v in [*h["jobs"].values(), *h["workers"].values()])


def test_bad_requests_are_400_with_reason(api):
    assert "no 'input'" in api.post("run", {"nope": 1}).json()["error"]
    r = requests.post(
        f"{api.base_url}/run", data=b"{not json", timeout=5, headers={"Authorization": KEY}
    )
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = api.post("run", {"input": {}, "policy": {"executionTimeout": 10}})
    assert r.status_code == 400 and "executionTimeout" in r.json()["error"]
    assert api.get("status/does-not-exist").status_code == 404


def body_of(size: int) -> bytes:
    """A job body of exactly `size` bytes."""
    raw = json.dumps({"input": "x" * (size - len('{"input":""}'))}, separators=(",", ":"))
    assert len(raw) == size
    return raw.encode()


def test_payload_limits_413_at_runpods_decimal_megabytes(api):
    def post(op: str, size: int) -> requests.Response:
        h = {"Authorization": f"Bearer {KEY}"}
        return requests.post(f"{api.base_url}/{op}", data=body_of(size), headers=h, timeout=30)

    assert post("run", 10_000_000).status_code == 200
    r = post("run", 10_000_001)
    assert r.status_code == 413
    assert "/run accepts at most 10,000,000 bytes (10 MB)" in r.json()["error"]
    assert post("runsync?wait=1000", 20_000_000).status_code == 200
    r = post("runsync?wait=1000", 20_000_001)
    assert r.status_code == 413 and "20,000,000 bytes" in r.json()["error"]
    api.post("purge-queue")


def test_the_clients_pre_check_uses_the_same_limits(api):
    c = api.client()
    before = api.health()["jobs"]["inQueue"]
    pad = len('{"input":""}')
    with pytest.raises(PayloadTooLarge, match="at most 10 MB on /run"):
        c.run("x" * (10_000_001 - pad))  # 10,000,001 bytes: RunPod may refuse it
    with pytest.raises(PayloadTooLarge, match="at most 20 MB on /runsync"):
        c.runsync("x" * (20_000_001 - pad), wait_ms=1000)
    assert api.health()["jobs"]["inQueue"] == before  # refused before sending
    assert c.run("x" * (10_000_000 - pad)).state == "IN_QUEUE"
    api.post("purge-queue")


def test_execution_timeout_must_be_more_than_5000_ms(api):
    r = api.post("run", {"input": {}, "policy": {"executionTimeout": 5000}})
    assert r.status_code == 400
    assert r.json()["error"] == (
        "policy.executionTimeout must be more than 5000 and at most 604800000 ms, got 5000"
    )
    for ms in (5001, RUNPOD_TIMEOUT_MIN_MS):  # the studio's guardrails clamp to the latter
        assert api.post("run", {"input": {}, "policy": {"executionTimeout": ms}}).status_code == 200
    api.post("purge-queue")


def test_runsync_returns_id_and_state_when_not_done_in_time(api):
    t0 = time.monotonic()
    body = api.post("runsync?wait=1000", {"input": {}}).json()  # returns (post's 30 s timeout)
    assert time.monotonic() - t0 >= 0.9  # it held the wait
    assert set(body) == {"id", "status"} and body["status"] == "IN_QUEUE"
    api.post("purge-queue")


def test_client_maps_errors_without_leaking_the_key(api):
    bad = EndpointClient(api.base_url, "sk-very-secret-key-000", backoff_s=0.01)
    with pytest.raises(AuthError) as e:
        bad.health()
    assert "sk-very-secret" not in str(e.value) and "RUNPOD_API_KEY" in str(e.value)
    assert "sk-very-secret" not in repr(bad)
    wrong_ep = EndpointClient(api.base_url.replace(EP, "nope"), KEY, backoff_s=0.01)
    with pytest.raises(UnknownEndpoint, match="RUNPOD_ENDPOINT_ID"):
        wrong_ep.health()
    with pytest.raises(JobNotFound, match="expired"):
        api.client().status("no-such-job")
    before = api.health()["jobs"]["inQueue"]
    with pytest.raises(PayloadTooLarge, match="at most 10 MB on /run"):
        api.client().run({"blob": "x" * (10 * 1024 * 1024)})
    assert api.health()["jobs"]["inQueue"] == before  # refused before sending


def test_reads_retry_5xx_and_429(api):
    c = api.client()
    ref = c.run({})
    api.emulator("faults", {"status": 503, "count": 2, "ops": ["status"]})
    api.emulator("faults", {"status": 429, "count": 1, "ops": ["status"]})
    assert c.status(ref.id).state == "IN_QUEUE"
    assert all(f["count"] == 0 for f in api.emulator("faults")["faults"])
    api.emulator("faults", {"status": 502, "count": 5, "ops": ["health"]})
    with pytest.raises(ServerError, match="HTTP 502"):
        api.client(retries=2).health()
    api.client(retries=2).health()  # the 2 faults left are retried away
    api.post("purge-queue")


def test_a_slow_answer_fault_holds_the_answer_then_gives_the_real_one(api):
    c = api.client()
    ref = c.run({})
    api.emulator("faults", {"delay_s": 0.5, "count": 1, "ops": ["status"]})
    t0 = time.monotonic()
    assert c.status(ref.id).state == "IN_QUEUE"  # answered as it would be, only later
    assert time.monotonic() - t0 >= 0.5
    for body in ({"count": 1}, {"delay_s": -1}, {"status": "500"}, {"delay_s": True}):
        r = requests.post(f"{api.server.base_url}/emulator/faults", json=body,
                          headers={"Authorization": KEY})  # fmt: skip
        assert r.status_code == 400 and "delay_s" in r.json()["error"], body
    api.post("purge-queue")


def test_run_is_never_retried_after_reaching_the_server_but_429_is(api):
    c = api.client()
    api.emulator("faults", {"status": 500, "count": 2, "ops": ["run"]})
    with pytest.raises(ServerError, match="may or may not have been created"):
        c.run({})
    left = [f for f in api.emulator("faults")["faults"] if f["ops"] == ["run"]]
    assert left[-1]["count"] == 1  # exactly one attempt
    with pytest.raises(ServerError):  # the second injected 500
        c.run({"x": 1})
    api.emulator("faults", {"status": 429, "count": 2, "ops": ["run"]})
    before = api.health()["jobs"]["inQueue"]
    ref = c.run({})  # 429 means refused: safe to retry
    assert ref.state == "IN_QUEUE"
    assert api.health()["jobs"]["inQueue"] == before + 1
    api.post("purge-queue")


def test_unreachable_endpoint_after_retries():
    c = EndpointClient(f"http://127.0.0.1:{free_port()}/v2/x", KEY, retries=2, backoff_s=0.01)
    with pytest.raises(EndpointUnreachable, match="Cannot reach"):
        c.status("j")
    with pytest.raises(EndpointUnreachable):  # never sent: retried, then unreachable
        c.run({})


def test_rate_limit_429_retried_by_the_client(tmp_path):
    with plane(
        tmp_path, "--workers", "0", "--rate-limit", "3", "--rate-window", "0.5", wait_workers=None
    ) as p:
        strict = p.client(retries=0)
        with pytest.raises(RateLimited, match="rate-limiting"):
            for _ in range(10):
                strict.health()
        patient = p.client(retries=8, backoff_s=0.1)
        for _ in range(8):
            patient.health()


def test_a_submission_rides_out_the_rate_limit_window(tmp_path):
    """RunPod counts its limits over windows (10 s): a /run refused with 429 is tried again until
    the window lets it through (RATE_WAIT_S), not given up after a few quick retries, when the
    studio would mark the job as never sent. Reads still give up quickly."""
    with plane(
        tmp_path, "--workers", "0", "--rate-limit", "2", "--rate-window", "3", wait_workers=None
    ) as p:
        c = p.client(backoff_s=0.01)  # a few quick retries alone would all land in the window
        refs = [c.run({"n": n}) for n in range(3)]
        assert [r.state for r in refs] == ["IN_QUEUE"] * 3
        reader = p.client(retries=1, backoff_s=0.01)
        with pytest.raises(RateLimited):  # a read is not held up: the tracker asks again later
            for _ in range(5):
                reader.status(refs[0].id)


def test_retry_after_is_read_as_seconds_or_as_a_date():
    from email.utils import format_datetime

    from app.endpoint.client import retry_after

    assert retry_after("12") == 12.0 and retry_after("1.5") == 1.5
    assert retry_after("") is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    assert 15 < retry_after(soon) <= 20


@pytest.mark.parametrize("body", [b"<html>gateway</html>", b'{"status": "IN_QUEUE"}'])
def test_a_run_answer_without_a_job_id_may_have_made_a_job(body):
    """/run answered 200 by something that says nothing of the job (a proxy's page, JSON without
    an id): the request reached RunPod, so the job may exist (LOST and reconcilable in the
    studio), not 'not sent', which invites a duplicate."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        c = EndpointClient(f"http://127.0.0.1:{srv.server_port}/v2/x", KEY, backoff_s=0.01)
        with pytest.raises(JobMayExist, match="may or may not have been created"):
            c.run({})
    finally:
        srv.shutdown()


def test_runsync_waits_as_long_as_the_wait_it_asked_for(tmp_path):
    """/runsync holds the request up to its `wait` (90 s by default on RunPod): the answer is
    waited for that long, not cut at the client's read timeout (a job left running, billed,
    reported as 'may exist')."""
    with plane(tmp_path, "--workers", "0", wait_workers=None) as p:
        c = p.client(timeout_s=0.5)
        t0 = time.monotonic()
        st = c.runsync({"n": 1}, wait_ms=2000)  # no worker: answered IN_QUEUE after the wait
        assert st.state == "IN_QUEUE" and time.monotonic() - t0 >= 1.9
        p.post("purge-queue")


def test_job_status_from_body_maps_fields():
    st = JobStatus.from_body(
        {
            "id": "a",
            "status": "IN_PROGRESS",
            "delayTime": 12,
            "workerId": "w1",
            "output": {"stage": "sampling"},
        }
    )
    assert st.progress == {"stage": "sampling"} and st.output is None and not st.final
    st = JobStatus.from_body({"id": "a", "status": "FAILED", "error": {"x": 1}, "executionTime": 5})
    assert st.error == '{"x": 1}' and st.final and not st.ok and st.execution_ms == 5


def test_api_latency_delays_each_client_answer_not_the_workers(tmp_path):
    """`--api-latency S` (bench/studio_concurrency.py's --api-latency-ms): each answer of the
    client API waits S first, as RunPod's API across the internet does; the workers' own calls
    (taking a job, posting its result) are not delayed, so a job is taken as fast as before."""
    with plane(tmp_path, "--api-latency", "1.0") as p:
        c = p.client(retries=0)
        started = time.monotonic()
        c.health()
        assert time.monotonic() - started >= 1.0
        ref = c.run({"echo": "late"})
        done = c.wait(ref.id, poll_s=0.1, timeout_s=60)
        assert done.state == "COMPLETED", done
        assert done.delay_ms is not None and done.delay_ms < 1000, done  # taken at once
        assert done.execution_ms is not None and done.execution_ms < 1000, done  # its result too
