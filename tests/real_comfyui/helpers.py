"""What the real tier's tests share: model-free video graphs, waiting on ComfyUI's state, and a
gate that cuts ComfyUI's websocket while its HTTP keeps working."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.worker.conftest import Comfy, get_json

T = TypeVar("T")
REFUSAL = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def video_workflow(
    width: int = 256,
    height: int = 256,
    frames: int = 24,
    fmt: str = "mp4",
    codec: str = "h264",
    blur: int | None = None,
    prefix: str = "video/real",
    seed: int = 1,
) -> dict:
    """EmptyImage → [ImageBlur] → ImageAddNoise → CreateVideo → SaveVideo: a real video from real
    ComfyUI without any model. `blur` (1-31) makes the step before the encode take a while."""
    wf = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": width, "height": height, "batch_size": frames, "color": 0}},
        "2": {"class_type": "ImageAddNoise",
              "inputs": {"image": ["1", 0], "seed": seed, "strength": 0.5}},
        "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 24.0}},
        "4": {"class_type": "SaveVideo",
              "inputs": {"video": ["3", 0], "filename_prefix": prefix, "format": fmt,
                         "codec": codec}},
    }  # fmt: skip
    if blur:
        wf["5"] = {"class_type": "ImageBlur",
                   "inputs": {"image": ["1", 0], "blur_radius": blur, "sigma": 10.0}}  # fmt: skip
        wf["2"]["inputs"]["image"] = ["5", 0]
    return wf


def wait_for(probe: Callable[[], T], what: str, deadline_s: float = 120.0) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what}")


async def await_for(probe: Callable[[], T], what: str, deadline_s: float = 120.0) -> T:
    """`wait_for` inside a running event loop (the probe runs in a thread)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = await asyncio.to_thread(probe)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what}")


def idle(comfy: Comfy) -> bool:
    """Nothing running or pending in ComfyUI's queue."""
    return get_json(comfy.url + "/queue") == {"queue_running": [], "queue_pending": []}


def files_under(folder: Path, pattern: str = "*.mp4") -> list[Path]:
    return sorted(folder.rglob(pattern))


class WsGate:
    """A TCP proxy on 127.0.0.1 in front of ComfyUI. HTTP always passes (one request per
    connection: it asks for `Connection: close`, so no pooled connection turns into a websocket
    later); after `refuse()`, open websockets are cut and new ones get `403 Forbidden`."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.refusing = False
        self.refused = 0  # websocket upgrades refused
        self._sockets: list[asyncio.StreamWriter] = []
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    def refuse(self) -> None:
        """Cut every open websocket and refuse new ones (HTTP keeps working)."""

        def cut() -> None:
            self.refusing = True
            for w in self._sockets:
                w.transport.abort()
            self._sockets.clear()

        self._loop.call_soon_threadsafe(cut)

    def close(self) -> None:
        def stop() -> None:
            self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        is_ws = any(ln.lower().startswith("upgrade:") and "websocket" in ln.lower() for ln in lines)
        if is_ws and self.refusing:
            self.refused += 1
            writer.write(REFUSAL)
            await writer.drain()
            writer.close()
            return
        if not is_ws:
            kept = [ln for ln in lines if ln and not ln.lower().startswith("connection:")]
            head = ("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up_writer.write(head)
        if is_ws:
            self._sockets += [writer, up_writer]
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        dst.close()
