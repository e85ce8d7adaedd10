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
import time
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
from .inputs import ImageInput
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


def format_node_errors(node_errors: Mapping[str, object]) -> list[str]:
    """One readable line per node error of a `/prompt` answer."""
    lines: list[str] = []
    for node_id, ne in node_errors.items():
        if not isinstance(ne, Mapping):
            lines.append(f"node {node_id}: {ne}")
            continue
        ct = ne.get("class_type", "?")
        for err in ne.get("errors") or []:
            info = err.get("extra_info") or {}
            etype = err.get("type", "")
            name = info.get("input_name")
            where = f"node {node_id} ({ct})" + (f" input '{name}'" if name else "")
            if etype == "value_not_in_list":
                cfg = info.get("input_config") or [[]]
                options = cfg[0] if cfg and isinstance(cfg[0], list) else []
                got = info.get("received_value")
                lines.append(
                    f"{where}: {got!r} is not available; files that exist: {_short_list(options)}"
                )
            elif etype == "exception_during_validation":
                lines.append(
                    f"{where}: {err.get('message')}: {info.get('exception_type', '')} "
                    f"{err.get('details', '')}".rstrip()
                )
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

    async def upload(self, image: ImageInput) -> str:
        form = aiohttp.FormData(quote_fields=False)  # names are validated: no quotes
        form.add_field("image", image.data, filename=image.name, content_type=image.mime)
        form.add_field("overwrite", "true")
        form.add_field("type", "input")
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
        name = body.get("name", image.name)
        sub = body.get("subfolder") or ""
        return f"{sub}/{name}" if sub else name

    async def queue(self, workflow: dict, client_id: str, extra_data: dict | None) -> Queued:
        payload: dict = {"prompt": workflow, "client_id": client_id}
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
            lines = format_node_errors(body.get("node_errors") or {})
            msg = err.get("message") or err.get("type") or "invalid prompt"
            if err.get("details") and not lines:
                msg += f": {err['details']}"
            if lines:
                msg += f" ({len(lines)} problem{'s' if len(lines) != 1 else ''}): " + "; ".join(
                    lines[:5]
                )
            raise WorkflowRejected(msg, lines)
        raise ComfyProtocolError(f"POST /prompt answered HTTP {status}: {text[:200]}")

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
