"""History growth bench: does the worker's time to POST /prompt grow as ComfyUI's history grows?

Runs `--jobs` small jobs through the real handler with CLEANUP_JOB_FILES=false (the history keeps
every prompt) and prints, per block of 10 jobs, the median `wait_ready_ms` (GET /system_stats)
and `queue_ms` (the websocket and POST /prompt), plus the requests the worker made for the last
job (from the emulator's request log). Against the emulator by default; `--comfy HOST:PORT
--output-dir DIR` runs it against a real ComfyUI (a model-free EmptyImage -> SaveVideo job).

Usage: .venvs/worker/bin/python bench/history_growth.py [--jobs 60] [--comfy H:P --output-dir D]
Target (issue 11): flat figures; the per-job requests do not depend on the history (also a test:
tests/worker/test_requests.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORKFLOW = {
    "1": {"class_type": "EmptyImage",
          "inputs": {"width": 64, "height": 64, "batch_size": 4, "color": 0}},
    "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
    "3": {"class_type": "SaveVideo",
          "inputs": {"video": ["2", 0], "filename_prefix": "video/growth", "format": "auto",
                     "codec": "auto"}},
}  # fmt: skip


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def main() -> None:
    from worker.handler import make_handler
    from worker.settings import Settings

    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--comfy", default="")
    ap.add_argument("--output-dir", default="")
    args = ap.parse_args()
    proc = None
    host, out_dir = args.comfy, args.output_dir
    if not host:
        from tests.helpers import free_port

        work = Path(tempfile.mkdtemp(prefix="wanpod-bench-"))
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulators.comfyui", "--port", str(port), "--step-delay",
             "0.001", "--no-cache", "--input-directory", str(work / "in"), "--output-directory",
             str(work / "out"), "--temp-directory", str(work / "tmp")],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        host, out_dir = f"127.0.0.1:{port}", str(work / "out")
        for _ in range(300):
            try:
                get_json(f"http://{host}/system_stats")
                break
            except OSError:
                time.sleep(0.05)
    try:
        settings = Settings.from_env(
            {"COMFY_HOST": host, "COMFY_PID_FILE": "", "COMFY_OUTPUT_DIR": out_dir,
             "CLEANUP_JOB_FILES": "false"}
        )  # fmt: skip
        handler = make_handler(settings)
        loop = asyncio.new_event_loop()
        rows: list[tuple[float, float]] = []
        asked: list[str] = []
        print(f"history growth bench: {args.jobs} jobs, CLEANUP_JOB_FILES=false, ComfyUI {host}")
        print(f"{'jobs':>9} {'history':>8} {'wait_ready_ms':>14} {'queue_ms':>9}")
        for i in range(args.jobs):
            wf = json.loads(json.dumps(WORKFLOW))
            wf["1"]["inputs"]["color"] = i
            result = loop.run_until_complete(
                handler({"id": f"grow-{i}", "input": {"workflow": wf}})
            )
            if proc is not None and i == args.jobs - 1:  # what the last job asked
                log = get_json(f"http://{host}/emulator/requests")
                asked = [f"{r['method']} {r['path']}" for r in log[-3:]]  # type: ignore[index]
            if "error" in result:
                raise SystemExit(f"job {i} failed: {result['error']}")
            t = result["timings"]
            rows.append((t["wait_ready_ms"], t["queue_ms"]))
            if len(rows) == 10 or i == args.jobs - 1:
                history = len(get_json(f"http://{host}/history"))  # type: ignore[arg-type]
                ready = statistics.median(r[0] for r in rows)
                queue = statistics.median(r[1] for r in rows)
                print(
                    f"{i - len(rows) + 2:>4}-{i + 1:<4} {history:>8} {ready:>14.2f} {queue:>9.2f}"
                )
                rows = []
        if proc is not None:
            print("requests of the last job:", ", ".join(asked))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
