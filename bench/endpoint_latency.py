"""Endpoint latency bench: how late the client sees what happened on the worker.

Stack: ComfyUI emulator in this process (its websocket hub is observed to timestamp every
sampler `progress` message), the local RunPod control plane as a subprocess, one real worker
(`worker.handler`, worker venv python). The client is app.endpoint.EndpointClient polling /status.
Prints:
- result latency: from the control plane receiving the worker's result post (its wall clock,
  GET /emulator/jobs/{id}) to the client seeing COMPLETED. Target <= poll interval + 50 ms.
- progress latency: from the emulator sending sampler step k to the first client /status answer
  whose progress shows that node at step >= k. Target <= 1.5 s. (The worker throttles its
  progress posts to PROGRESS_INTERVAL_S, default 1 s; both are included.)

Usage: .venvs/app/bin/python bench/endpoint_latency.py [--jobs 6] [--poll 1.0]
       [--progress-poll 0.25] [--step-delay 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.endpoint import EndpointClient  # noqa: E402
from emulators.comfyui import EmulatorConfig, EmulatorThread  # noqa: E402
from emulators.comfyui.server import STATE  # noqa: E402
from emulators.runpod.workers import default_worker_python  # noqa: E402

KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_input(seed: int) -> dict:
    inp = json.loads((REPO / "test_input.json").read_text())["input"]
    for node in inp["workflow"].values():
        if "noise_seed" in node["inputs"]:
            node["inputs"]["noise_seed"] = seed
    return inp


def observe_progress(emu: EmulatorThread) -> list[tuple[float, str, int]]:
    """(wall time, node, step) of every sampler progress message the emulator sends."""
    events: list[tuple[float, str, int]] = []
    hub = emu.app[STATE].hub
    send = hub.send

    def recording_send(event: str, data, sid=None) -> None:
        if event == "progress":
            events.append((time.time(), str(data["node"]), int(data["value"])))
        send(event, data, sid)

    hub.send = recording_send
    return events


def start_plane(emu: EmulatorThread, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [
        sys.executable, "-m", "emulators.runpod", "--port", str(port), "--api-key", KEY,
        "--workers", "1", "--worker-python", default_worker_python(),
        "--ping-interval-ms", "1000", "--hold", "10", "--log-dir", str(work / "workers"),
        "--worker-env", f"COMFY_HOST={emu.address}",
        "--worker-env", f"COMFY_INPUT_DIR={emu.config.input_directory}",
        "--worker-env", f"COMFY_OUTPUT_DIR={emu.config.output_directory}",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v2/local-ep"
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            h = requests.get(f"{base}/health", headers={"Authorization": KEY}, timeout=1).json()
            if h["workers"]["idle"] >= 1:
                return proc, base
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"control plane/worker not ready; logs in {work}/workers")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--poll", type=float, default=1.0, help="client poll interval for results")
    ap.add_argument("--progress-poll", type=float, default=0.25)
    ap.add_argument("--step-delay", type=float, default=1.0)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wanpod-bench-"))
    for d in ("input", "output", "temp"):
        (work / d).mkdir()
    cfg = EmulatorConfig(
        step_delay=a.step_delay,
        input_directory=str(work / "input"),
        output_directory=str(work / "output"),
        temp_directory=str(work / "temp"),
    )
    with EmulatorThread(cfg) as emu:
        emu.set(cache=False)
        events = observe_progress(emu)
        proc, base = start_plane(emu, work)
        try:
            client = EndpointClient(base, KEY)
            result_lat, progress_lat = [], []
            for i in range(a.jobs):
                # result latency at the client's normal poll interval
                ref = client.run(job_input(1000 + i))
                seen: list[tuple[float, dict]] = []
                poll = a.progress_poll if i % 2 else a.poll

                def on(st, seen=seen) -> None:
                    if st.state == "IN_PROGRESS" and isinstance(st.progress, dict):
                        seen.append((time.time(), st.progress))

                first = len(events)
                st = client.wait(ref.id, on_update=on, poll_s=poll, timeout_s=300)
                t_seen = time.time()
                times = requests.get(
                    f"{base.rsplit('/v2/', 1)[0]}/emulator/jobs/{ref.id}",
                    headers={"Authorization": KEY},
                    timeout=5,
                ).json()
                if st.state != "COMPLETED":
                    print(f"job {i}: {st.state} {st.error}")
                    continue
                if poll == a.poll:
                    result_lat.append((t_seen - times["finished_wall"]) * 1000)
                else:  # progress latency at the studio's fast poll while running
                    for t_emit, node, step in events[first:]:
                        obs = [
                            t for t, p in seen
                            if p.get("node") == node and (p.get("step") or 0) >= step
                        ]  # fmt: skip
                        later = [t for t, p in seen if t >= t_emit and p.get("node") != node]
                        t_obs = min(obs) if obs else (min(later) if later else None)
                        if t_obs is not None:
                            progress_lat.append((t_obs - t_emit) * 1000)
        finally:
            proc.terminate()
            proc.wait(30)

    def fmt(xs: list[float]) -> str:
        if not xs:
            return "no samples"
        return (
            f"n={len(xs)} median {statistics.median(xs):.0f} ms, "
            f"max {max(xs):.0f} ms, min {min(xs):.0f} ms"
        )

    target_r = a.poll * 1000 + 50
    ok_r = bool(result_lat) and max(result_lat) <= target_r
    ok_p = bool(progress_lat) and max(progress_lat) <= 1500
    print(f"endpoint latency bench ({a.jobs} T2V jobs via the real worker, step_delay "
          f"{a.step_delay} s, worker PROGRESS_INTERVAL_S default)")  # fmt: skip
    verdict_r = "OK" if ok_r else "MISSED"
    print(f"result latency (worker result post -> client sees COMPLETED), poll {a.poll:.2f} s: "
          f"{fmt(result_lat)}  target <= {target_r:.0f} ms: {verdict_r}")  # fmt: skip
    print(f"progress latency (emulator sampler step -> client sees it), poll "
          f"{a.progress_poll:.2f} s: {fmt(progress_lat)}  target <= 1500 ms: "
          f"{'OK' if ok_p else 'MISSED'}")  # fmt: skip
    return 0 if ok_r and ok_p else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
