"""Studio memory per browser session: what a new session costs, and that WANPOD_SESSIONS bounds it.

    .venvs/app/bin/python bench/session_memory.py [--sessions 300] [--step 50]
                                                  [--caps 100,10000]

For each cap it starts the local stack (one worker) and a studio (`python -m app`) with
WANPOD_SESSIONS=cap, then opens `--sessions` new sessions one after another the way a page load
does: every event the page fires on load (the form's layout, its quote, the health panel, the
history gallery, the remembered job), over Gradio's queue with a fresh session hash. It prints the
studio's resident memory (VmRSS) every `--step` sessions and the growth per session. With the cap
above the number of sessions (Gradio's own default is 10,000) memory grows by the same amount for
every session; with a cap below it, growth stops once the cap is reached (Gradio evicts the least
recently used session, app/__main__.py passes `state_session_capacity`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from emulators.stack import LocalStack, StackConfig  # noqa: E402
from tests.helpers import ServerProcess, free_port  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MB (/proc/<pid>/statm: pages)."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def load_events(config: dict) -> list[tuple[int, list]]:
    """(fn id, input values) of every event the page fires on load, with the page's defaults."""
    values = {c["id"]: (c.get("props") or {}).get("value") for c in config["components"]}
    out = []
    for dep in config["dependencies"]:
        if any(t[1] == "load" for t in dep.get("targets", [])):
            out.append((dep["id"], [values.get(i) for i in dep.get("inputs", [])]))
    return out


def open_session(base: str, events: list[tuple[int, list]]) -> None:
    sh = uuid.uuid4().hex
    for fn, data in events:
        body = {"data": data, "fn_index": fn, "session_hash": sh, "event_data": None}
        requests.post(f"{base}/gradio_api/queue/join", json=body, timeout=60).raise_for_status()
        with requests.get(f"{base}/gradio_api/queue/data?session_hash={sh}", stream=True) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("data:") and '"process_completed"' in line:
                    break


def run(stack: LocalStack, cap: int, sessions: int, step: int) -> list[tuple[int, float]]:
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="wanpod-bench-sessions-"))
    env = {
        "RUNPOD_API_KEY": stack.api_key,
        "RUNPOD_ENDPOINT_ID": stack.endpoint_id,
        "RUNPOD_API_BASE": stack.api_base,
        "WANPOD_DATA_DIR": str(data),
        "GRADIO_SERVER_PORT": str(port),
        "WANPOD_SESSIONS": str(cap),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    argv = [sys.executable, "-m", "app"]
    proc = ServerProcess(argv, port=port, ready_path="/gradio_api/info", env=env, deadline_s=120)
    proc.start()
    try:
        base = proc.base_url
        events = load_events(requests.get(f"{base}/config", timeout=30).json())
        for _ in range(5):  # warm up: imports, caches, the first thumbnails
            open_session(base, events)
        time.sleep(1)
        points = [(0, rss_mb(proc.proc.pid))]
        for n in range(1, sessions + 1):
            open_session(base, events)
            if n % step == 0:
                points.append((n, rss_mb(proc.proc.pid)))
                print(f"  cap {cap}: {n:4d} sessions  RSS {points[-1][1]:7.1f} MB", flush=True)
    finally:
        proc.stop()
    return points


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=300)
    ap.add_argument("--step", type=int, default=50)
    ap.add_argument("--caps", default="100,10000")
    a = ap.parse_args()
    caps = [int(c) for c in a.caps.split(",")]
    results = {}
    with LocalStack(StackConfig(workers=1, work_dir=Path(tempfile.mkdtemp()))) as stack:
        for cap in caps:
            print(
                f"WANPOD_SESSIONS={cap}: {a.sessions} new sessions (each: the page's load events)"
            )
            results[cap] = run(stack, cap, a.sessions, a.step)
    print("\nsummary (RSS in MB; growth per session over the stretch)")
    for cap, points in results.items():
        (n0, m0), (n1, m1) = points[0], points[-1]
        per = (m1 - m0) / max(1, n1 - n0)
        line = f"  cap {cap:>6}: {m0:.1f} -> {m1:.1f} MB over {n1} sessions"
        line += f" = {per * 1024:.0f} KB/session"
        if cap < n1:
            at = min(points, key=lambda p: abs(p[0] - cap))
            tail = (m1 - at[1]) / max(1, n1 - at[0])
            line += f"; after the cap ({at[0]}..{n1}): {tail * 1024:.0f} KB/session"
        print(line)
    print(json.dumps({str(k): v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
