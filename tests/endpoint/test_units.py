"""Pure parts: the control plane's job state machine (ttl, timeouts, retention, sticky final
states), the worker environment, and the CLI's input building, progress line and output saving."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from app.cli import load_job_input, progress_line, save_outputs
from app.endpoint import JobStatus
from emulators.runpod.jobs import JobRequestError, JobStore
from emulators.runpod.workers import WorkerSpec, worker_env
from tests.helpers import REPO


def test_state_machine_sticky_final_states_and_progress():
    s = JobStore()
    job = s.submit({"input": {"a": 1}}, now=0.0)
    assert job.status_body() == {"id": job.id, "status": "IN_QUEUE"}
    assert s.take("w1", now=2.5) is job
    assert s.progress(job, {"step": 1})
    assert job.status_body() == {
        "id": job.id,
        "status": "IN_PROGRESS",
        "delayTime": 2500,
        "workerId": "w1",
        "output": {"step": 1},
    }
    assert s.result(job, {"output": {"ok": True}})
    assert job.status_body()["output"] == {"ok": True} and "executionTime" in job.status_body()
    assert not s.progress(job, {"step": 2})  # late progress ignored
    assert not s.result(job, {"error": "late"})  # late result ignored
    assert job.state == "COMPLETED"


def test_error_is_always_a_string_and_retry_keeps_the_id():
    s = JobStore()
    job = s.submit({"input": {}})
    s.take("w1")
    s.result(job, {"error": {"nested": 1}, "output": {"details": ["x"]}})
    assert job.state == "FAILED" and job.error == '{"nested": 1}'
    assert job.status_body()["output"] == {"details": ["x"]}
    s.retry(job)
    assert job.state == "IN_QUEUE" and s.counts()["retried"] == 1 and list(s.queue) == [job.id]
    with pytest.raises(JobRequestError, match="FAILED or TIMED_OUT"):
        s.retry(job)


def test_ttl_execution_timeout_and_retention():
    s = JobStore(retention_s=30)
    queued = s.submit({"input": {}, "policy": {"ttl": 10_000}}, now=0.0)
    running = s.submit({"input": {}, "policy": {"ttl": 10_000}}, now=0.0)
    slow = s.submit({"input": {}, "policy": {"executionTimeout": 5001}}, now=0.0)
    s.queue.move_to_end(queued.id)  # take running and slow first
    s.take("w1", now=1.0)
    s.take("w2", now=1.0)
    assert s.expire(now=6.0) == ([], [])  # 5000 ms after the take: not yet
    to_stop, final = s.expire(now=6.5)
    assert [j.id for j in to_stop] == [slow.id] == [j.id for j in final]
    assert slow.state == "TIMED_OUT" and "5001 ms" in slow.error
    assert slow.status_body()["executionTime"] == 5500
    to_stop, final = s.expire(now=10.5)
    assert [j.id for j in final] == [queued.id]  # the removed running job has no final state
    assert queued.state == "TIMED_OUT" and "ttl" in queued.error
    assert running.id in [j.id for j in to_stop] and s.get(running.id) is None  # removed: 404
    s.expire(now=10.5 + 30)
    assert s.get(queued.id) is None and s.get(slow.id) is None


def test_policy_validation():
    s = JobStore()
    for policy, word in [
        ({"executionTimeout": 1}, "executionTimeout"),
        ({"executionTimeout": 5000}, "more than 5000"),
        ({"ttl": "x"}, "ttl"),
    ]:
        with pytest.raises(JobRequestError, match=word):
            s.submit({"input": {}, "policy": policy})
    with pytest.raises(JobRequestError, match="no 'input'"):
        s.submit({})


def test_worker_env_is_the_production_one():
    spec = WorkerSpec(
        python="py", env={"COMFY_HOST": "h:1"}, slot_env={"X": ["a", "b"]}, ping_interval_ms=500
    )
    env = worker_env(spec, "http://127.0.0.1:9", "ep", "w3", "k", "/tmp/home", slot=1)
    assert env["RUNPOD_WEBHOOK_GET_JOB"] == "http://127.0.0.1:9/v2/ep/job-take/$ID?gpu=LOCAL-CPU"
    assert "?" in env["RUNPOD_WEBHOOK_POST_OUTPUT"] and "$ID" in env["RUNPOD_WEBHOOK_POST_OUTPUT"]
    assert env["RUNPOD_PING_INTERVAL"] == "1000"  # never below 1 s
    assert env["RUNPOD_SKIP_AUTO_SYSTEM_CHECKS"] == "true" and env["RUNPOD_LOG_LEVEL"] == "INFO"
    assert env["HOME"] == "/tmp/home" and env["RUNPOD_POD_ID"] == "w3"
    assert env["COMFY_HOST"] == "h:1" and env["X"] == "b"


def test_cli_input_from_workflow_or_job_plus_images(tmp_path: Path):
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"1": {"class_type": "X", "inputs": {}}}))
    img = tmp_path / "cat.png"
    img.write_bytes(b"\x89PNG fake")
    inp = load_job_input(wf, [f"start.png={img}"])
    assert inp["workflow"]["1"]["class_type"] == "X"
    assert inp["images"][0]["name"] == "start.png"
    assert inp["images"][0]["image"].startswith("data:image/png;base64,")
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"input": {"workflow": {}, "images": []}}))
    assert load_job_input(job, []) == {"workflow": {}, "images": []}
    with pytest.raises(ValueError, match="NAME=PATH"):
        load_job_input(wf, ["nope"])
    with pytest.raises(ValueError, match="not a file"):
        load_job_input(wf, [f"a.png={tmp_path / 'missing.png'}"])


def test_cli_progress_line_and_saving(tmp_path: Path):
    st = JobStatus.from_body(
        {
            "id": "j",
            "status": "IN_PROGRESS",
            "output": {
                "stage": "sampling",
                "node": "81",
                "node_type": "KSamplerAdvanced",
                "step": 2,
                "steps": 4,
                "nodes_done": 5,
                "nodes_total": 12,
                "percent": 50.0,
                "elapsed_s": 1.0,
                "queue_position": None,
            },
        }
    )
    line = progress_line(st, time.monotonic() - 12, width=10)  # the studio's words and bar
    assert line.startswith("[#####-----]  50.0% Sampling: step 2 of 4 · 12 s elapsed"), line
    out = {
        "images": [
            {
                "filename": "../evil/v.mp4",
                "type": "base64",
                "data": base64.b64encode(b"video").decode(),
            }
        ]
    }
    saved = save_outputs(out, tmp_path / "o")
    assert saved == [tmp_path / "o" / "v.mp4"] and saved[0].read_bytes() == b"video"
    again = save_outputs(out, tmp_path / "o")  # a second run into the same folder: kept apart
    assert again == [tmp_path / "o" / "v-2.mp4"] and saved[0].read_bytes() == b"video"
    # two save nodes' same-named files, each from its own subfolder: both kept, the second
    # numbered (it overwrote the first)
    two = [{"filename": "x_00001_.png", "subfolder": sub, "type": "base64",
            "data": base64.b64encode(sub.encode()).decode()}
           for sub in ("a", "b", "c")]  # fmt: skip
    saved = save_outputs({"images": two}, tmp_path / "two")
    assert [p.name for p in saved] == ["x_00001_.png", "x_00001_-2.png", "x_00001_-3.png"]
    assert [p.read_bytes() for p in saved] == [b"a", b"b", b"c"]


def test_cli_downloads_presigned_urls(tmp_path: Path, monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Files(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path.startswith("/bucket/v.mp4?") else 404)
            self.end_headers()
            self.wfile.write(b"s3 video bytes")

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/bucket/v.mp4?X-Amz-Signature=abc"
        # loopback http only as the configured S3 endpoint (app/studio/fetch.py)
        monkeypatch.setenv("WANPOD_S3_ENDPOINT_URL", f"http://127.0.0.1:{srv.server_port}")
        saved = save_outputs(
            {"images": [{"filename": "v.mp4", "type": "s3_url", "data": url}]}, tmp_path
        )
        assert saved[0].read_bytes() == b"s3 video bytes"
    finally:
        srv.shutdown()


def test_cli_says_when_a_completed_jobs_outputs_cannot_be_saved(tmp_path: Path, capsys):
    """A COMPLETED job whose result the download guard refuses (plain http to a host that is not
    the configured S3 endpoint) or cannot fetch: one line saying the job completed and why its
    outputs were not saved, exit 1, not a traceback."""
    from types import SimpleNamespace

    from app.cli import run_job

    done = JobStatus.from_body({"id": "j-1", "status": "COMPLETED", "output": {"images": [
        {"filename": "v.mp4", "type": "s3_url",
         "data": "http://minio.internal:9000/bucket/v.mp4?X-Amz-Signature=abc"}]}})  # fmt: skip
    client = SimpleNamespace(run=lambda job_input: SimpleNamespace(id="j-1", state="IN_QUEUE"),
                             wait=lambda *a, **kw: done)  # fmt: skip
    assert run_job(client, {"workflow": {}}, tmp_path / "out", 0.1, None) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: job j-1 COMPLETED, but its outputs were not saved: result ")
    assert "uses http; allowed: https, or the configured S3 endpoint" in err
    assert "X-Amz-Signature" not in err


def test_python_m_app_doctor_is_the_cli_doctor(tmp_path: Path):
    """`python -m app.doctor` did nothing and exited 0, whatever the endpoint; it is the CLI's
    doctor (here: no credentials, exit 2 saying what to set)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    done = subprocess.run([sys.executable, "-m", "app.doctor"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "RUNPOD_API_KEY" in done.stdout, done
