"""`python -m worker.handler` as a real process (the runpod SDK's local `--test_input` mode):
progress posts captured by a local HTTP server at RUNPOD_WEBHOOK_POST_OUTPUT, and logs that never
contain base64 payloads or keys, even when DEBUG is asked for."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import REPO
from tests.worker.conftest import Comfy, load_workflow, needs_wan_run, png_b64, with_seed

T2V = load_workflow("wan22_t2v_14B_lightx2v")
I2V = load_workflow("wan22_i2v_14B_lightx2v")
B64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}")


class Capture:
    """The posts made to it; `ports`: the client port (connection) each came over. Connections
    are kept alive between requests, as RunPod's API keeps them."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, str, dict]] = []
        self.ports: list[int] = []
        capture = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                capture.posts.append((time.monotonic(), self.path, json.loads(body)))
                capture.ports.append(self.client_address[1])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def capture():
    c = Capture()
    yield c
    c.close()


def run_worker(env: dict[str, str], job: dict, tmp_path) -> subprocess.CompletedProcess:
    full = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),  # no ~/.runpod/config.toml
        "PYTHONUNBUFFERED": "1",
        "RUNPOD_LOG_LEVEL": "DEBUG",  # asked for; the worker must still keep payloads out
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "worker.handler", "--test_input", json.dumps(job)],
        cwd=REPO, env=full, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def assert_clean(logs: str, secrets: list[str]) -> None:
    for s in secrets:
        assert s not in logs, f"secret {s[:4]}… leaked into logs"
    assert not B64_RUN.search(logs), B64_RUN.search(logs).group(0)[:80]
    assert "AAAAIGZ0eXA" not in logs  # the mp4's base64 header


def test_progress_is_posted_in_the_documented_shape(emu: Comfy, capture: Capture, tmp_path):
    # each step outlasts a post: one post at a time, a step only replaced by a newer state
    emu.knobs(step_delay=0.2)
    env = emu.env(
        RUNPOD_WEBHOOK_POST_OUTPUT=capture.url + "/progress/$ID?src=local",
        PROGRESS_INTERVAL_S="0",
    )
    job = {
        "id": "prog-1",
        "input": {"workflow": with_seed(T2V, 31), "comfy_org_api_key": "comfy-key-XYZ123"},
    }
    proc = run_worker(env, job, tmp_path)
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0, logs[-3000:]
    # the worker waits for its last progress post to be answered before it returns
    posts = [p for p in capture.posts if p[1].startswith("/progress/prog-1?")]
    assert posts, capture.posts
    for _, path, body in posts:
        assert path.endswith("&isStream=false") and body["status"] == "IN_PROGRESS"
        assert set(body["output"]) == {
            "stage", "node", "node_type", "step", "steps", "nodes_done", "nodes_total",
            "percent", "elapsed_s", "queue_position",
        }  # fmt: skip
    outs = [b["output"] for _, _, b in posts]
    stages = [o["stage"] for o in outs]
    assert stages[0] == "starting" and "sampling" in stages and "saving" in stages
    assert "delivering" not in stages  # base64 delivery is instant: no post right before return
    sampling = [o for o in outs if o["stage"] == "sampling" and o["step"]]
    assert {o["node_type"] for o in sampling} == {"KSamplerAdvanced"}
    assert {o["node"] for o in sampling} == {"78", "81"}
    # a step that lasts is posted; a sampler's last step is followed at once by the next node,
    # and of such a burst only the newest state is posted (it may or may not still show 2/2)
    assert {(o["node"], o["step"], o["steps"]) for o in sampling} >= {("78", 1, 2), ("81", 1, 2)}
    assert all(o["nodes_total"] == len(T2V) for o in outs)
    percents = [o["percent"] for o in outs]  # in the order they arrived: one ordered sender
    assert percents == sorted(percents) and 50 < percents[-1] < 100
    elapsed = [o["elapsed_s"] for o in outs]
    assert elapsed == sorted(elapsed)
    assert_clean(logs, ["comfy-key-XYZ123"])
    # the job's updates share one connection (the SDK's progress_update opens one for each)
    assert len(posts) >= 5 and len(set(capture.ports)) == 1, capture.ports


@needs_wan_run
def test_logs_hold_no_base64_or_keys_with_s3_and_images(emu: Comfy, s3_server, tmp_path):
    import boto3

    boto3.client(
        "s3", endpoint_url=s3_server.base_url, aws_access_key_id="a", aws_secret_access_key="b",
        region_name="us-east-1",
    ).create_bucket(Bucket="logs-test")  # fmt: skip
    secrets = ["AKIDLOGTESTKEY99", "s3-secret-LOGTEST-value", "org-key-LOGTEST-1"]
    env = emu.env(
        BUCKET_ENDPOINT_URL=s3_server.base_url,
        BUCKET_ACCESS_KEY_ID=secrets[0],
        BUCKET_SECRET_ACCESS_KEY=secrets[1],
        BUCKET_NAME="logs-test",
        COMFY_ORG_API_KEY=secrets[2],
        WORKER_LOG_LEVEL="DEBUG",
        WEBSOCKET_TRACE="true",
    )
    wf = with_seed(I2V, 32)
    wf["97"]["inputs"]["image"] = "in.png"
    job = {
        "id": "logs-1",
        "input": {"workflow": wf, "images": [{"name": "in.png", "image": png_b64((300, 200))}]},
    }
    proc = run_worker(env, job, tmp_path)
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0, logs[-3000:]
    assert "logs-1" in logs and "s3_url" in logs  # our own summary line is there
    assert_clean(logs, secrets)


def test_failed_job_exits_non_zero_with_the_readable_error(emu: Comfy, tmp_path):
    emu.knobs(error_at_node="80")
    proc = run_worker(emu.env(), {"input": {"workflow": with_seed(T2V, 33)}}, tmp_path)
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "workflow execution failed: node 80 (SaveVideo) raised" in logs


def test_incomplete_s3_settings_stop_the_worker_at_start(tmp_path):
    proc = run_worker(
        {"BUCKET_ENDPOINT_URL": "http://127.0.0.1:9"}, {"input": {"workflow": T2V}}, tmp_path
    )
    assert proc.returncode == 2
    assert "S3 delivery is half configured" in proc.stderr
