"""The RunPod handler: validate → wait for ComfyUI → upload → queue → monitor → collect →
deliver → clean up → return, in worker-comfyui's result shape plus additive fields.

`handler(job)` is the `async def` the runpod SDK calls (settings from the environment, read once).
`make_handler(settings)` builds the same handler for explicit settings (tests, bench).
Cancellation (RunPod /cancel or timeout → `asyncio.CancelledError`) and the handler-side deadline
(JOB_TIMEOUT_S) interrupt ComfyUI for this prompt and delete it from the queue. Every failure
returns `{"error": "<string>", "details": [...]}` via `errors.to_result`.

`python -m worker.handler` starts `runpod.serverless.start(...)` with logging set so that no
base64 payload or key reaches a log line (the SDK logs whole jobs at DEBUG, and in local
`--test_input` mode the whole result at INFO).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import aiohttp

from .comfy import ComfyClient, format_node_errors
from .delivery import Delivery, locate
from .errors import ConfigError, JobTimeout, OutputError, WorkerError, to_result
from .inputs import JobRequest, parse_job_input
from .monitor import Watcher
from .outputs import OutputFile, collect
from .progress import ProgressReporter
from .settings import Settings

log = logging.getLogger("worker")
Handler = Callable[[dict], Awaitable[dict]]


def make_handler(settings: Settings, delivery: Delivery | None = None) -> Handler:
    delivery = delivery or Delivery(settings)

    async def handler(job: dict) -> dict:
        return await run_job(job, settings, delivery)

    return handler


_default: Handler | None = None


async def handler(job: dict) -> dict:
    """The RunPod entry point (settings from os.environ, built on first use)."""
    global _default
    if _default is None:
        try:
            _default = make_handler(Settings.from_env(os.environ))
        except ConfigError as e:
            return to_result(e)
    return await _default(job)


async def run_job(job: dict, settings: Settings, delivery: Delivery) -> dict:
    job_id = str(job.get("id") or "local")
    t0 = time.monotonic()
    progress = ProgressReporter(
        job, settings.progress_enabled, settings.progress_interval_s, settings.progress_quiet_s
    )
    try:
        request = parse_job_input(job.get("input"), settings)
        timeout = settings.job_timeout_s or None
        try:
            async with asyncio.timeout(timeout):
                result = await _run(job_id, request, settings, delivery, progress, t0)
        except TimeoutError:
            raise JobTimeout(
                f"no result after {settings.job_timeout_s:g} s (JOB_TIMEOUT_S); "
                "ComfyUI was interrupted and the prompt removed from its queue"
            ) from None
    except WorkerError as e:
        progress.finish()
        log.warning("job %s failed: %s", job_id, e)
        await progress.quiet()
        return to_result(e, settings.secrets())
    except Exception as e:  # a bug: still one readable string, never a traceback
        progress.finish()
        log.exception("job %s: unexpected error", job_id)
        await progress.quiet()
        return to_result(e, settings.secrets())
    await progress.quiet()
    if settings.refresh_worker:
        result["refresh_worker"] = True
    return result


async def _run(
    job_id: str,
    req: JobRequest,
    s: Settings,
    delivery: Delivery,
    progress: ProgressReporter,
    t0: float,
) -> dict:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = ComfyClient(s, session)
        progress.update(stage="starting", nodes_total=len(req.workflow))
        info = await client.wait_ready()
        t_ready = time.monotonic()
        uploaded: list[str] = []
        try:
            if req.images:
                progress.update(stage="uploading")
                for image in req.images:
                    uploaded.append(await client.upload(image))
            t_up = time.monotonic()
            return await _queue_and_finish(
                job_id, req, s, delivery, progress, client, info, uploaded, (t0, t_ready, t_up)
            )
        finally:
            if s.cleanup:
                _delete_files(s.comfy_input_dir, uploaded)


async def _queue_and_finish(job_id, req, s, delivery, progress, client, info, uploaded, marks):
    t0, t_ready, t_up = marks
    client_id = uuid.uuid4().hex
    watcher_ws = None
    extra = {"api_key_comfy_org": req.comfy_org_api_key.value} if req.comfy_org_api_key else None
    watcher = None
    prompt_id = None
    files: list[OutputFile] = []
    try:
        # Connect before queueing so no message for our prompt is missed.
        queued_ws = await client.session.ws_connect(
            f"{s.comfy_ws}/ws?clientId={client_id}", max_msg_size=0
        )
        watcher_ws = queued_ws
        queued = await client.queue(req.workflow, client_id, extra)
        prompt_id = queued.prompt_id
        t_queued = time.monotonic()
        problems: list[str] = []
        if queued.node_errors:
            lines = format_node_errors(queued.node_errors)
            problems.append(
                "ComfyUI accepted the workflow but dropped invalid nodes (their outputs will be "
                "missing): " + "; ".join(lines)
            )
            log.warning("job %s: %s", job_id, problems[-1])
        progress.update(stage="queued")
        watcher = Watcher(client, s, prompt_id, client_id, req.workflow, progress)
        watcher_ws = None
        end = await watcher.watch(queued_ws)
        t_end = time.monotonic()
        files = collect(end.outputs)
        located = locate(files, s)
        if s.s3 is not None and files:
            progress.update(stage="delivering", force=True)
        progress.finish()
        try:
            items = await delivery.deliver(job_id, located, client)
        except OutputError as e:
            if end.cached:
                e.details.append(
                    "ComfyUI served this output from its cache (identical workflow re-run) and "
                    "the file was already removed; change the seed or set CLEANUP_JOB_FILES=false"
                )
            raise
        t_done = time.monotonic()
    except asyncio.CancelledError:
        if prompt_id:
            await _stop_prompt(client, prompt_id, job_id)
        raise
    except WorkerError:
        if prompt_id:
            await _stop_prompt(client, prompt_id, job_id, quiet=True)
        raise
    finally:
        if watcher_ws is not None:
            await watcher_ws.close()
        if prompt_id and s.cleanup:
            _delete_files(s.comfy_output_dir, [_rel(f) for f in files if f.type == "output"])
            with contextlib.suppress(Exception):
                await asyncio.shield(client.delete_history(prompt_id))

    result: dict = {
        "images": items,
        "comfyui": {
            "prompt_id": prompt_id,
            "version": (info.get("system") or {}).get("comfyui_version"),
        },
        "timings": _timings(end, t0, t_ready, t_up, t_queued, t_end, t_done),
    }
    if not items:
        result["status"] = "success_no_images"
    if problems:
        result["errors"] = problems
    log.info(
        "job %s done: %s in %.2f s",
        job_id,
        ", ".join(f"{i['filename']} ({i['mime']}, {i['size']} B, {i['type']})" for i in items)
        or "no outputs",
        t_done - t0,
    )
    return result


def _timings(end, t0, t_ready, t_up, t_queued, t_end, t_done) -> dict:
    def ms(a: float, b: float) -> float:
        return round((b - a) * 1000, 2)

    out = {
        "wait_ready_ms": ms(t0, t_ready),
        "upload_ms": ms(t_ready, t_up),
        "queue_ms": ms(t_up, t_queued),
        "run_ms": ms(t_queued, t_end),
        "deliver_ms": ms(t_end, t_done),
        "total_ms": ms(t0, t_done),
        "execution_start_ts": end.start_ts_ms,
        "execution_success_ts": end.success_ts_ms,
        "end_detected_ts": round(end.detected_at * 1000, 3),
        "ws_reconnects": end.reconnects,
        "end_seen_via": end.via,
    }
    if end.start_ts_ms and end.success_ts_ms:
        out["execution_ms"] = end.success_ts_ms - end.start_ts_ms
    if end.success_ts_ms:
        out["end_detect_ms"] = round(end.detected_at * 1000 - end.success_ts_ms, 3)
    return out


async def _stop_prompt(client: ComfyClient, prompt_id: str, job_id: str, quiet=False) -> None:
    """Interrupt the prompt if it runs and remove it from the queue (best effort, bounded)."""
    try:
        async with asyncio.timeout(5):
            await client.interrupt(prompt_id)
            await client.delete_from_queue(prompt_id)
        if not quiet:
            log.info(
                "job %s: interrupted prompt %s and removed it from the queue", job_id, prompt_id
            )
    except (Exception, TimeoutError) as e:
        log.warning(
            "job %s: could not interrupt prompt %s: %s", job_id, prompt_id, type(e).__name__
        )


def _rel(f: OutputFile) -> str:
    return f"{f.subfolder}/{f.filename}" if f.subfolder else f.filename


def _delete_files(root: str, rel_paths: list[str]) -> None:
    if not root:
        return
    base = Path(root).resolve()
    for rel in rel_paths:
        p = (base / rel).resolve()
        if base not in p.parents:
            continue
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not delete %s: %s", p, e.strerror)


# -- process entry point -------------------------------------------------------------------------

_SDK_LEVELS = ["NOTSET", "TRACE", "DEBUG", "INFO", "WARN", "ERROR"]


def sdk_log_level(env: Mapping[str, str], argv: list[str]) -> str:
    """The runpod SDK's log level, clamped so it never logs payloads: at least INFO in
    production (DEBUG logs every job input and output), at least WARN in local test mode (the
    SDK logs the whole result at INFO there)."""
    wanted = (env.get("RUNPOD_LOG_LEVEL") or env.get("RUNPOD_DEBUG_LEVEL") or "INFO").upper()
    if wanted not in _SDK_LEVELS:
        wanted = "INFO"
    local = "--test_input" in " ".join(argv) or not env.get("RUNPOD_WEBHOOK_GET_JOB")
    floor = "WARN" if local else "INFO"
    return max(wanted, floor, key=_SDK_LEVELS.index)


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
        force=True,
    )
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "aiohttp", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as e:
        print(f"wanpod worker: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings)
    level = sdk_log_level(os.environ, sys.argv)
    os.environ["RUNPOD_LOG_LEVEL"] = level
    for i, arg in enumerate(sys.argv):
        if arg == "--rp_log_level" and i + 1 < len(sys.argv):
            sys.argv[i + 1] = level
        elif arg.startswith("--rp_log_level="):
            sys.argv[i] = f"--rp_log_level={level}"
    import runpod
    from runpod.serverless.modules.rp_logger import RunPodLogger

    RunPodLogger().level = level
    try:
        delivery = Delivery(settings)
    except Exception as e:
        print(f"wanpod worker: S3 client could not be created: {type(e).__name__}", file=sys.stderr)
        raise SystemExit(2) from None
    log.info(
        "worker ready: ComfyUI at %s, delivery %s, job timeout %s s",
        settings.comfy_host,
        f"S3 bucket {settings.s3.bucket}" if settings.s3 else "base64",
        settings.job_timeout_s or "none",
    )
    global _default
    _default = make_handler(settings, delivery)
    runpod.serverless.start({"handler": handler, "refresh_worker": settings.refresh_worker})


if __name__ == "__main__":
    main()
