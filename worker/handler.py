"""The RunPod handler: validate → wait for ComfyUI → upload → queue → monitor → collect →
deliver → clean up → return, in worker-comfyui's result shape plus additive fields.

`handler(job)` is the `async def` the runpod SDK calls (settings from the environment, read once).
`make_handler(settings)` builds the same handler for explicit settings (tests, bench).
`{"inventory": true}` answers what ComfyUI has (worker/inventory.py) instead of running a workflow;
`{"provision": {...}}` downloads model files onto the volume (worker/provision.py).
An identical re-run that ComfyUI serves from its cache after CLEANUP_JOB_FILES removed the
earlier job's files is queued once more with this job's own output file names
(`fresh_output_names`): only the save nodes run again, the rest stays cached.
Clean-up (CLEANUP_JOB_FILES, worker/cleanup.py) runs after every job, whatever its end: the
uploads, every prompt's created files and history entry; a prompt still running then (an
uninterruptible SaveVideo encode) is swept by a later job once it has ended.
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
import dataclasses
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping

import aiohttp

from .cleanup import Footprint, Sweeper, sweeper_for
from .comfy import ComfyClient, format_node_errors
from .delivery import ITEM_OVERHEAD, Delivery, locate
from .errors import (
    ConfigError,
    JobTimeout,
    OutputError,
    ScrubbingFormatter,
    UnreadableModel,
    WorkerError,
    WorkflowRejected,
    job_secrets,
    to_result,
)
from .fetch import ImageFetcher
from .inputs import ImageURL, JobRequest, job_upload_folder, parse_job_input, rewrite_image_refs
from .inventory import collect_inventory, model_folder, wants_inventory
from .monitor import JobEnd, Watcher
from .outputs import collect, websocket_files
from .progress import ProgressReporter
from .provision import run_job as run_provision
from .provision import wants_provision
from .settings import Settings

log = logging.getLogger("worker")
Handler = Callable[[dict], Awaitable[dict]]


def make_handler(settings: Settings, delivery: Delivery | None = None) -> Handler:
    delivery = delivery or Delivery(settings)
    sweeper = sweeper_for(settings)  # prompts of earlier jobs still to clean up

    async def handler(job: dict) -> dict:
        return await run_job(job, settings, delivery, sweeper)

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


async def run_job(
    job: dict, settings: Settings, delivery: Delivery, sweeper: Sweeper | None = None
) -> dict:
    job_id = str(job.get("id") or "local")
    t0 = time.monotonic()
    progress = ProgressReporter(
        job, settings.progress_enabled, settings.progress_interval_s, settings.progress_quiet_s
    )
    secrets = settings.secrets()
    scrubbing = contextlib.ExitStack()  # log lines without the job's own key while it runs
    try:
        inventory = wants_inventory(job.get("input"))
        provision = None if inventory else wants_provision(job.get("input"))
        request = None if inventory or provision else parse_job_input(job.get("input"), settings)
        if request is not None and request.comfy_org_api_key.value not in secrets:
            secrets = [*secrets, request.comfy_org_api_key.value]
            scrubbing.enter_context(job_secrets(request.comfy_org_api_key.value))
        timeout = settings.job_timeout_s or None
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                if provision is not None:
                    result = await run_provision(provision, job, settings)
                elif request is None:
                    result = await _inventory(settings)
                else:
                    result = await _run(
                        job_id,
                        request,
                        settings,
                        delivery,
                        progress,
                        t0,
                        sweeper or sweeper_for(settings),
                        deadline,
                    )
        except TimeoutError:
            if not deadline.expired():  # a network timeout inside, not our deadline
                raise
            raise JobTimeout(
                f"no result after {settings.job_timeout_s:g} s (JOB_TIMEOUT_S); "
                "ComfyUI was interrupted and the prompt removed from its queue"
            ) from None
    except asyncio.CancelledError:  # RunPod's /cancel: the SDK cancels this task
        progress.abandon()  # its sender thread (and session) would wait for posts forever
        raise
    except WorkerError as e:
        progress.finish()
        result = to_result(e, secrets)
        log.warning("job %s failed: %s", job_id, result["error"])
        await progress.quiet()
        return result
    except Exception as e:  # a bug: still one readable string, never a traceback
        progress.finish()
        log.exception("job %s: unexpected error", job_id)
        await progress.quiet()
        return to_result(e, secrets)
    finally:
        scrubbing.close()
    await progress.quiet()
    if settings.refresh_worker:
        result["refresh_worker"] = True
    return result


async def _inventory(s: Settings) -> dict:
    """The `{"inventory": true}` job: models, node classes and version; no workflow runs."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = ComfyClient(s, session)
        await client.wait_ready()
        return await collect_inventory(client)


async def _run(
    job_id: str,
    req: JobRequest,
    s: Settings,
    delivery: Delivery,
    progress: ProgressReporter,
    t0: float,
    sweeper: Sweeper,
    deadline: asyncio.Timeout | None = None,
) -> dict:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        run = _JobRun(job_id, req, s, delivery, progress, ComfyClient(s, session), sweeper)
        run.deadline = deadline
        run.marks["start"] = t0
        return await run.execute()


class _JobRun:
    """One job's steps against ComfyUI, with the state its clean-up needs."""

    def __init__(self, job_id, req, s, delivery, progress, client, sweeper) -> None:
        self.job_id: str = job_id
        self.req: JobRequest = req
        self.s: Settings = s
        self.delivery: Delivery = delivery
        self.progress: ProgressReporter = progress
        self.client: ComfyClient = client
        self.sweeper: Sweeper = sweeper
        self.marks: dict[str, float] = {}
        self.footprint = Footprint(s, client)  # what clean-up removes, whatever the end
        self.prompt_id: str | None = None
        self.problems: list[str] = []
        self.renamed = False  # outputs re-made under this job's own names (cached re-run)
        self.deadline: asyncio.Timeout | None = None  # JOB_TIMEOUT_S's, until the delivery

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    async def execute(self) -> dict:
        self.progress.update(stage="starting", nodes_total=len(self.req.workflow))
        info = await self.client.wait_ready()
        self.mark("ready")
        try:
            if self.s.cleanup and self.sweeper.pending:
                await self.sweeper.sweep(self.client, self.s)
            if self.req.images:
                self.progress.update(stage="uploading")
                await self._upload()
            self.mark("uploaded")
            try:
                end, items = await self._queue_and_follow()
            except asyncio.CancelledError:
                if self.prompt_id:
                    await _stop_prompt(self.client, self.prompt_id, self.job_id)
                raise
            except WorkerError as e:
                if self.prompt_id:
                    await _stop_prompt(self.client, self.prompt_id, self.job_id, quiet=True)
                if isinstance(e, UnreadableModel):
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(5):
                            e.locate(await model_folder(self.client, e.filename))
                raise
            else:  # delivered: the clean-up after it (bounded on its own) is not the job's run,
                if self.deadline is not None and not self.deadline.expired():  # and a deadline
                    self.deadline.reschedule(None)  # passing meanwhile is no time-out
        finally:
            await self._cleanup()
        result: dict = {
            "images": items,
            "comfyui": {
                "prompt_id": self.prompt_id,
                "version": (info.get("system") or {}).get("comfyui_version"),
            },
            "timings": _timings(end, self.marks),
        }
        if not items:
            result["status"] = "success_no_images"
        if self.problems:
            result["errors"] = self.problems
        if self.req.warnings:
            result["warnings"] = list(self.req.warnings)
        log.info(
            "job %s done: %s in %.2f s",
            self.job_id,
            ", ".join(f"{i['filename']} ({i['mime']}, {i['size']} B, {i['type']})" for i in items)
            or "no outputs",
            self.marks["done"] - self.marks["start"],
        )
        return result

    async def _upload(self) -> None:
        """Upload into this job's own input folder and point the workflow at the uploads, so
        no file the job did not create is overwritten (or later deleted by the clean-up)."""
        folder = job_upload_folder(f"{self.job_id}-{uuid.uuid4().hex[:8]}")
        names: dict[str, str] = {}
        for image in self.req.images:
            if isinstance(image, ImageURL):  # downloaded and checked here (worker/fetch.py)
                image = await ImageFetcher(self.s).fetch_async(image)
            names[image.name] = await self.client.upload(image, folder)
            self.footprint.uploaded.append(names[image.name])
        workflow = rewrite_image_refs(self.req.workflow, names)
        self.req = dataclasses.replace(self.req, workflow=workflow)

    async def _queue_and_follow(self) -> tuple[JobEnd, list[dict]]:
        client, s = self.client, self.s
        key = self.req.comfy_org_api_key
        extra = {"api_key_comfy_org": key.value} if key else None
        watcher = Watcher(client, s, "", uuid.uuid4().hex, self.req.workflow, self.progress)
        ws = await watcher.open()  # before queueing, so no message for our prompt is missed
        # the prompt's id is ours before /prompt answers: a cancel (or the deadline) that lands
        # while it is answered still stops the prompt ComfyUI may have queued already
        self.prompt_id = watcher.prompt_id = str(uuid.uuid4())
        try:
            queued = await client.queue(self.req.workflow, watcher.client_id, extra, self.prompt_id)
        except BaseException as e:
            if isinstance(e, WorkflowRejected):  # refused: nothing was queued
                self.prompt_id = None
            await ws.close()
            raise
        self.prompt_id = watcher.prompt_id = queued.prompt_id
        self.footprint.track(queued.prompt_id, watcher.end)
        self.mark("queued")
        if queued.node_errors:
            self.problems.append(
                "ComfyUI accepted the workflow but dropped invalid nodes (their outputs will be "
                "missing): " + "; ".join(format_node_errors(queued.node_errors))
            )
            log.warning("job %s: %s", self.job_id, self.problems[-1])
        # the position comes from the `status` ComfyUI broadcasts for our put (queue_remaining):
        # no GET /queue, whose answer carries every queued workflow
        self.progress.update(stage="queued")
        end = await watcher.watch(ws)
        self.mark("ended")
        if self.s.cleanup:  # the history entry is removed while the outputs are delivered
            self.footprint.retire_soon(queued.prompt_id)
            await asyncio.sleep(0)  # let it send its request before the (blocking) encoding
        files = collect(end.outputs)
        located, refused = locate(files, s)
        for r in refused:
            if r.message() not in self.problems:
                self.problems.append(r.message())
                log.warning("job %s: %s", self.job_id, r.message())
        if s.s3 is not None and files:
            self.progress.update(stage="delivering", force=True)
        self.progress.finish()
        try:
            items = await self.delivery.deliver(self.job_id, located, client)
            if end.ws_images:  # SaveImageWebsocket: the images came as websocket frames
                used = sum(len(i["data"]) + ITEM_OVERHEAD for i in items if i["type"] == "base64")
                blobs = websocket_files([(i.node_id, i.mime, i.data) for i in end.ws_images])
                items += await self.delivery.deliver_blobs(self.job_id, blobs, used)
        except OutputError as e:
            if end.cached and s.cleanup and not self.renamed:
                # an identical re-run: ComfyUI answered from its cache with the files an earlier
                # job already removed. Run the save nodes again under this job's own names.
                log.info(
                    "job %s: ComfyUI served the outputs from its cache but an earlier job's "
                    "clean-up removed the files; saving them again under new names",
                    self.job_id,
                )
                self.renamed = True
                self.req = dataclasses.replace(
                    self.req, workflow=fresh_output_names(self.req.workflow, self.job_id)
                )
                return await self._queue_and_follow()
            if end.cached:
                e.details.append(
                    "ComfyUI served this output from its cache (identical workflow re-run) and "
                    "the file was already removed; change the seed or set CLEANUP_JOB_FILES=false"
                )
            raise
        self.mark("done")
        return end, items

    async def _cleanup(self) -> None:
        """Remove the job's uploads, outputs and history entries (CLEANUP_JOB_FILES)."""
        if self.s.cleanup:
            await self.footprint.remove(self.sweeper)


def fresh_output_names(workflow: Mapping[str, dict], job_id: str) -> dict[str, dict]:
    """The workflow with every save node's `filename_prefix` made unique to this job."""
    tag = "".join(c for c in job_id if c.isalnum())[-8:] or uuid.uuid4().hex[:8]
    out: dict[str, dict] = {}
    for nid, node in workflow.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        prefix = inputs.get("filename_prefix") if isinstance(inputs, Mapping) else None
        if isinstance(prefix, str):
            node = {**node, "inputs": {**inputs, "filename_prefix": f"{prefix}_{tag}"}}
        out[nid] = node
    return out


def _timings(end: JobEnd, m: dict[str, float]) -> dict:
    def ms(a: str, b: str) -> float:
        return round((m[b] - m[a]) * 1000, 2)

    out = {
        "wait_ready_ms": ms("start", "ready"),
        "upload_ms": ms("ready", "uploaded"),
        "queue_ms": ms("uploaded", "queued"),
        "run_ms": ms("queued", "ended"),
        "deliver_ms": ms("ended", "done"),
        "total_ms": ms("start", "done"),
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


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "aiohttp", "asyncio")  # WARNING+


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT, stream=sys.stdout, force=True)
    for handler in logging.getLogger().handlers:  # no secret in any line, tracebacks included
        handler.setFormatter(ScrubbingFormatter(LOG_FORMAT, settings.secrets()))
    for noisy in NOISY_LOGGERS:
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
