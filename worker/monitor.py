"""Follow one prompt over ComfyUI's websocket until it ends; survive drops.

`watch(...)` reads `ws://HOST/ws?clientId=` messages for our prompt id, feeds progress to the
`ProgressReporter`, collects `executed` outputs and returns a `JobEnd` on `execution_success` (or
`executing {node: null}`). `execution_error` / `execution_interrupted` raise `ExecutionFailed` /
`Interrupted`. When the socket drops it reconnects with backoff (WEBSOCKET_RECONNECT_ATTEMPTS,
WEBSOCKET_RECONNECT_DELAY_S) and checks `/history` after every attempt, failed ones included, and
once more before giving up, so a job that ended while the websocket could not be re-opened (HTTP
still working) is delivered, not failed as a lost connection; when the attempts are used up while
the prompt still runs and HTTP answers, it follows the prompt through `/history` (no progress),
trying the websocket again every 5 s, and fails only when HTTP stops answering too. It also
checks `/history` whenever the socket is quiet: every 5 s, and every 0.5 s once it has
reconnected, because real ComfyUI
may then send the new socket nothing after its `status` / `executing` greeting: when the server
notices the old socket's end only after the new one registered, it forgets the client id
(`sockets.pop(sid)`) and the prompt's messages go nowhere (this can happen any time after the
reconnect, whenever the server notices). So after a reconnect, 2 s of silence make the worker open
another socket, leaving the silent one open (closing it would make ComfyUI forget the id again);
the new one takes the id back and progress resumes (at most 3 times per job; a socket that was
only quiet loses nothing). A dead ComfyUI process fails the job at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field

import aiohttp

from .comfy import ComfyClient, pid_alive
from .errors import (
    ComfyDied,
    ComfyProtocolError,
    ComfyUnavailable,
    ConnectionLost,
    ExecutionFailed,
    Interrupted,
    UnreadableModel,
    one_line,
)
from .progress import ProgressReporter, is_sampler, planned_steps, stage_for
from .settings import Settings

log = logging.getLogger("worker.monitor")
QUIET_CHECK_S = 5.0
RECONNECTED_CHECK_S = 0.5  # after a reconnect the new socket may be deaf (see above)
DEAF_AFTER_S = 2.0  # silence after a reconnect that makes the worker open another socket
MAX_REOPENS = 3
HTTP_RETRY_WS_S = 5.0  # following over HTTP: how often the websocket is tried again
# how long closing a socket waits for ComfyUI's close frame: nothing more comes that the job
# needs, and a server stalled by its end-of-job gc (0.3 s measured) answers only after it
WS_CLOSE_S = 0.1


@dataclass
class JobEnd:
    outputs: dict[str, dict] = field(default_factory=dict)
    start_ts_ms: float | None = None
    success_ts_ms: float | None = None
    detected_at: float = 0.0  # time.time() when the end was seen
    cached: list[str] = field(default_factory=list)
    reconnects: int = 0
    via: str = "websocket"
    ws_images: list[WsImage] = field(default_factory=list)  # SaveImageWebsocket's images


@dataclass(frozen=True)
class WsImage:
    """An image a websocket output node (SaveImageWebsocket) sent as a binary frame."""

    node_id: str
    mime: str
    data: bytes = field(repr=False)


WS_IMAGE_NODES = frozenset({"SaveImageWebsocket"})
_FRAME_MIME = {1: "image/jpeg", 2: "image/png"}  # send_image's format word


_UNREADABLE = re.compile(
    r"SafetensorError|HeaderTooLarge|HeaderTooSmall|header too small|MetadataIncompleteBuffer|"
    r"invalid load key|PytorchStreamReader failed|unexpected EOF|corrupt",
    re.IGNORECASE,
)


def _error_from(data: dict) -> ExecutionFailed:
    node = str(data.get("node_id"))
    ntype = str(data.get("node_type"))
    etype = str(data.get("exception_type", "")).rpartition(".")[2]
    msg = one_line(data.get("exception_message") or "")
    cause = f"{etype}: {msg}".strip(": ")
    if "avcodec_open2" in msg and "libx264" in msg:  # ComfyUI's /prompt let an odd size through
        cause += " (h264 needs an even width and height: make both even)"
    if _UNREADABLE.search(f"{etype} {msg}"):
        for name, value in (data.get("current_inputs") or {}).items():
            value = value[0] if isinstance(value, list) and value else value
            if str(name).endswith("_name") and isinstance(value, str) and "." in value:
                return UnreadableModel(node, ntype, str(name), value, cause)
    return ExecutionFailed(f"node {node} ({ntype}) raised {cause}", [cause])


def _ws_failure(e: BaseException) -> str:
    """One line for a failed websocket open: a refused upgrade says what ComfyUI answered."""
    if isinstance(e, aiohttp.WSServerHandshakeError):
        return f"the upgrade was answered HTTP {e.status} instead of 101 Switching Protocols"
    return f"{type(e).__name__}: {one_line(str(e))}"


def _interrupted_from(data: dict) -> Interrupted:
    return Interrupted(
        f"ComfyUI interrupted the workflow at node {data.get('node_id')} ({data.get('node_type')})"
    )


class Watcher:
    def __init__(
        self,
        client: ComfyClient,
        settings: Settings,
        prompt_id: str,
        client_id: str,
        workflow: dict,
        progress: ProgressReporter,
    ) -> None:
        self.client = client
        self.s = settings
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.workflow = workflow
        self.progress = progress
        self.end = JobEnd()
        self.http_ok = True  # the last /history check got an answer
        self.finished_nodes: set[str] = set()
        self.current_node = ""

    async def connect(self) -> aiohttp.ClientWebSocketResponse:
        url = f"{self.s.comfy_ws}/ws?clientId={self.client_id}"
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=WS_CLOSE_S)
        return await self.client.session.ws_connect(
            url, heartbeat=None, max_msg_size=0, timeout=timeout
        )

    async def open(self) -> aiohttp.ClientWebSocketResponse:
        """The first socket, opened before the prompt is queued, with the reconnect attempts
        and backoff; when none opens, ComfyUnavailable names the websocket and its last answer
        (nothing was queued: a prompt that cannot be followed is not started)."""
        attempts = max(1, self.s.ws_reconnect_attempts)
        last = ""
        for i in range(attempts):
            self._check_alive()
            if i:
                await self._sleep_watching(min(self.s.ws_reconnect_delay_s * (2 ** (i - 1)), 30.0))
            try:
                return await self.connect()
            except (aiohttp.ClientError, OSError) as e:
                last = _ws_failure(e)
                log.warning("websocket open %d/%d failed: %s", i + 1, attempts, last)
        raise ComfyUnavailable(
            f"could not open the websocket to {self.s.comfy_ws}/ws in {attempts} attempts "
            f"(WEBSOCKET_RECONNECT_ATTEMPTS, WEBSOCKET_RECONNECT_DELAY_S): {last}; "
            "nothing was queued"
        )

    # -- message handling -------------------------------------------------------------------
    def _handle(self, msg: dict) -> bool:
        """Apply one message; True when the job has ended successfully."""
        mtype = msg.get("type")
        data = msg.get("data") or {}
        if self.s.ws_trace:
            log.debug("ws %s %s", mtype, {k: data.get(k) for k in ("node", "prompt_id", "value")})
        if mtype == "status":
            # queue_remaining counts the running and pending prompts, ours included once queued
            # (the greeting on connect, with `sid`, came before our prompt was put)
            remaining = (data.get("status") or {}).get("exec_info", {}).get("queue_remaining")
            pos = self.progress.state.queue_position
            queued = self.progress.state.stage == "queued"
            if queued and isinstance(remaining, int) and "sid" not in data:
                ahead = max(0, remaining - 1)
                self.progress.update(queue_position=ahead if pos is None else min(pos, ahead))
            return False
        if data.get("prompt_id") not in (None, self.prompt_id):
            return False
        if mtype == "execution_start" and data.get("prompt_id") == self.prompt_id:
            self.end.start_ts_ms = data.get("timestamp")
            self.progress.update(stage="loading", queue_position=0)
        elif mtype == "execution_cached" and data.get("prompt_id") == self.prompt_id:
            self.end.cached = list(data.get("nodes") or [])
            self.finished_nodes.update(self.end.cached)
            self.progress.update(nodes_done=len(self.finished_nodes))
        elif mtype == "executing" and data.get("prompt_id") == self.prompt_id:
            node = data.get("node")
            if node is None:
                return True
            self.current_node = str(node)
            spec = self.workflow.get(str(node)) or {}
            ct = spec.get("class_type")
            stage = stage_for(ct or "", self.progress.state.stage)
            if stage == "sampling" and not is_sampler(ct):
                # a node between two samplers (the next expert's shift or LoRA): the job is
                # still between sampler steps, so the last sampler's progress stands
                return False
            steps = planned_steps(spec)  # known before the first `progress` message
            self.progress.update(
                stage=stage,
                node=str(node),
                node_type=ct,
                step=0 if steps else None,
                steps=steps,
            )
        elif mtype == "progress" and data.get("prompt_id") == self.prompt_id:
            self.progress.update(step=data.get("value"), steps=data.get("max"))
        elif mtype == "progress_state" and data.get("prompt_id") == self.prompt_id:
            nodes = data.get("nodes") or {}
            done = {k for k, v in nodes.items() if (v or {}).get("state") == "finished"}
            self.finished_nodes.update(done)
            if len(self.finished_nodes) != self.progress.state.nodes_done:
                # a finished node's steps are part of nodes_done now; a finished sampler keeps
                # its last step on show until the next node runs (the job is between samplers)
                self.progress.update(
                    nodes_done=len(self.finished_nodes),
                    node_done=self.progress.state.node in self.finished_nodes,
                )
        elif mtype == "executed" and data.get("prompt_id") == self.prompt_id:
            node = str(data.get("node"))
            out = data.get("output") or {}
            merged = self.end.outputs.setdefault(node, {})
            for k, v in out.items():
                if isinstance(v, list) and isinstance(merged.get(k), list):
                    merged[k] = merged[k] + v
                else:
                    merged[k] = v
        elif mtype == "execution_success" and data.get("prompt_id") == self.prompt_id:
            self.end.success_ts_ms = data.get("timestamp")
            return True
        elif mtype == "execution_error" and data.get("prompt_id") == self.prompt_id:
            raise _error_from(data)
        elif mtype == "execution_interrupted" and data.get("prompt_id") == self.prompt_id:
            raise _interrupted_from(data)
        return False

    def _binary(self, frame: bytes) -> None:
        """Keep the image of a binary frame when a websocket output node sent it (ComfyUI's
        send_image: `[uint32 1][uint32 1 JPEG | 2 PNG][bytes]`, or with preview metadata
        `[uint32 4][uint32 n][n bytes JSON {node_id, prompt_id, image_type}][bytes]`);
        sampler previews are dropped."""
        if len(frame) < 8:
            return
        event, word = int.from_bytes(frame[:4], "big"), int.from_bytes(frame[4:8], "big")
        node, mime, body = self.current_node, _FRAME_MIME.get(word), frame[8:]
        if event == 4:
            try:
                meta = json.loads(frame[8 : 8 + word])
            except ValueError:
                return
            if meta.get("prompt_id") not in (None, self.prompt_id):
                return
            node = str(meta.get("node_id") or node)
            mime, body = meta.get("image_type"), frame[8 + word :]
        elif event != 1:
            return
        spec = self.workflow.get(node) or {}
        if mime and spec.get("class_type") in WS_IMAGE_NODES:
            self.end.ws_images.append(WsImage(node, mime, bytes(body)))

    # -- history fallback -------------------------------------------------------------------
    async def _check_history(self) -> bool:
        """True (outputs merged) if /history shows the prompt finished; raise if it failed.
        Sets `http_ok`: whether ComfyUI's HTTP side answered."""
        try:
            entry = await self.client.history(self.prompt_id)
        except (aiohttp.ClientError, OSError, ComfyProtocolError):
            self.http_ok = False
            return False
        self.http_ok = True
        if not entry:
            await self._check_still_known()
            return False
        status = entry.get("status") or {}
        messages = status.get("messages") or []
        for mtype, data in messages:
            if mtype == "execution_error":
                raise _error_from(data)
            if mtype == "execution_interrupted":
                raise _interrupted_from(data)
            if mtype == "execution_start":
                self.end.start_ts_ms = self.end.start_ts_ms or data.get("timestamp")
            if mtype == "execution_success":
                self.end.success_ts_ms = self.end.success_ts_ms or data.get("timestamp")
        if status.get("completed") or status.get("status_str") == "success":
            for node, out in (entry.get("outputs") or {}).items():
                self.end.outputs[str(node)] = out
            self.end.via = "history"
            return True
        return False

    async def _check_still_known(self) -> None:
        """A prompt in neither /history nor /queue is gone: ComfyUI was restarted (history is
        written before a prompt leaves the queue, so there is no gap between the two)."""
        try:
            if self.prompt_id in await self.client.queue_ids():
                return
        except (aiohttp.ClientError, OSError, ValueError):
            return
        if await self.client.history(self.prompt_id):
            return  # it finished between the two requests
        raise ComfyDied(
            f"ComfyUI no longer knows prompt {self.prompt_id} (it was restarted during the job); "
            "resubmit the job"
        )

    def _check_alive(self) -> None:
        if pid_alive(self.s.comfy_pid_file) is False:
            raise ComfyDied(
                f"the ComfyUI process exited while running prompt {self.prompt_id} "
                "(crash or out of memory?); see the ComfyUI log"
            )

    async def _sleep_watching(self, seconds: float) -> None:
        """Sleep, but notice a dead ComfyUI process within 50 ms (it may still be exiting when
        its socket closes)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(0.05, left))
            self._check_alive()

    async def _reconnect(self) -> aiohttp.ClientWebSocketResponse | None:
        """A new socket, or None when /history shows the prompt ended meanwhile."""
        attempts = self.s.ws_reconnect_attempts
        delay = self.s.ws_reconnect_delay_s
        last = "closed by ComfyUI"
        for i in range(attempts):
            self._check_alive()
            if i:
                await self._sleep_watching(min(delay * (2 ** (i - 1)), 30.0))
            try:
                ws = await self.connect()
            except (aiohttp.ClientError, OSError) as e:
                last = _ws_failure(e)
                log.warning("websocket reconnect %d/%d failed: %s", i + 1, attempts, last)
                if await self._check_history():  # HTTP may work while the websocket does not
                    return None
                continue
            self.end.reconnects += 1
            log.info("websocket reconnected (attempt %d/%d)", i + 1, attempts)
            return ws
        if await self._check_history():
            return None
        if self.http_ok:  # the prompt still runs and HTTP answers: follow it there
            return await self._follow_over_http(last)
        raise ConnectionLost(  # the /history check just above got no answer either
            f"the websocket to {self.s.comfy_host} dropped and {attempts} reconnect attempts "
            f"failed (WEBSOCKET_RECONNECT_ATTEMPTS, WEBSOCKET_RECONNECT_DELAY_S); last: {last}; "
            "its HTTP API stopped answering too"
        )

    async def _follow_over_http(self, last: str) -> aiohttp.ClientWebSocketResponse | None:
        """The websocket cannot be re-opened but HTTP works: follow the prompt through /history
        (no progress meanwhile), trying the websocket again every HTTP_RETRY_WS_S. A new socket,
        or None when the prompt ended. Lost HTTP too: ConnectionLost."""
        log.warning(
            "websocket to ComfyUI cannot be re-opened (%s); following prompt %s over HTTP",
            last,
            self.prompt_id,
        )
        retry_at = time.monotonic() + HTTP_RETRY_WS_S
        while True:
            await self._sleep_watching(RECONNECTED_CHECK_S)
            if await self._check_history():
                return None
            if not self.http_ok:
                raise ConnectionLost(
                    f"the websocket to {self.s.comfy_host} could not be re-opened ({last}) and "
                    "its HTTP API stopped answering"
                )
            if time.monotonic() >= retry_at:
                retry_at = time.monotonic() + HTTP_RETRY_WS_S
                try:
                    ws = await self.connect()
                except (aiohttp.ClientError, OSError):
                    continue
                self.end.reconnects += 1
                log.info("websocket re-opened while following over HTTP")
                return ws

    async def watch(self, ws: aiohttp.ClientWebSocketResponse) -> JobEnd:
        # sockets that may be deaf, kept open to the end: closing one would make ComfyUI forget
        # our client id once more, whichever socket holds it by then
        kept: list[aiohttp.ClientWebSocketResponse] = []
        last_heard = time.monotonic()
        try:
            while True:
                quiet_s = RECONNECTED_CHECK_S if self.end.reconnects else QUIET_CHECK_S
                try:
                    msg = await ws.receive(timeout=quiet_s)
                except TimeoutError:
                    self._check_alive()
                    if await self._check_history():
                        return self._done()
                    silent = time.monotonic() - last_heard >= DEAF_AFTER_S
                    if self.end.reconnects and silent and len(kept) < MAX_REOPENS:
                        try:  # a new socket takes our client id back (progress resumes)
                            new_ws = await self.connect()
                        except (aiohttp.ClientError, OSError):
                            continue
                        kept.append(ws)
                        ws, last_heard = new_ws, time.monotonic()
                        log.info(
                            "reconnected websocket silent for %g s: opened another", DEAF_AFTER_S
                        )
                    continue
                last_heard = time.monotonic()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if self._handle(msg.json()):
                        if self.end.reconnects:
                            await self._outputs_after_drop()
                        return self._done()
                    continue
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self._binary(msg.data)  # previews, or a websocket output node's images
                    continue
                # closed / error: reconnect, then check history for an end we missed
                await ws.close()
                log.warning("websocket to ComfyUI dropped (%s)", msg.type.name)
                new_ws = await self._reconnect()
                if new_ws is None:
                    return self._done()
                ws, last_heard = new_ws, time.monotonic()
                if await self._check_history():
                    return self._done()
        finally:
            for sock in [ws, *kept]:
                await sock.close()

    async def _outputs_after_drop(self) -> None:
        """`executed` messages may have been lost in a drop: take outputs from /history
        (written right after `execution_success`, so poll briefly)."""
        detected = time.time()
        for _ in range(40):
            if await self._check_history():
                break
            await asyncio.sleep(0.05)
        self.end.via = "websocket+history"
        self.end.detected_at = detected

    def _done(self) -> JobEnd:
        if self.end.detected_at:
            return self.end
        self.end.detected_at = time.time()
        return self.end
