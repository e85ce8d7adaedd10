"""Run one job through the real handler and save its outputs: `python -m worker.local_run
[test_input.json] [--out DIR]` (used by `scripts/run_worker_job.sh`). Reads settings from the
environment like the worker does; base64 outputs are decoded into DIR, S3 outputs are printed
as URLs."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from pathlib import Path

from .handler import configure_logging, make_handler
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m worker.local_run")
    ap.add_argument("job", nargs="?", default="test_input.json", help="a RunPod job JSON file")
    ap.add_argument("--out", default="out", help="folder for decoded outputs (default: out)")
    args = ap.parse_args(argv)
    settings = Settings.from_env(os.environ)
    configure_logging(settings)
    job = json.loads(Path(args.job).read_text())
    job.setdefault("id", "local-run")
    result = asyncio.run(make_handler(settings)(job))
    if "error" in result:
        print(f"job failed: {result['error']}", file=sys.stderr)
        for d in result.get("details", []):
            print(f"  - {d}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for item in result["images"]:
        if item["type"] == "base64":
            dest = out / item["filename"]
            dest.write_bytes(base64.b64decode(item["data"]))
            where = str(dest.resolve())
        else:
            where = item["data"]
        print(
            f"{item['kind']} {item['mime']} {item['size']} bytes (node {item['node_id']}): {where}"
        )
    t = result["timings"]
    print(
        f"ComfyUI {result['comfyui']['version']}, prompt {result['comfyui']['prompt_id']}: "
        f"total {t['total_ms']:.0f} ms, execution {t.get('execution_ms')} ms"
    )
    for e in result.get("errors", []):
        print(f"warning: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
