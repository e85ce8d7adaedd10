"""The control plane with real runpod-SDK worker processes (tests/endpoint/echo_worker.py run by
the worker venv's python): progress, results, errors, cancel/timeout stop signals, retry,
webhooks, retention, lost workers, stopPod and cold starts."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from app.errors import JobNotFound
from tests.endpoint.conftest import plane

pytestmark = pytest.mark.slow


def test_progress_then_completed_with_times_and_worker(echo_plane):
    c = echo_plane.client()
    ref = c.run({"progress": 4, "echo": "hi"})
    seen = []
    final = c.wait(ref.id, on_update=seen.append, poll_s=0.05, timeout_s=20)
    steps = [s.progress["step"] for s in seen if s.state == "IN_PROGRESS" and s.progress]
    assert steps and steps == sorted(steps), seen
    assert final.state == "COMPLETED"
    assert final.output == {"echo": "hi", "worker": "w1"}
    assert final.worker_id == "w1" and final.delay_ms is not None
    assert final.execution_ms >= 700  # 4 progress posts 0.2 s apart
    body = final.raw
    assert set(body) == {"id", "status", "delayTime", "executionTime", "workerId", "output"}


def test_returned_error_and_exception_are_failed_with_text(echo_plane):
    c = echo_plane.client()
    st = c.wait(c.run({"fail": "the prompt is empty"}).id, poll_s=0.05, timeout_s=20)
    assert st.state == "FAILED" and st.error == "the prompt is empty"
    assert st.output == {"details": ["from the test worker"]}
    st = c.wait(c.run({"raise": "boom"}).id, poll_s=0.05, timeout_s=20)
    assert st.state == "FAILED" and json.loads(st.error)["error_message"] == "boom"


def test_queued_second_job_waits_for_the_busy_worker(echo_plane):
    c = echo_plane.client()
    a = c.run({"sleep": 1.0})
    b = c.run({"echo": "b"})
    echo_plane.wait_for(lambda: c.status(a.id).state == "IN_PROGRESS", what="a running")
    assert c.status(b.id).state == "IN_QUEUE"
    assert echo_plane.health()["jobs"]["inQueue"] >= 1
    fb = c.wait(b.id, poll_s=0.05, timeout_s=20)
    fa = c.status(a.id)
    assert fa.state == fb.state == "COMPLETED"
    # b was handed out only once a had finished (the plane's record, not a duration)
    assert echo_plane.job_times(b.id)["taken_wall"] >= echo_plane.job_times(a.id)["finished_wall"]


def test_cancel_mid_job_reaches_the_handler(echo_plane, tmp_path):
    marker = tmp_path / "cancelled"
    c = echo_plane.client()
    ref = c.run({"progress": 1, "sleep": 30, "cancel_marker": str(marker)})
    echo_plane.wait_for(lambda: c.status(ref.id).progress, what="the handler's first progress")
    assert c.cancel(ref.id).state == "CANCELLED"
    # the handler creates the file, then writes the id: wait for the id, not the file
    echo_plane.wait_for(lambda: marker.exists() and marker.read_text(), 10, "CancelledError")
    assert marker.read_text() == ref.id
    assert c.status(ref.id).state == "CANCELLED"  # sticky
    echo_plane.wait_idle()
    assert c.wait(c.run({"echo": 1}).id, poll_s=0.05, timeout_s=20).ok  # worker reusable


def test_execution_timeout_is_timed_out_and_stops_the_handler(echo_plane, tmp_path):
    marker = tmp_path / "timed-out"
    c = echo_plane.client()
    ref = c.run({"sleep": 30, "cancel_marker": str(marker)}, policy={"executionTimeout": 5001})
    st = c.wait(ref.id, poll_s=0.1, timeout_s=20)
    # the 30 s handler was cut at the timeout (the clock itself: test_units' injected one)
    assert st.state == "TIMED_OUT" and "5001 ms" in st.error
    assert st.execution_ms >= 5001
    echo_plane.wait_for(marker.exists, 10, "stop signal for the timed-out job")
    # retry keeps the id and runs it again
    assert c.retry(ref.id).state == "IN_QUEUE"
    assert echo_plane.health()["jobs"]["retried"] >= 1


def test_webhook_retried_until_200(echo_plane):
    calls = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(500 if len(calls) < 3 else 200)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        c = echo_plane.client()
        ref = c.run({"echo": "w"}, webhook=f"http://127.0.0.1:{srv.server_port}/hook")
        echo_plane.wait_for(lambda: echo_plane.job_times(ref.id)["webhook_done"], 20, "webhook")
        assert echo_plane.job_times(ref.id)["webhook_calls"] == len(calls) == 3
        assert calls[0]["id"] == ref.id and calls[0]["status"] == "COMPLETED"
        # the plane also counts the /status calls answered for a job (the bench's polls per job)
        assert echo_plane.job_times(ref.id)["status_calls"] == 0  # the webhook said it all
        for _ in range(3):
            c.status(ref.id)
        assert echo_plane.job_times(ref.id)["status_calls"] == 3
        assert calls[0]["output"]["echo"] == "w"
    finally:
        srv.shutdown()


def test_result_retention_then_404(echo_plane):
    c = echo_plane.client()
    ref = c.run({"echo": 1})
    assert c.wait(ref.id, poll_s=0.05, timeout_s=20).ok
    assert c.status(ref.id).ok  # kept (3 s on the echo plane; the clock: test_units)

    def gone() -> JobNotFound | None:
        try:
            c.status(ref.id)
        except JobNotFound as e:
            return e
        return None

    assert "expired" in str(echo_plane.wait_for(gone, 20, "the result to expire"))


def test_killed_worker_fails_its_job_and_a_new_worker_takes_the_next(tmp_path):
    with plane(tmp_path, "--workers", "1", "--lost-after", "3") as p:
        c = p.client()
        ref = c.run({"sleep": 60})
        p.wait_for(lambda: c.status(ref.id).state == "IN_PROGRESS", what="running")
        pid = p.emulator("state")["workers"]["w1"]["pid"]
        os.kill(pid, signal.SIGKILL)
        st = c.wait(ref.id, poll_s=0.1, timeout_s=15)
        assert st.state == "FAILED"
        assert "worker w1 exited with code -9" in st.error and "not retried" in st.error
        nxt = c.wait(c.run({"echo": 2}).id, poll_s=0.1, timeout_s=30)
        assert nxt.ok and nxt.worker_id == "w2"


def test_a_worker_gone_leaves_no_temp_home_behind(tmp_path):
    """Each worker process gets a temp HOME; it is removed when the worker dies or is stopped
    (its log is in --log-dir), where thousands were left before."""
    temp = tmp_path / "temp"
    temp.mkdir()

    def homes() -> list[str]:
        return sorted(h.name.split("-home-")[0] for h in temp.iterdir() if "-home-" in h.name)

    with plane(tmp_path, "--workers", "1", env={"TMPDIR": str(temp)}) as p:
        assert homes() == ["wanpod-w1"]
        os.kill(p.emulator("state")["workers"]["w1"]["pid"], signal.SIGKILL)
        p.wait_for(lambda: "w1" not in p.emulator("state")["workers"], 20, "w1 seen gone")
        assert homes() == []
        c = p.client()  # the next job starts w2
        assert c.wait(c.run({"echo": 1}).id, poll_s=0.05, timeout_s=30).worker_id == "w2"
        assert homes() == ["wanpod-w2"]
    assert homes() == []  # the plane stopped its worker: w2's home went with it


def test_scale_from_zero_cold_start_and_idle_scale_down(tmp_path):
    with plane(
        tmp_path,
        "--workers",
        "1",
        "--start-workers",
        "0",
        "--boot-delay",
        "1.0",
        "--idle-timeout",
        "1.5",
        wait_workers=None,
    ) as p:
        assert p.health()["workers"]["idle"] == 0
        c = p.client()
        ref = c.run({"echo": "cold"})
        states = []
        st = c.wait(ref.id, on_update=lambda s: states.append(s.state), poll_s=0.05, timeout_s=30)
        assert st.ok and states[0] == "IN_QUEUE" and "COMPLETED" in states
        assert st.delay_ms >= 1000  # boot delay + interpreter start
        p.wait_for(lambda: sum(p.health()["workers"].values()) == 0, 15, "scale to zero")


def test_stop_pod_replaces_the_worker(tmp_path):
    with plane(tmp_path, "--workers", "1") as p:
        c = p.client()
        first = c.wait(c.run({"stop_pod": True}).id, poll_s=0.05, timeout_s=20)
        assert first.ok and first.worker_id == "w1"
        second = c.wait(c.run({"echo": 1}).id, poll_s=0.05, timeout_s=30)
        assert second.ok and second.worker_id == "w2"


def test_cancel_right_after_the_take_is_re_sent_until_it_lands(echo_plane, tmp_path):
    # the SDK drops a stop that arrives before the job's task exists; the plane re-sends it
    marker = tmp_path / "cancelled-early"
    c = echo_plane.client()
    ref = c.run({"sleep": 30, "cancel_marker": str(marker)})
    echo_plane.wait_for(lambda: c.status(ref.id).state == "IN_PROGRESS", what="taken")
    assert c.cancel(ref.id).state == "CANCELLED"
    echo_plane.wait_for(marker.exists, 10, "the stop to reach the handler")
    echo_plane.wait_idle()


def test_silent_worker_is_lost_and_its_late_result_ignored(tmp_path):
    with plane(tmp_path, "--workers", "1", "--lost-after", "2") as p:
        c = p.client()
        ref = c.run({"sleep": 1.5, "echo": "late"})
        p.wait_for(lambda: c.status(ref.id).state == "IN_PROGRESS", what="running")
        pid = p.emulator("state")["workers"]["w1"]["pid"]
        os.killpg(pid, signal.SIGSTOP)  # the worker's own process group (heartbeat included)
        try:
            st = c.wait(ref.id, poll_s=0.1, timeout_s=15)
        finally:
            os.killpg(pid, signal.SIGCONT)
        assert st.state == "FAILED" and "sent no heartbeat" in st.error
        # the resumed worker posts its result: ignored, the final state is sticky
        p.wait_for(lambda: p.job_times(ref.id)["ignored_posts"], 20, "the late result")
        assert c.status(ref.id).state == "FAILED"


def test_stream_returns_only_new_chunks_then_the_aggregate(tmp_path):
    with plane(tmp_path, "--workers", "1", module="tests.endpoint.stream_worker") as p:
        c = p.client()
        ref = c.run({"n": 5})
        chunks, state = [], ""
        end = time.monotonic() + 20
        while state not in ("COMPLETED", "FAILED") and time.monotonic() < end:
            state, new = c.stream(ref.id)
            chunks.extend(new)
            time.sleep(0.1)
        state, new = c.stream(ref.id)
        chunks.extend(new)
        assert chunks == [{"chunk": i} for i in range(5)]  # each chunk exactly once
        st = c.status(ref.id)
        assert st.ok and st.output == [{"chunk": i} for i in range(5)]


def test_bursts_of_progress_reach_status_in_order_and_the_newest_wins(tmp_path):
    """The SDK's progress_update posts every update from a thread of its own, so a burst raced
    and reached /status out of order (a poller saw the percentage drop). Through the real SDK
    loop and the control plane: what the plane receives only goes forward, and the last
    progress before COMPLETED is the newest the handler sent."""
    with plane(tmp_path, "--workers", "1", module="tests.endpoint.progress_worker") as p:
        c = p.client()
        for _ in range(3):
            ref = c.run({"bursts": 6, "size": 12})
            final = c.wait(ref.id, poll_s=0.05, timeout_s=30)
            assert final.state == "COMPLETED", final
            received = [v["step"] for _, v in p.emulator(f"jobs/{ref.id}")["progress_wall"]]
            assert received, "no progress reached the control plane"
            assert received == sorted(set(received)), f"out of order: {received}"
            assert received[-1] == final.output["last"] == 72
