"""The execution loop (ComfyUI's prompt_worker + PromptExecutor).

One asyncio task takes prompts from the PromptQueue one at a time (lowest `number` first) and
produces the recorded message sequence:
`status` (queue.get) → `execution_start` → `execution_cached` → per node
[`progress_state` running → `executing` → `progress`… → `executed` → `progress_state` finished] →
`execution_success` | `execution_error` | `execution_interrupted` → history written → `status` →
`executing {node: null}`. Messages without `broadcast` go only to the prompt's client_id (none at
all without one); `status` and `execution_interrupted` (no client_id) go to everybody;
`progress_state`/`progress` use the client_id as target, so without one they are broadcast, as in
the 0.3.64 source.

The interrupt flag is cleared when a prompt starts, checked after each node's `executing` and at
every progress step. The output cache is ComfyUI's classic one: keyed by the node's input
signature (its inputs and its ancestors'), keeping only the last prompt's nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import struct
import time
from typing import Any

from .config import EmulatorConfig
from .graph import ExecutionList, is_link
from .hub import Hub
from .media import preview_jpeg
from .nodes import Interrupted, NodeContext, NodeFailure, run_node
from .prompt_queue import PromptQueue, QueueItem
from .schema import INPUT_FILE_COMBOS, Schema

log = logging.getLogger("emulators.comfyui")

HOLD_POLL_S = 0.01  # how often a node held by hold_at_node looks whether the knob moved on
TRACEBACK_HEAD = [
    '  File "/comfyui/execution.py", line 496, in execute\n    output_data, output_ui, '
    "has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, "
    "input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, "
    "hidden_inputs=hidden_inputs)\n",
    '  File "/comfyui/execution.py", line 315, in get_output_data\n    return_values = await '
    "_async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, obj.FUNCTION, "
    "allow_interrupt=True, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, "
    "hidden_inputs=hidden_inputs)\n",
    '  File "/comfyui/execution.py", line 289, in _async_map_node_over_list\n    await '
    "process_inputs(input_dict, i)\n",
    '  File "/comfyui/execution.py", line 277, in process_inputs\n    result = f(**inputs)\n',
]
SAFETENSORS_ERROR = (
    "safetensors._safetensors_rust.SafetensorError",
    "Error while deserializing header: header too small",
)


def now_ms() -> int:
    return int(time.time() * 1000)


class Executor:
    def __init__(self, config: EmulatorConfig, schema: Schema, hub: Hub, queue: PromptQueue):
        self.config = config
        self.schema = schema
        self.hub = hub
        self.queue = queue
        self.interrupted = False
        self.interrupted_prompts = 0  # prompts that ended interrupted (GET /emulator/stats)
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.outputs_cache: dict[str, tuple[Any, ...]] = {}
        self.ui_cache: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_gc = -1e9

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def interrupt(self) -> None:
        self.interrupted = True

    def free(self) -> None:
        self.outputs_cache.clear()
        self.ui_cache.clear()

    async def _loop(self) -> None:
        while True:
            item, i = await self.queue.get()
            try:
                result, success, messages = await self.execute(item)
            except Exception:  # an emulator bug must not kill the queue
                log.exception("executing %s failed", item.prompt_id)
                result, success, messages = {"outputs": {}, "meta": {}}, False, []
            await self._gc_stall()
            self.queue.task_done(
                i,
                result,
                {
                    "status_str": "success" if success else "error",
                    "completed": success,
                    "messages": messages,
                },
            )
            if self.client_id is not None:
                self.hub.send(
                    "executing", {"node": None, "prompt_id": item.prompt_id}, self.client_id
                )

    async def _gc_stall(self) -> None:
        """ComfyUI's gc.collect() after a job (at most every 10 s) blocks the whole process."""
        if not self.config.gc_stall or time.monotonic() - self._last_gc < 10.0:
            return
        await self.hub.drain()  # what the job sent so far is out (execution_success...)
        time.sleep(self.config.gc_stall)  # deliberately blocks the event loop, like the GIL does
        self._last_gc = time.monotonic()

    # -- one prompt -------------------------------------------------------------------------

    def _signature(self, prompt: dict[str, Any], node_id: str, memo: dict[str, str]) -> str:
        if node_id in memo:
            return memo[node_id]
        memo[node_id] = "cycle:" + node_id
        node = prompt[node_id]
        parts: list[Any] = [node["class_type"]]
        for key in sorted(node.get("inputs", {})):
            v = node["inputs"][key]
            if is_link(v) and v[0] in prompt:
                parts.append((key, self._signature(prompt, v[0], memo), v[1]))
            else:
                parts.append((key, v))
        name = INPUT_FILE_COMBOS.get(node["class_type"])
        if name and isinstance(node.get("inputs", {}).get(name), str):
            p = self.config.input_directory / node["inputs"][name]
            try:  # LoadImage's IS_CHANGED: the file's hash
                parts.append(hashlib.sha256(p.read_bytes()).hexdigest())
            except OSError:
                parts.append(None)
        sig = hashlib.sha256(json.dumps(parts, default=repr).encode()).hexdigest()
        memo[node_id] = sig
        return sig

    async def execute(self, item: QueueItem) -> tuple[dict[str, Any], bool, list[Any]]:
        prompt, prompt_id, extra = item.prompt, item.prompt_id, item.extra_data
        self.interrupted = False
        self.client_id = extra.get("client_id")
        messages: list[Any] = []

        def add_message(event: str, data: dict[str, Any], broadcast: bool) -> None:
            data = {**data, "timestamp": now_ms()}
            messages.append([event, data])
            if self.client_id is not None or broadcast:
                self.hub.send(event, data, self.client_id)

        add_message("execution_start", {"prompt_id": prompt_id}, False)
        memo: dict[str, str] = {}
        sigs = {nid: self._signature(prompt, nid, memo) for nid in prompt}
        if not self.config.cache:
            self.free()
        live = set(sigs.values())
        for k in [k for k in self.outputs_cache if k not in live]:
            del self.outputs_cache[k]
        for k in [k for k in self.ui_cache if k not in live]:
            del self.ui_cache[k]
        cached = [nid for nid in prompt if sigs[nid] in self.outputs_cache]
        add_message("execution_cached", {"nodes": cached, "prompt_id": prompt_id}, False)

        progress: dict[str, dict[str, Any]] = {}

        def send_progress_state() -> None:
            nodes = {
                nid: {
                    "value": st["value"],
                    "max": st["max"],
                    "state": st["state"],
                    "node_id": nid,
                    "prompt_id": prompt_id,
                    "display_node_id": nid,
                    "parent_node_id": None,
                    "real_node_id": nid,
                }
                for nid, st in progress.items()
            }
            self.hub.send(
                "progress_state", {"prompt_id": prompt_id, "nodes": nodes}, self.client_id
            )

        def finish(nid: str) -> None:
            st = progress.setdefault(nid, {"value": 0, "max": 1, "state": "pending"})
            st["state"], st["value"] = "finished", st["max"]
            send_progress_state()

        executed: list[str] = []
        current_outputs = list(prompt)
        elist = ExecutionList(
            prompt, self.schema.is_output, lambda nid: sigs.get(nid) in self.outputs_cache
        )
        elist.add_outputs(item.outputs)
        failure: tuple[str, str, Any] | None = None  # (kind, node_id, detail)
        while not elist.is_empty():
            nid = elist.next_node()
            if nid is None:
                failure = (
                    "error",
                    elist.cycle_nodes()[0],
                    NodeFailure("graph.DependencyCycleError", "Dependency cycle detected"),
                )
                break
            node = prompt[nid]
            class_type = node["class_type"]
            sig = sigs[nid]
            if sig in self.outputs_cache:
                if self.client_id is not None:
                    ui = self.ui_cache.get(sig) or {}
                    self.hub.send(
                        "executed",
                        {
                            "node": nid,
                            "display_node": nid,
                            "output": ui.get("output"),
                            "prompt_id": prompt_id,
                        },
                        self.client_id,
                    )
                finish(nid)
                elist.complete(nid)
                continue
            progress[nid] = {"value": 0.0, "max": 1.0, "state": "running"}
            send_progress_state()
            inputs = self._resolve(node, sigs, prompt)
            if self.client_id is not None:
                self.last_node_id = nid
                self.hub.send(
                    "executing",
                    {"node": nid, "display_node": nid, "prompt_id": prompt_id},
                    self.client_id,
                )
            try:
                if self.interrupted:
                    raise Interrupted()
                if self.config.crash_at_node is not None and nid == self.config.crash_at_node:
                    await self.hub.drain()
                    log.warning("crash_at_node=%s: exiting the process", nid)
                    os._exit(1)
                if self.config.error_at_node is not None and nid == self.config.error_at_node:
                    raise (
                        NodeFailure(*SAFETENSORS_ERROR)
                        if "Loader" in class_type
                        else NodeFailure(
                            "RuntimeError",
                            f"emulated failure in node {nid} (fault knob error_at_node)",
                        )
                    )
                while self.config.hold_at_node is not None and nid == self.config.hold_at_node:
                    if self.interrupted:
                        raise Interrupted()
                    await asyncio.sleep(HOLD_POLL_S)

                async def report(value: int, total: int, latent: Any, _nid: str = nid) -> None:
                    if self.interrupted:
                        raise Interrupted()
                    progress[_nid].update(value=value, max=total)
                    send_progress_state()
                    image, fmt = None, "JPEG"
                    if isinstance(latent, tuple):  # a node's own image: ("PNG", bytes)
                        fmt, image = latent
                    elif latent is not None and self.config.preview_method not in (None, "none"):
                        image = await asyncio.to_thread(preview_jpeg, latent, value)
                    with_meta = self.hub.supports(self.client_id, "supports_preview_metadata")
                    if image is not None and with_meta:
                        self.hub.send_binary(
                            4, preview_with_metadata(image, _nid, prompt_id, fmt), self.client_id
                        )
                    self.hub.send(
                        "progress",
                        {"value": value, "max": total, "prompt_id": prompt_id, "node": _nid},
                        self.client_id,
                    )
                    if image is not None and not with_meta:
                        # PREVIEW_IMAGE: [uint32 1][uint32 1 JPEG | 2 PNG][bytes] (send_image)
                        kind = struct.pack(">I", 2 if fmt == "PNG" else 1)
                        self.hub.send_binary(1, kind + image, self.client_id)

                ctx = NodeContext(
                    node_id=nid,
                    class_type=class_type,
                    inputs=inputs,
                    output_types=self.schema.outputs(class_type),
                    prompt=prompt,
                    extra_data=extra,
                    input_directory=self.config.input_directory,
                    output_directory=self.config.output_directory,
                    temp_directory=self.config.temp_directory,
                    step_delay=self.config.step_delay,
                    node_delay=self.config.node_delay,
                    video_max_side=self.config.video_max_side,
                    output_bytes=self.config.output_bytes,
                    progress=report,
                    encode_delay=self.config.encode_delay,
                )
                outputs, ui = await run_node(ctx)
                if ui and self.config.extra_output:  # a file it did not write (fault knob)
                    key = "audio" if "audio" in ui else "images"
                    ui = {**ui, key: [*ui.get(key, []), dict(self.config.extra_output)]}
            except Interrupted:
                failure = ("interrupted", nid, None)
                self.interrupted_prompts += 1
                break
            except NodeFailure as nf:
                failure = ("error", nid, (nf, inputs))
                break
            except Exception as ex:  # unexpected input values for a simulated node
                t = type(ex)
                name = (
                    t.__qualname__
                    if t.__module__ == "builtins"
                    else f"{t.__module__}.{t.__qualname__}"
                )
                failure = ("error", nid, (NodeFailure(name, str(ex)), inputs))
                break
            if ui:
                self.ui_cache[sig] = {
                    "meta": {
                        "node_id": nid,
                        "display_node": nid,
                        "parent_node": None,
                        "real_node_id": nid,
                    },
                    "output": ui,
                }
                if self.client_id is not None:
                    self.hub.send(
                        "executed",
                        {"node": nid, "display_node": nid, "output": ui, "prompt_id": prompt_id},
                        self.client_id,
                    )
            self.outputs_cache[sig] = outputs
            finish(nid)
            executed.append(nid)
            elist.complete(nid)

        success = failure is None
        if failure is None:
            add_message("execution_success", {"prompt_id": prompt_id}, False)
        else:
            kind, nid, detail = failure
            base = {
                "prompt_id": prompt_id,
                "node_id": nid,
                "node_type": prompt[nid]["class_type"],
                "executed": list(executed),
            }
            if kind == "interrupted":
                add_message("execution_interrupted", base, True)
            else:
                nf, inputs = detail if isinstance(detail, tuple) else (detail, {})
                add_message(
                    "execution_error",
                    {
                        **base,
                        "exception_message": f"{nf.message}\n",
                        "exception_type": nf.exception_type,
                        "traceback": TRACEBACK_HEAD + nf.traceback,
                        "current_inputs": self._format_inputs(prompt[nid], inputs),
                        "current_outputs": current_outputs,
                    },
                    False,
                )
        self.last_node_id = None
        outputs, meta = {}, {}
        for nid in prompt:
            ui = self.ui_cache.get(sigs[nid])
            if ui is not None:
                outputs[nid], meta[nid] = ui["output"], ui["meta"]
        return {"outputs": outputs, "meta": meta}, success, messages

    def _resolve(
        self, node: dict[str, Any], sigs: dict[str, str], prompt: dict[str, Any]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in node.get("inputs", {}).items():
            if is_link(v):
                vals = self.outputs_cache.get(sigs.get(v[0], ""))
                out[k] = vals[v[1]] if vals is not None and v[1] < len(vals) else None
            else:
                out[k] = v
        return out

    def _format_inputs(self, node: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        specs = self.schema.inputs(node["class_type"])
        res: dict[str, Any] = {}
        for k in specs:
            if k not in inputs:
                continue
            v = inputs[k]
            res[k] = [v if v is None or isinstance(v, int | float | bool | str) else repr(v)]
        return res


def preview_with_metadata(image: bytes, node_id: str, prompt_id: str, fmt: str = "JPEG") -> bytes:
    """PREVIEW_IMAGE_WITH_METADATA payload: [uint32 len][JSON metadata][JPEG or PNG]."""
    meta = json.dumps(
        {
            "node_id": node_id,
            "prompt_id": prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
            "image_type": "image/png" if fmt == "PNG" else "image/jpeg",
        }
    ).encode()
    return struct.pack(">I", len(meta)) + meta + image
