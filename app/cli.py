"""`python -m app.cli run WORKFLOW.json [--image name=path ...] [--out DIR]`
`python -m app.cli doctor [--timeout S]`: what the configured endpoint can run (app/doctor.py).

Submits one ComfyUI job through the endpoint client, draws a terminal progress bar from the
job's progress, saves the outputs (base64 decoded, or the presigned URL downloaded) and prints
the timings. WORKFLOW.json is either an API-format workflow or a whole job (`{"input":
{"workflow": ..., "images": [...]}}` as in test_input.json).
With RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID set it talks to that endpoint (RUNPOD_API_BASE may
point elsewhere); with neither it starts the local stack (ComfyUI emulator + local control plane +
one real worker) for the duration of the run; with only one it refuses, naming the other
(app.settings.runpod_credentials, the studio's rule). Exit: 0 COMPLETED, 1 the job did not
complete, 2 bad usage (a missing variable, a file that is not valid JSON, ...) or endpoint error.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import mimetypes
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.endpoint import EndpointClient, JobStatus
from app.errors import ConfigError, EndpointError, StudioError, user_message
from app.settings import runpod_credentials
from app.studio import results
from app.studio.fetch import Fetcher, FetchSettings
from app.studio.progress import describe


def read_json(path: Path) -> object:
    """The JSON in `path`; ValueError naming the file and, for bad JSON, where it goes wrong."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}"
        raise ValueError(f"{path} is not valid JSON: {e.msg} at {where}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not valid JSON: it is not UTF-8 text") from None


def load_job_input(path: Path, images: list[str]) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object (a workflow or a job)")
    inp = dict(data["input"]) if isinstance(data.get("input"), dict) else {"workflow": data}
    if "workflow" not in inp:
        raise ValueError(f"{path}: the job's input has no 'workflow'")
    extra = []
    for item in images:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise ValueError(f"--image {item!r}: expected NAME=PATH, e.g. input.png=./cat.png")
        p = Path(file)
        if not p.is_file():
            raise ValueError(f"--image {item!r}: {file} is not a file")
        mime = mimetypes.guess_type(p.name)[0] or "image/png"
        data_uri = f"data:{mime};base64," + base64.b64encode(p.read_bytes()).decode()
        extra.append({"name": name, "image": data_uri})
    if extra:
        inp["images"] = [*inp.get("images", []), *extra]
    return inp


def progress_line(
    st: JobStatus, started: float, width: int = 30, workflow: Mapping[str, Any] | None = None
) -> str:
    """A terminal bar and the studio's own status line (app/studio/progress.py's `describe`)."""
    view = describe(st.state, st.progress, time.monotonic() - started, None, workflow, st.error)
    fill = int(width * min(1.0, max(0.0, view.fraction)))
    return f"[{'#' * fill}{'-' * (width - fill)}] {100 * view.fraction:5.1f}% {view.line}"


def save_outputs(output: object, out_dir: Path) -> list[Path]:
    """The job's outputs as files in `out_dir` (the studio's rule: app/studio/results.py), next
    to, never over, the files of earlier runs there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fetcher = Fetcher(FetchSettings.from_env(os.environ))  # the studio's download guard
    saved = results.save_outputs(output, out_dir, fetcher, keep_existing=True)
    return [s.path for s in saved]


def run_job(
    client: EndpointClient, job_input: dict, out_dir: Path, poll_s: float, timeout_s: float | None
) -> int:
    started = time.monotonic()
    ref = client.run(job_input)
    print(f"job {ref.id} submitted ({ref.state})", file=sys.stderr)
    tty = sys.stderr.isatty()

    def show(st: JobStatus) -> None:
        line = progress_line(st, started, workflow=job_input.get("workflow"))
        if tty:
            print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    try:
        st = client.wait(ref.id, on_update=show, poll_s=poll_s, timeout_s=timeout_s)
    except KeyboardInterrupt:
        client.cancel(ref.id)
        print(f"\ncancelled job {ref.id}", file=sys.stderr)
        return 1
    if tty:
        print(file=sys.stderr)
    wall = time.monotonic() - started
    delay = f"{st.delay_ms / 1000:.2f} s" if st.delay_ms is not None else "-"
    execution = f"{st.execution_ms / 1000:.2f} s" if st.execution_ms is not None else "-"
    print(f"{st.state}: queue/cold start {delay}, execution {execution}, wall {wall:.2f} s, "
          f"worker {st.worker_id or '-'}")  # fmt: skip
    if not st.final:
        print(f"job {ref.id} still {st.state} after {timeout_s} s; cancelling", file=sys.stderr)
        client.cancel(ref.id)
        return 1
    if not st.ok:
        print(f"error: {st.error or 'no error text'}", file=sys.stderr)
        details = st.output.get("details") if isinstance(st.output, Mapping) else None
        for d in details or []:
            print(f"  - {d}", file=sys.stderr)
        return 1
    timings = st.output.get("timings") if isinstance(st.output, Mapping) else None
    if isinstance(timings, Mapping):
        keys = ("wait_ready_ms", "upload_ms", "queue_ms", "run_ms", "deliver_ms", "total_ms")
        print("worker: " + ", ".join(f"{k} {timings[k]}" for k in keys if k in timings))
    try:
        paths = save_outputs(st.output, out_dir)
    except (StudioError, OSError) as e:  # a refused or failed download, a full disk
        why = user_message(e) if isinstance(e, StudioError) else f"{type(e).__name__}: {e}"
        print(f"error: job {ref.id} COMPLETED, but its outputs were not saved: {why}. RunPod "
              "keeps the result for 30 minutes after the job ends", file=sys.stderr)  # fmt: skip
        return 1
    for path in paths:
        print(f"saved {path} ({path.stat().st_size} bytes)")
    return 0


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(prog="python -m app.cli")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run one workflow and save its outputs")
    r.add_argument("workflow", type=Path)
    r.add_argument("--image", action="append", default=[], metavar="NAME=PATH")
    r.add_argument("--out", type=Path, default=Path("out"))
    r.add_argument("--poll", type=float, default=1.0, help="status poll interval, s")
    r.add_argument("--timeout", type=float, default=None, help="give up (and cancel) after s")
    r.add_argument("--step-delay", type=float, default=0.05, help="local stack only")
    d = sub.add_parser("doctor", help="check the endpoint: key, health, inventory, pipelines")
    d.add_argument("--timeout", type=float, default=300.0, help="inventory job deadline, s")
    d.add_argument("--poll", type=float, default=1.0, help="status poll interval, s")
    a = p.parse_args(argv)
    if a.cmd == "doctor":
        from app.doctor import main as doctor

        return doctor(env, a.timeout, a.poll)
    try:
        remote = runpod_credentials(env) is not None
        job_input = load_job_input(a.workflow, a.image)
    except (ConfigError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        try:
            if remote:
                client = EndpointClient.from_env(env)
            else:
                from emulators.stack import LocalStack, StackConfig

                print("no RUNPOD_API_KEY/RUNPOD_ENDPOINT_ID: starting the local stack "
                      "(ComfyUI emulator, synthetic video)", file=sys.stderr)  # fmt: skip
                local = stack.enter_context(LocalStack(StackConfig(step_delay=a.step_delay)))
                client = EndpointClient(local.base_url, local.api_key)
            return run_job(client, job_input, a.out, a.poll, a.timeout)
        except EndpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
