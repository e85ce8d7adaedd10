"""Progress posts bench: the worker's CPU for one progress update, posted the SDK's way (its
`progress_update`: a new event loop, HTTP session and connection for every update) and the
worker's way (worker/progress.py's SessionPost: one session and connection kept for a job).

Usage: .venvs/worker/bin/python bench/progress_posts.py [--posts 200]
Both post the same body through the SDK's own `send_result` to a local HTTP/1.1 server (a process
of its own, so its CPU is not counted). Prints the worker process's CPU and wall time per post.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SERVER = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, as from a real API server
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""
PAYLOAD = {"stage": "sampling", "node": "78", "node_type": "KSamplerAdvanced", "step": 3,
           "steps": 8, "nodes_done": 9, "nodes_total": 24, "percent": 41.7, "elapsed_s": 12.3,
           "queue_position": None}  # fmt: skip


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sdk_way(job: dict) -> None:
    """What `runpod.serverless.progress_update` does for each update, in this thread."""
    from runpod.http_client import AsyncClientSession
    from runpod.serverless.modules.rp_http import send_result

    async def main() -> None:
        async with AsyncClientSession() as session:
            await send_result(session, {"status": "IN_PROGRESS", "output": PAYLOAD}, job)

    asyncio.run(main())


def measure(name: str, post, posts: int) -> None:
    post()  # warm: imports, first connection
    c0, t0 = cpu_s(), time.perf_counter()
    for _ in range(posts):
        post()
    cpu, wall = (cpu_s() - c0) / posts, (time.perf_counter() - t0) / posts
    print(f"{name:<44} {cpu * 1000:6.2f} ms CPU, {wall * 1000:6.2f} ms wall per post")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--posts", type=int, default=200)
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        os.environ["RUNPOD_WEBHOOK_POST_OUTPUT"] = f"http://127.0.0.1:{port}/done/$ID?gpu=x"
        os.environ.setdefault("RUNPOD_LOG_LEVEL", "ERROR")
        from worker.progress import SessionPost

        job = {"id": "bench-job"}
        print(f"{args.posts} progress posts to a local HTTP/1.1 server")
        measure("SDK's progress_update (a session each)", lambda: sdk_way(job), args.posts)
        kept = SessionPost()
        measure("worker's SessionPost (one session a job)", lambda: kept(job, PAYLOAD), args.posts)
        kept.close()
    finally:
        server.kill()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
