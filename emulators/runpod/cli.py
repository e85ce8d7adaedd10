"""A local RunPod serverless endpoint: `python -m emulators.runpod --port PORT [options]`.

It serves RunPod's public API under `/v2/{endpoint_id}/` (see emulators/runpod/app.py) and runs
N real worker processes (`<worker python> -m worker.handler`) with the production environment
the runpod SDK reads, so the unmodified SDK loop takes jobs, posts progress and results, pings
and receives stop signals. `--port 0` (the default): any free port, bound by the server itself
(emulators/ports.py). Prints `LISTENING http://HOST:PORT` and `READY http://HOST:PORT/v2/ENDPOINT`
when serving.
Runs until SIGTERM/SIGINT, then stops its workers (SIGTERM, then their process groups).

Worker python: --worker-python, else env WANPOD_WORKER_PYTHON, else .venvs/worker/bin/python.
Pass-through variables for the workers: --worker-env NAME=VALUE (repeatable).
The API key clients must send: --api-key, else env WANPOD_LOCAL_API_KEY, else "local-key".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
from pathlib import Path

from aiohttp import web

from .. import ports
from .app import ControlPlane, RunpodConfig
from .workers import WorkerSpec, default_worker_python


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m emulators.runpod", description=__doc__.split("\n")[0]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 (default): a free one, announced")
    p.add_argument("--endpoint-id", default="local-ep")
    p.add_argument("--api-key", default=os.environ.get("WANPOD_LOCAL_API_KEY", "local-key"))
    p.add_argument(
        "--worker-key",
        default=None,
        help="raw key workers must send (default: random; set it to attach workers by hand)",
    )
    p.add_argument("--workers", type=int, default=1, help="max workers (0 = serve API only)")
    p.add_argument("--start-workers", type=int, default=None, help="started at boot (default all)")
    p.add_argument("--min-workers", type=int, default=0, help="kept when scaling down")
    p.add_argument("--idle-timeout", type=float, default=None, help="s idle before a worker stops")
    p.add_argument("--boot-delay", type=float, default=0.0, help="s before a wanted worker starts")
    p.add_argument("--worker-python", default=None)
    p.add_argument("--worker-module", default="worker.handler")
    p.add_argument("--worker-arg", action="append", default=[], help="extra worker argv item")
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument(
        "--worker-env-slots",
        action="append",
        default=[],
        metavar="NAME=V0,V1,...",
        help="one value per worker slot, e.g. a ComfyUI address per worker",
    )
    p.add_argument("--log-dir", type=Path, default=None, help="worker logs (default: temp dirs)")
    p.add_argument("--ping-interval-ms", type=int, default=2000)
    p.add_argument("--hold", type=float, default=20.0, help="long-poll hold, s (< 90)")
    p.add_argument("--lost-after", type=float, default=10.0, help="s without heartbeat = lost")
    p.add_argument("--lost-policy", choices=("fail", "requeue"), default="fail")
    p.add_argument("--retention", type=float, default=1800.0, help="s a /run result is kept")
    p.add_argument("--sync-retention", type=float, default=60.0)
    p.add_argument("--execution-timeout", type=int, default=600_000, help="ms, default per job")
    p.add_argument(
        "--api-latency", type=float, default=0.0, help="s each client API answer waits first"
    )
    p.add_argument("--rate-limit", type=int, default=0, help="client requests per window (0=off)")
    p.add_argument("--rate-window", type=float, default=10.0)
    p.add_argument("--webhook-retry", type=float, default=10.0, help="s between webhook tries")
    args = p.parse_args(argv)
    if not 0 < args.hold < 90:
        p.error("--hold must be between 0 and 90 seconds (the SDK gives up on a poll at 90 s)")
    if args.ping_interval_ms < 1000:
        p.error("--ping-interval-ms must be >= 1000 (the SDK's heartbeat dies below 1 s)")
    for item in args.worker_env + args.worker_env_slots:
        if "=" not in item:
            p.error(f"--worker-env {item!r}: expected NAME=VALUE")
    return args


def config_from_args(args: argparse.Namespace) -> RunpodConfig:
    spec = None
    if args.workers > 0:
        spec = WorkerSpec(
            python=args.worker_python or default_worker_python(),
            module=args.worker_module,
            args=tuple(args.worker_arg),
            env=dict(item.split("=", 1) for item in args.worker_env),
            slot_env={k: v.split(",") for k, v in (i.split("=", 1) for i in args.worker_env_slots)},
            ping_interval_ms=args.ping_interval_ms,
            log_dir=args.log_dir,
        )
    return RunpodConfig(
        endpoint_id=args.endpoint_id,
        api_key=args.api_key,
        worker_key=args.worker_key or secrets.token_hex(16),
        worker=spec,
        max_workers=args.workers,
        start_workers=args.workers if args.start_workers is None else args.start_workers,
        min_workers=args.min_workers,
        idle_timeout_s=args.idle_timeout,
        boot_delay_s=args.boot_delay,
        hold_s=args.hold,
        lost_after_s=args.lost_after,
        lost_policy=args.lost_policy,
        retention_s=args.retention,
        sync_retention_s=args.sync_retention,
        execution_timeout_ms=args.execution_timeout,
        api_latency_s=args.api_latency,
        rate_limit=args.rate_limit,
        rate_window_s=args.rate_window,
        webhook_retry_s=args.webhook_retry,
    )


async def serve(cfg: RunpodConfig, host: str, port: int) -> None:
    sock = ports.bind(host, port)  # bound first: the workers started at set-up get its URL
    cfg.base_url = ports.url_of(sock)
    plane = ControlPlane(cfg)
    runner = web.AppRunner(plane.app(), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    ports.announce(sock)
    print(f"READY {cfg.base_url}/v2/{cfg.endpoint_id}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    asyncio.run(serve(config_from_args(args), args.host, args.port))
    return 0
