"""HTTP client for ComfyUI's API (aiohttp): readiness, upload, queue, history, view, interrupt.

`ComfyClient` wraps one `aiohttp.ClientSession`. It turns ComfyUI's answers into typed results or
`WorkerError`s: a 400 from `/prompt` becomes one readable line per node error (a missing model
lists the files that do exist for that loader), a dead process is detected from its pid file.
The websocket side lives in `monitor.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .errors import (
    ComfyDied,
    ComfyProtocolError,
    ComfyUnavailable,
    UploadFailed,
    WorkflowRejected,
)
from .inputs import FILE_INPUT_NAMES, ImageInput
from .settings import Settings

log = logging.getLogger("worker.comfy")


@dataclass(frozen=True)
class Queued:
    prompt_id: str
    number: int
    node_errors: dict = field(default_factory=dict)


def pid_alive(pid_file: str) -> bool | None:
    """True/False if `pid_file` names a live/dead process, None when there is no pid file."""
    if not pid_file:
        return None
    try:
        pid = int(Path(pid_file).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0): look at its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _short_list(items: list, limit: int = 12) -> str:
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "") or "(none)"


def _options_of(spec: object) -> list:
    """A list input's options from its schema: legacy `[[...], {...}]` or V3
    `["COMBO", {"options": [...]}]`; [] for anything else."""
    if not isinstance(spec, list) or not spec:
        return []
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], Mapping):
        options = spec[1].get("options")
        return options if isinstance(options, list) else []
    return []


def is_file_input(class_type: str, input_name: str) -> bool:
    """Whether a list input names a file (a loader's model, LoadImage's image) rather than an
    option such as `upscale_method` or `weight_dtype`."""
    return "Load" in class_type and (input_name.endswith("_name") or input_name in FILE_INPUT_NAMES)


def _links(workflow: Mapping[str, object] | None, node_id: str) -> dict[str, list]:
    node = (workflow or {}).get(node_id)
    inputs = node.get("inputs") if isinstance(node, Mapping) else None
    if not isinstance(inputs, Mapping):
        return {}
    return {k: v for k, v in inputs.items() if isinstance(v, list) and len(v) == 2}


def _class_of(workflow: Mapping[str, object] | None, node_id: object) -> str:
    node = (workflow or {}).get(str(node_id))
    return str(node.get("class_type")) if isinstance(node, Mapping) else "?"


def _validation_exception(
    node_id: str, ct: str, err: Mapping, workflow: Mapping[str, object] | None
) -> str:
    """ComfyUI's `exception_during(_inner)_validation` in plain words: a link to a node that is
    not in the workflow (KeyError), a link to an output slot that does not exist (IndexError)."""
    info = err.get("extra_info") or {}
    etype = str(info.get("exception_type") or "")
    text = str(info.get("exception_message") or err.get("details") or "").strip()
    links = _links(workflow, node_id)
    if etype == "KeyError":
        missing = text.strip("'\"")
        names = [k for k, v in links.items() if str(v[0]) == missing] or [None]
        return "; ".join(
            f"node {node_id} ({ct})" + (f" input {n!r}" if n else "")
            + f": links to node {missing}, which is not in the workflow"
            for n in names
        )  # fmt: skip
    if etype == "IndexError":
        odd = {k: v for k, v in links.items() if isinstance(v[1], int) and v[1] > 0} or links
        if len(odd) == 1:
            ((name, (src, slot)),) = odd.items()
            return (
                f"node {node_id} ({ct}) input {name!r}: links to output slot {slot} of node {src} "
                f"({_class_of(workflow, src)}), which has no such output"
            )
        shown = ", ".join(f"{k!r} -> node {v[0]} slot {v[1]}" for k, v in odd.items())
        return (
            f"node {node_id} ({ct}): one of its links names an output slot its source node does "
            "not have" + (f" ({shown})" if shown else "")
        )
    return f"node {node_id} ({ct}): ComfyUI could not validate it ({etype}: {text})".replace(
        ": )", ")"
    )


def format_node_errors(
    node_errors: Mapping[str, object], workflow: Mapping[str, object] | None = None
) -> list[str]:
    """One readable line per node error of a `/prompt` answer (`workflow`, when given, names
    the inputs behind a broken link)."""
    lines: list[str] = []
    for node_id, ne in node_errors.items():
        if not isinstance(ne, Mapping):
            lines.append(f"node {node_id}: {ne}")
            continue
        ct = str(ne.get("class_type", "?"))
        for err in ne.get("errors") or []:
            info = err.get("extra_info") or {}
            etype = err.get("type", "")
            name = info.get("input_name")
            where = f"node {node_id} ({ct})" + (f" input '{name}'" if name else "")
            if etype == "value_not_in_list":
                cfg = info.get("input_config") or [[]]
                options = cfg[0] if cfg and isinstance(cfg[0], list) else []
                got = info.get("received_value")
                if is_file_input(ct, str(name or "")):
                    lines.append(
                        f"{where}: {got!r} is not available; files that exist: "
                        f"{_short_list(options)}"
                    )
                elif options:
                    lines.append(
                        f"{where}: {got!r} is not one of the options: {_short_list(options)}"
                    )
                else:
                    m = re.search(r"\(list of length (\d+)\)", str(err.get("details") or ""))
                    count = f" {m.group(1)}" if m else ""
                    lines.append(f"{where}: {got!r} is not one of the{count} allowed options")
            elif etype in ("exception_during_validation", "exception_during_inner_validation"):
                lines.append(_validation_exception(str(node_id), ct, err, workflow))
            else:
                detail = err.get("details") or ""
                got = info.get("received_value")
                lines.append(
                    f"{where}: {err.get('message', etype)}"
                    + (f" ({detail})" if detail and detail != name else "")
                    + (
                        f", got {got!r}"
                        if got is not None and etype != "invalid_input_type"
                        else ""
                    )
                )
    return lines


def prompt_error(err: Mapping) -> tuple[str, list[str]]:
    """ComfyUI's top-level `/prompt` error (no node_errors) as a message and details lines:
    `Cannot execute because node X does not exist.` + `Node ID '#3'` becomes
    `Cannot execute because node X does not exist (node 3)` with one details line."""
    msg = str(err.get("message") or err.get("type") or "invalid prompt").strip().rstrip(".")
    details = str(err.get("details") or "").strip()
    m = re.fullmatch(r"Node ID '#(.+)'", details)
    if m:
        return f"{msg} (node {m.group(1)})", [f"node {m.group(1)}: {msg}"]
    return (f"{msg}: {details}" if details else msg), ([details] if details else [])


class ComfyClient:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self.s = settings
        self.session = session
        self.base = settings.comfy_http

    def check_alive(self) -> None:
        if pid_alive(self.s.comfy_pid_file) is False:
            raise ComfyDied(f"the ComfyUI process (pid file {self.s.comfy_pid_file}) has exited")

    async def wait_ready(self) -> dict:
        """Poll `/system_stats` until ComfyUI answers; return its JSON. Deadline + dead check."""
        start = time.monotonic()
        tries = 0
        last = ""
        while True:
            tries += 1
            try:
                async with self.session.get(
                    self.base + "/system_stats", timeout=aiohttp.ClientTimeout(total=5)
                ) as r:
                    if r.status == 200:
                        return await r.json()
                    last = f"HTTP {r.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                last = type(e).__name__
            if pid_alive(self.s.comfy_pid_file) is False:
                raise ComfyUnavailable(
                    f"ComfyUI at {self.s.comfy_host} is not running: its process "
                    f"(pid file {self.s.comfy_pid_file}) has exited; see its log"
                )
            waited = time.monotonic() - start
            if self.s.ready_max_retries and tries >= self.s.ready_max_retries:
                raise ComfyUnavailable(
                    f"ComfyUI at {self.s.comfy_host} did not answer after {tries} tries "
                    f"({waited:.1f} s, COMFY_API_AVAILABLE_MAX_RETRIES); last: {last}"
                )
            if self.s.ready_timeout_s and waited >= self.s.ready_timeout_s:
                raise ComfyUnavailable(
                    f"ComfyUI at {self.s.comfy_host} did not answer within "
                    f"{self.s.ready_timeout_s:g} s (COMFY_READY_TIMEOUT_S); last: {last}"
                )
            await asyncio.sleep(self.s.ready_interval_s)

    async def upload(self, image: ImageInput, folder: str = "") -> str:
        """Upload to ComfyUI's input folder, into `folder` plus the image's own subfolder (the
        `subfolder` field of /upload/image); return the name a LoadImage refers to it by."""
        subfolder = "/".join(p for p in (folder, image.subfolder) if p)
        form = aiohttp.FormData(quote_fields=False)  # names are validated: no quotes
        form.add_field("image", image.data, filename=image.filename, content_type=image.mime)
        form.add_field("overwrite", "true")
        form.add_field("type", "input")
        if subfolder:
            form.add_field("subfolder", subfolder)
        try:
            async with self.session.post(self.base + "/upload/image", data=form) as r:
                if r.status != 200:
                    text = (await r.text())[:200]
                    raise UploadFailed(
                        f"{image.name}: ComfyUI answered HTTP {r.status} {text}".rstrip()
                    )
                body = await r.json()
        except aiohttp.ClientError as e:
            raise UploadFailed(f"{image.name}: {type(e).__name__}: {e}") from None
        name = body.get("name", image.filename)
        sub = body.get("subfolder") or ""
        return f"{sub}/{name}" if sub else name

    async def queue(
        self, workflow: dict, client_id: str, extra_data: dict | None, prompt_id: str
    ) -> Queued:
        """POST /prompt under `prompt_id` (ComfyUI takes the client's; an older one that picks
        its own answers it: the answer's id is the one to follow)."""
        payload: dict = {"prompt": workflow, "client_id": client_id, "prompt_id": prompt_id}
        if extra_data:
            payload["extra_data"] = extra_data
        async with self.session.post(self.base + "/prompt", json=payload) as r:
            text = await r.text()
            status = r.status
        try:
            body = json.loads(text) if text else {}
        except json.JSONDecodeError:
            body = None
        if status == 200 and isinstance(body, dict) and "prompt_id" in body:
            return Queued(
                body["prompt_id"], int(body.get("number", 0)), body.get("node_errors") or {}
            )
        if status == 400 and isinstance(body, dict):
            err = body.get("error") or {}
            if not isinstance(err, Mapping):
                err = {"message": str(err)}
            node_errors = body.get("node_errors") or {}
            await self._fill_left_out_options(node_errors)
            lines = format_node_errors(node_errors, workflow)
            msg = str(err.get("message") or err.get("type") or "invalid prompt")
            if not lines:
                msg, lines = prompt_error(err)
            else:
                msg += f" ({len(lines)} problem{'s' if len(lines) != 1 else ''}): " + "; ".join(
                    lines[:5]
                )
            raise WorkflowRejected(msg, lines)
        raise ComfyProtocolError(f"POST /prompt answered HTTP {status}: {text[:200]}")

    async def _fill_left_out_options(self, node_errors: Mapping[str, object]) -> None:
        """ComfyUI leaves option lists over 20 long out of a `value_not_in_list` refusal
        (`input_config: null`, "list of length 42"): read them from `/object_info/{class}`
        (once per class, only on this error path) so the refusal says what is allowed."""
        schemas: dict[str, Mapping] = {}
        for ne in node_errors.values():
            if not isinstance(ne, Mapping):
                continue
            ct = str(ne.get("class_type") or "")
            for err in ne.get("errors") or []:
                info = err.get("extra_info") if isinstance(err, Mapping) else None
                if err.get("type") != "value_not_in_list" or not isinstance(info, dict):
                    continue
                if info.get("input_config") or not ct:
                    continue
                if ct not in schemas:
                    schemas[ct] = await self._node_schema(ct)
                inputs = schemas[ct].get("input") or {}
                name = info.get("input_name")
                spec = (inputs.get("required") or {}).get(name) or (
                    inputs.get("optional") or {}
                ).get(name)
                options = _options_of(spec)
                if options:
                    info["input_config"] = [options]

    async def _node_schema(self, class_type: str) -> Mapping:
        """One node class's `/object_info` entry; {} when ComfyUI does not give it."""
        url = f"{self.base}/object_info/{urllib.parse.quote(class_type, safe='')}"
        try:
            async with asyncio.timeout(10), self.session.get(url) as r:
                body = await r.json() if r.status == 200 else {}
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return {}
        entry = body.get(class_type) if isinstance(body, Mapping) else None
        return entry if isinstance(entry, Mapping) else {}

    async def queue_ids(self) -> set[str]:
        """Ids of the prompts ComfyUI runs or has pending (`GET /queue`)."""
        async with self.session.get(self.base + "/queue") as r:
            body = await r.json()
        items = (body.get("queue_running") or []) + (body.get("queue_pending") or [])
        return {str(i[1]) for i in items if isinstance(i, list) and len(i) > 1}

    async def history(self, prompt_id: str) -> dict | None:
        async with self.session.get(f"{self.base}/history/{prompt_id}") as r:
            if r.status != 200:
                raise ComfyProtocolError(f"GET /history/{prompt_id} answered HTTP {r.status}")
            body = await r.json()
        return body.get(prompt_id) if isinstance(body, dict) else None

    async def interrupt(self, prompt_id: str) -> None:
        async with self.session.post(self.base + "/interrupt", json={"prompt_id": prompt_id}) as r:
            await r.read()

    async def delete_from_queue(self, prompt_id: str) -> None:
        async with self.session.post(self.base + "/queue", json={"delete": [prompt_id]}) as r:
            await r.read()

    async def delete_history(self, prompt_id: str) -> None:
        async with self.session.post(self.base + "/history", json={"delete": [prompt_id]}) as r:
            await r.read()

    async def view_to(self, filename: str, subfolder: str, ftype: str, dest) -> int:
        """Stream `/view` into the binary file object `dest`; return the byte count."""
        params = {"filename": filename, "subfolder": subfolder, "type": ftype}
        n = 0
        async with self.session.get(self.base + "/view", params=params) as r:
            if r.status != 200:
                raise ComfyProtocolError(f"GET /view {filename!r} answered HTTP {r.status}")
            async for chunk in r.content.iter_chunked(1 << 20):
                dest.write(chunk)
                n += len(chunk)
        return n

    async def view_bytes(self, filename: str, subfolder: str, ftype: str) -> bytes:
        params = {"filename": filename, "subfolder": subfolder, "type": ftype}
        async with self.session.get(self.base + "/view", params=params) as r:
            if r.status != 200:
                raise ComfyProtocolError(f"GET /view {filename!r} answered HTTP {r.status}")
            return await r.read()
