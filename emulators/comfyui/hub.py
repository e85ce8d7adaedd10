"""Websocket clients and the single ordered message pipe (ComfyUI's `send_sync` + publish loop).

Every message goes through one asyncio queue, so the order clients see is the order the server
produced, as in ComfyUI. `sid=None` broadcasts to every socket; otherwise only the socket whose
clientId equals `sid` gets it. JSON frames are `json.dumps({"type", "data"})` with the default
separators, byte-identical in form to ComfyUI's aiohttp `send_json`; binary frames (previews) are
`[uint32 BE event][payload]` (`send_binary`).

Fault knob `ws_drop_after=N`: right after a socket has been sent its N-th message (text or binary,
counting from the `status` sent on connect), the server closes it (close code 1001,
"emulator ws_drop_after").
`ws_drop_after_type=T` does the same right after a socket is sent a message of type T.
With `ws_drop_unnoticed_s=S` such a drop cuts the connection instead (transport aborted) and the
socket's end is noticed S seconds later (see server.websocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .config import EmulatorConfig

log = logging.getLogger("emulators.comfyui")


@dataclass
class Client:
    ws: web.WebSocketResponse
    sent: int = 0
    feature_flags: dict[str, Any] = field(default_factory=dict)
    transport: Any = None  # the connection, for a network-style drop
    unnoticed_s: float = 0.0  # how late the server notices that drop


class Hub:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clients: dict[str, Client] = {}
        self.queue: asyncio.Queue[tuple[str | int, Any, str | None] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._publish_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for c in list(self.clients.values()):
            await c.ws.close()

    def send(self, event: str, data: Any, sid: str | None = None) -> None:
        """Queue a message (ComfyUI's send_sync)."""
        self.queue.put_nowait((event, data, sid))

    def send_binary(self, event: int, payload: bytes, sid: str | None = None) -> None:
        """Queue a binary frame `[uint32 BE event][payload]` (1 PREVIEW_IMAGE, 4 ..._METADATA)."""
        self.queue.put_nowait((event, payload, sid))

    def supports(self, sid: str | None, flag: str) -> bool:
        """Whether that client announced a feature flag (ComfyUI's supports_feature)."""
        client = self.clients.get(sid) if sid is not None else None
        return bool(client is not None and client.feature_flags.get(flag))

    async def drain(self) -> None:
        """Wait until everything queued so far has been written to the sockets."""
        await self.queue.join()

    async def _publish_loop(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                if item is not None:
                    event, data, sid = item
                    await self.deliver(event, data, sid)
            except Exception:  # a broken socket must not stop the pipe
                log.exception("publishing %s failed", item and item[0])
            finally:
                self.queue.task_done()

    async def deliver(self, event: str | int, data: Any, sid: str | None) -> None:
        if sid is None:
            targets = list(self.clients.items())
        elif sid in self.clients:
            targets = [(sid, self.clients[sid])]
        else:
            targets = []
        if isinstance(event, int):
            frame: str | bytes = struct.pack(">I", event) + data
            event = "binary"
        else:
            frame = json.dumps({"type": event, "data": data})
        for csid, client in targets:
            await self.send_to(csid, client, frame, event)

    async def send_to(self, sid: str, client: Client, frame: str | bytes, event: str = "") -> None:
        if client.ws.closed:
            return
        try:
            if isinstance(frame, bytes):
                await client.ws.send_bytes(frame)
            else:
                await client.ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            return
        client.sent += 1
        limit = self.config.ws_drop_after
        drop_type = self.config.ws_drop_after_type
        if (limit and client.sent >= limit) or (drop_type and event == drop_type):
            log.info("ws_drop_after: closing websocket %s after %s", sid, event or "a message")
            if self.config.ws_drop_unnoticed_s and client.transport is not None:
                client.unnoticed_s = self.config.ws_drop_unnoticed_s
                client.transport.abort()  # the network is gone; the server has not noticed
                return
            await client.ws.close(code=1001, message=b"emulator ws_drop_after")
