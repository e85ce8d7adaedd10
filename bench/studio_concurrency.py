"""Studio concurrency bench: N simultaneous browser users, each running one ~5 s emulated job.

    .venvs/app/bin/python bench/studio_concurrency.py [--users 32] [--job-s 5] [--poll-s 1.0]

Starts the local stack (one ComfyUI emulator per worker, N real worker processes behind the local
RunPod control plane), a studio (`python -m app`) pointed at it, and one headless Chromium with
N pages. Every page fills the form and all press Generate together. Prints:
- wall time from the first click to the last video being playable, as a ratio to the job length
  (target <= 1.2);
- per job, the delay from the endpoint's COMPLETED (submit time + delayTime + executionTime, from
  the studio's ledger) to the video being playable in the page (target <= 1 s plus download).
Needs /usr/bin/chromium (scripts/ensure-chromium.sh).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from emulators.stack import LocalStack, StackConfig  # noqa: E402

# Each page records the moment its result video can play ("loadeddata" / "canplay" do not
# bubble: listen in the capture phase); the bench then reads it with slow polling.
RECORD_READY_JS = """
window.__wpReady = 0;
const mark = (e) => {
  const v = e.target;
  if (v && v.tagName === 'VIDEO' && v.closest('#wp-video') && v.readyState >= 2 && v.duration > 0
      && !window.__wpReady) { window.__wpReady = Date.now(); }
};
document.addEventListener('loadeddata', mark, true);
document.addEventListener('canplay', mark, true);
"""
READY_JS = "window.__wpReady || false"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, deadline_s: float, proc: subprocess.Popen) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"studio exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--job-s", type=float, default=5.0, help="emulated sampling time per job")
    ap.add_argument("--poll-s", type=float, default=1.0, help="studio tracker poll (WANPOD_POLL_S)")
    args = ap.parse_args()
    steps = 4  # T2V 14B turbo: 2 + 2 KSamplerAdvanced steps
    work = Path(tempfile.mkdtemp(prefix="wanpod-bench-"))
    cfg = StackConfig(
        workers=args.users,
        step_delay=args.job_s / steps,
        comfy_args=("--video-max-side", "96"),
        work_dir=work / "stack",
        ready_timeout_s=600,
    )
    t0 = time.monotonic()
    with LocalStack(cfg) as stack:
        print(f"stack: {args.users} workers + emulators ready in {time.monotonic() - t0:.1f} s")
        port = free_port()
        data = work / "studio"
        env = {
            **os.environ,
            **stack.env(),
            "WANPOD_DATA_DIR": str(data),
            "GRADIO_SERVER_PORT": str(port),
            "WANPOD_POLL_S": str(args.poll_s),
            "WANPOD_CONCURRENCY": str(max(64, args.users * 2)),
        }
        log = (work / "studio.log").open("wb")
        studio = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/gradio_api/info", 120, studio)
            return run_browsers(url, args, data)
        finally:
            studio.terminate()
            studio.wait(20)


def run_browsers(url: str, args: argparse.Namespace, data: Path) -> int:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        pages = []
        t_load = time.monotonic()
        for i in range(args.users):
            ctx = browser.new_context()
            ctx.add_init_script(RECORD_READY_JS)
            page = ctx.new_page()
            page.set_default_timeout(300_000)
            page.goto(url)
            page.locator("#wp-prompt textarea").fill(f"bench user {i}: a kite over the sea")
            pages.append(page)
        for page in pages:
            page.wait_for_function(
                "document.querySelector('#wp-quote').innerText.includes('GPU s')"
            )
        print(f"{args.users} pages loaded and filled in {time.monotonic() - t_load:.1f} s")
        # every page clicks Generate at the same wall-clock moment (a timer set in each page)
        start_ms = int(time.time() * 1000) + 1000 + 60 * len(pages)
        for page in pages:
            page.evaluate(
                f"setTimeout(() => document.querySelector('#wp-generate').click(),"
                f" {start_ms} - Date.now())"
            )
        clicked = [start_ms / 1000]
        t_start = start_ms / 1000
        ready_ms: list[int] = []
        for page in pages:
            handle = page.wait_for_function(READY_JS, timeout=300_000, polling=500)
            ready_ms.append(int(handle.json_value()))
        t_end = max(ready_ms) / 1000
        browser.close()
    wall = t_end - t_start
    rows = completed_rows(data)
    delays = []
    for rid, submitted, delay_ms, exec_ms, ready in zip_rows(rows, ready_ms, pages_n=len(pages)):
        done_at = submitted + (delay_ms + exec_ms) / 1000
        delays.append(ready - done_at)
        del rid
    execs = [r[3] / 1000 for r in rows]
    print(
        f"users: {args.users}, job: {args.job_s:.1f} s emulated sampling, "
        f"tracker poll {args.poll_s:.2f} s"
    )
    print(f"clicks spread over {clicked[-1] - clicked[0]:.2f} s (first click = t0, {start_ms})")
    print(f"executionTime per job: median {statistics.median(execs):.2f} s, max {max(execs):.2f} s")
    print(f"wall time, first click -> last video playable: {wall:.2f} s")
    print(f"ratio to {args.job_s:.1f} s: {wall / args.job_s:.2f} (target <= 1.2)")
    if delays:
        delays.sort()
        p90 = delays[max(int(len(delays) * 0.9) - 1, 0)]
        print(
            f"COMPLETED -> playable in page: median {statistics.median(delays):.2f} s, "
            f"p90 {p90:.2f} s, max {max(delays):.2f} s (target <= 1 s plus download)"
        )
    breakdown(data, t_start)
    return 0


def breakdown(data: Path, t_start: float) -> None:
    con = sqlite3.connect(data / "ledger.sqlite3")
    rows = con.execute(
        "SELECT created_at, submitted_at, delay_ms, execution_ms, completed_seen_at, stored_at"
        " FROM jobs WHERE state='COMPLETED'"
    ).fetchall()
    con.close()
    parts: dict[str, list[float]] = {}
    for created, submitted, delay_ms, exec_ms, seen, stored in rows:
        done = submitted + (delay_ms + exec_ms) / 1000
        for name, value in (
            ("first click -> ledger row", created - t_start),
            ("ledger row -> /run answered", submitted - created),
            ("delayTime (queue + pick-up)", delay_ms / 1000),
            ("executionTime", exec_ms / 1000),
            ("COMPLETED -> tracker saw it", seen - done),
            ("tracker saw it -> stored", stored - seen),
        ):
            parts.setdefault(name, []).append(value)
    for name, values in parts.items():
        print(f"  {name:30s} median {statistics.median(values):6.2f} s  max {max(values):6.2f} s")


def completed_rows(data: Path) -> list[tuple]:
    con = sqlite3.connect(data / "ledger.sqlite3")
    rows = con.execute(
        "SELECT id, submitted_at, delay_ms, execution_ms, params FROM jobs"
        " WHERE state='COMPLETED' ORDER BY created_at"
    ).fetchall()
    con.close()
    return rows


def zip_rows(rows, ready_ms, pages_n):
    """Match ledger rows to pages by prompt ("bench user i")."""
    import json

    by_user = {}
    for rid, submitted, delay_ms, exec_ms, params in rows:
        prompt = json.loads(params).get("prompt", "")
        user = int(prompt.split(":")[0].split()[-1])
        by_user[user] = (rid, submitted, delay_ms or 0, exec_ms or 0)
    for i in range(pages_n):
        if i in by_user:
            rid, submitted, d, e = by_user[i]
            yield rid, submitted, d, e, ready_ms[i] / 1000


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
