"""HTTP and websocket routes of the emulator, ComfyUI 0.3.64's shapes (see the fixture README).

`create_app(config) -> aiohttp.web.Application` builds everything; the hub, queue and executor
start with the app (on_startup) and stop with it. Every route is also served under `/api`.
Routes that real ComfyUI has: /ws, /prompt (GET, POST), /queue (GET, POST), /interrupt, /free,
/history (GET, POST), /history/{id}, /view, /upload/image, /object_info, /object_info/{class},
/system_stats, /features, /models, /models/{folder}, /embeddings, /extensions.
Emulator only: GET/POST /emulator/config (the fault knobs, see config.py); GET /emulator/requests
(the last 1000 requests served: method, path, status, bytes of the answer; the websocket is
logged when it ends), POST /emulator/requests (empties that log) and GET /emulator/stats
(`interrupted_prompts`: prompts that ended interrupted, still counted after their history entry
is removed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from .config import ConfigError, EmulatorConfig
from .files import server_error, upload_image, view
from .hub import Client
from .prompt_queue import QueueItem
from .state import STATE, State, get_state
from .validation import validate_prompt

log = logging.getLogger("emulators.comfyui")

COMFYUI_VERSION = "0.3.64"


def features_of(config: EmulatorConfig) -> dict[str, Any]:
    """ComfyUI's server feature flags (`GET /features`, the ws `feature_flags` answer)."""
    return {
        "supports_preview_metadata": True,
        "max_upload_size": int(config.max_upload_size_mb * 1024 * 1024),
    }


async def websocket(request: web.Request) -> web.StreamResponse:
    st = get_state(request)
    cfg = st.config
    if cfg.ws_refuse_after is not None:
        if cfg.ws_accepted >= cfg.ws_refuse_after:
            return web.Response(status=503, text="emulator ws_refuse_after")
        cfg.ws_accepted += 1
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    sid = request.rel_url.query.get("clientId", "") or uuid.uuid4().hex
    # Like ComfyUI: a reused clientId replaces the old socket in the table without closing it,
    # and whichever socket of that id ends first unregisters the id (see the finally below).
    st.hub.clients.pop(sid, None)
    client = Client(ws, transport=request.transport)
    st.hub.clients[sid] = client
    try:
        await st.hub.send_to(
            sid,
            client,
            json.dumps({"type": "status", "data": {"status": st.queue.status(), "sid": sid}}),
            "status",
        )
        if st.executor.client_id == sid and st.executor.last_node_id is not None:
            await st.hub.send_to(
                sid,
                client,
                json.dumps({"type": "executing", "data": {"node": st.executor.last_node_id}}),
                "executing",
            )
        first = True
        async for msg in ws:
            if msg.type != web.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                log.warning("invalid JSON from websocket client %s", sid)
                continue
            if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                client.feature_flags = data.get("data") or {}
                await st.hub.send_to(
                    sid,
                    client,
                    json.dumps({"type": "feature_flags", "data": features_of(st.config)}),
                    "feature_flags",
                )
            first = False
    finally:
        if client.unnoticed_s:  # a network drop, noticed late (knob ws_drop_unnoticed_s)
            await asyncio.sleep(client.unnoticed_s)
        st.hub.clients.pop(sid, None)
    return ws


async def post_prompt(request: web.Request) -> web.Response:
    st = get_state(request)
    try:
        body = await request.json()
    except ValueError:
        return server_error()
    if isinstance(body, list | str):  # ComfyUI's `in` tests pass over them: no "prompt" key
        body = {}
    if not isinstance(body, dict):  # a number: ComfyUI's `"number" in body` raises
        return server_error()
    if "number" in body:
        number: float = float(body["number"])
    else:
        number = st.number
        if body.get("front"):
            number = -number
        st.number += 1
    if "prompt" not in body:
        error = {
            "type": "no_prompt",
            "message": "No prompt provided",
            "details": "No prompt provided",
            "extra_info": {},
        }
        return web.json_response({"error": error, "node_errors": {}}, status=400)
    prompt = body["prompt"]
    prompt_id = str(body["prompt_id"]) if "prompt_id" in body else str(uuid.uuid4())
    cfg = st.config
    try:
        v = validate_prompt(
            prompt,
            st.schema,
            body.get("partial_execution_targets"),
            (cfg.input_directory, cfg.output_directory, cfg.temp_directory),
        )
    except (TypeError, KeyError, AttributeError) as e:  # where ComfyUI's handler crashes
        log.warning("POST /prompt crashed like ComfyUI would: %r", e)
        return server_error()
    extra = body.get("extra_data", {})
    if not isinstance(extra, dict):  # ComfyUI sets extra_data["client_id"] on it, or queues it
        return server_error()  # and fails when it runs: a 500 either way here
    if "client_id" in body:
        extra["client_id"] = body["client_id"]
    if not v.ok:
        log.warning("invalid prompt: %s", v.error)
        return web.json_response({"error": v.error, "node_errors": v.node_errors}, status=400)
    st.queue.put(QueueItem(number, prompt_id, prompt, extra, v.outputs))
    if cfg.prompt_answer_delay:
        await asyncio.sleep(cfg.prompt_answer_delay)
    return web.json_response(
        {"prompt_id": prompt_id, "number": number, "node_errors": v.node_errors}
    )


async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response(get_state(request).queue.status())


async def get_queue(request: web.Request) -> web.Response:
    running, pending = get_state(request).queue.queue_lists()
    return web.json_response({"queue_running": running, "queue_pending": pending})


async def post_queue(request: web.Request) -> web.Response:
    st = get_state(request)
    body = await _clear_and_delete(request)
    if body is None:
        return server_error()
    if body.get("clear"):
        st.queue.wipe()
    for pid in body.get("delete", []):
        st.queue.delete_pending(pid)
    return web.Response(status=200)


async def _clear_and_delete(request: web.Request) -> dict[str, Any] | None:
    """The body of POST /queue or /history as ComfyUI reads it (`"clear" in body`, then each
    id of body["delete"]), or None where ComfyUI's handler raises (a 500): JSON that does not
    parse, a number, a "delete" that is not a list of ids."""
    try:
        body = await request.json()
    except ValueError:
        return None
    if isinstance(body, list | str):
        return {}
    if not isinstance(body, dict):
        return None
    delete = body.get("delete", [])
    if not isinstance(delete, list | str | dict):
        return None
    return {**body, "delete": list(delete)}


async def _json_object(request: web.Request, bad_json: dict[str, Any] | None) -> dict | None:
    """A JSON object body; `bad_json` for one that does not parse (ComfyUI's /interrupt: {},
    /free: None, a 500); None for any other JSON (ComfyUI calls .get on it: a 500)."""
    try:
        body = await request.json()
    except ValueError:
        return bad_json
    return body if isinstance(body, dict) else None


async def post_interrupt(request: web.Request) -> web.Response:
    st = get_state(request)
    body = await _json_object(request, bad_json={})
    if body is None:
        return server_error()
    pid = body.get("prompt_id")
    if pid:
        if pid in st.queue.running_ids():
            st.executor.interrupt()
        else:
            log.info("Prompt %s is not currently running, skipping interrupt", pid)
    else:
        st.executor.interrupt()
    return web.Response(status=200)


async def post_free(request: web.Request) -> web.Response:
    st = get_state(request)
    body = await _json_object(request, bad_json=None)
    if body is None:
        return server_error()
    if body.get("free_memory"):
        st.executor.free()
    return web.Response(status=200)


async def get_history(request: web.Request) -> web.Response:
    st = get_state(request)
    q = request.rel_url.query
    max_items = int(q["max_items"]) if "max_items" in q else None
    offset = int(q["offset"]) if "offset" in q else -1
    hist = st.queue.history
    if offset < 0 and max_items is not None:
        offset = len(hist) - max_items
    out: dict[str, Any] = {}
    for i, (k, v) in enumerate(hist.items()):
        if i >= offset:
            out[k] = v
            if max_items is not None and len(out) >= max_items:
                break
    return web.json_response(out)


async def get_history_id(request: web.Request) -> web.Response:
    st = get_state(request)
    pid = request.match_info["prompt_id"]
    if pid in st.queue.history:
        return web.json_response({pid: st.queue.history[pid]})
    return web.json_response({})


async def post_history(request: web.Request) -> web.Response:
    st = get_state(request)
    body = await _clear_and_delete(request)
    if body is None:
        return server_error()
    if body.get("clear"):
        st.queue.history.clear()
    for pid in body.get("delete", []):
        st.queue.history.pop(pid, None)
    return web.Response(status=200)


async def object_info(request: web.Request) -> web.Response:
    return web.json_response(get_state(request).schema.object_info())


async def object_info_node(request: web.Request) -> web.Response:
    st = get_state(request)
    name = request.match_info["node_class"]
    return web.json_response({name: st.schema.node_info(name)} if st.schema.has(name) else {})


async def system_stats(request: web.Request) -> web.Response:
    st = get_state(request)
    total, free = _memory()
    return web.json_response(
        {
            "system": {
                "os": os.name,
                "ram_total": total,
                "ram_free": free,
                "comfyui_version": COMFYUI_VERSION,
                "required_frontend_version": "1.27.10",
                "installed_templates_version": "0.1.95",
                "required_templates_version": "0.1.95",
                "python_version": sys.version,
                "pytorch_version": "2.14.1+cu130",
                "embedded_python": False,
                "argv": st.config.argv or ["main.py"],
            },
            "devices": [
                {
                    "name": "cpu",
                    "type": "cpu",
                    "index": None,
                    "vram_total": total,
                    "vram_free": free,
                    "torch_vram_total": total,
                    "torch_vram_free": free,
                }
            ],
        }
    )


def _memory() -> tuple[int, int]:
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        return (
            int(info["MemTotal"].split()[0]) * 1024,
            int(info["MemAvailable"].split()[0]) * 1024,
        )
    except (OSError, KeyError, ValueError):
        return 0, 0


async def features(request: web.Request) -> web.Response:
    return web.json_response(features_of(get_state(request).config))


async def models(request: web.Request) -> web.Response:
    return web.json_response(get_state(request).schema.model_folders())


async def models_folder(request: web.Request) -> web.Response:
    folder = request.match_info["folder"]
    schema = get_state(request).schema
    if folder not in schema.model_folders():
        return web.Response(status=404)
    return web.json_response(schema.model_lists().get(folder, []))


async def embeddings(request: web.Request) -> web.Response:
    return web.json_response([])


async def extensions(request: web.Request) -> web.Response:
    return web.json_response([])


async def get_requests(request: web.Request) -> web.Response:
    return web.json_response(list(get_state(request).requests))


async def get_stats(request: web.Request) -> web.Response:
    """Counters a test can read after the worker cleaned ComfyUI's history up (emulator only)."""
    executor = get_state(request).executor
    return web.json_response({"interrupted_prompts": executor.interrupted_prompts})


async def clear_requests(request: web.Request) -> web.Response:
    get_state(request).requests.clear()
    return web.json_response([])


@web.middleware
async def record_request(request: web.Request, handler: Any) -> web.StreamResponse:
    resp = await handler(request)
    if not request.path.startswith(("/emulator/", "/api/emulator/")):
        body = resp.body if isinstance(resp, web.Response) else None
        get_state(request).requests.append(
            {
                "method": request.method,
                "path": request.path,
                "status": resp.status,
                "bytes": len(body) if isinstance(body, bytes) else resp.content_length,
            }
        )
    return resp


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(get_state(request).config.knobs())


async def post_config(request: web.Request) -> web.Response:
    st = get_state(request)
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ConfigError("body must be a JSON object of knob names to values")
        return web.json_response(st.config.update(body))
    except (ValueError, ConfigError) as e:
        return web.json_response({"error": str(e)}, status=400)


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/ws", websocket),
    ("GET", "/prompt", get_prompt),
    ("POST", "/prompt", post_prompt),
    ("GET", "/queue", get_queue),
    ("POST", "/queue", post_queue),
    ("POST", "/interrupt", post_interrupt),
    ("POST", "/free", post_free),
    ("GET", "/history", get_history),
    ("GET", "/history/{prompt_id}", get_history_id),
    ("POST", "/history", post_history),
    ("GET", "/view", view),
    ("POST", "/upload/image", upload_image),
    ("GET", "/object_info", object_info),
    ("GET", "/object_info/{node_class}", object_info_node),
    ("GET", "/system_stats", system_stats),
    ("GET", "/features", features),
    ("GET", "/models", models),
    ("GET", "/models/{folder}", models_folder),
    ("GET", "/embeddings", embeddings),
    ("GET", "/extensions", extensions),
    ("GET", "/emulator/config", get_config),
    ("POST", "/emulator/config", post_config),
    ("GET", "/emulator/requests", get_requests),
    ("POST", "/emulator/requests", clear_requests),
    ("GET", "/emulator/stats", get_stats),
]


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """The emulator as an aiohttp application (serve it with aiohttp's runners)."""
    config = config or EmulatorConfig()
    state = State(config)
    app = web.Application(
        client_max_size=features_of(config)["max_upload_size"], middlewares=[record_request]
    )
    app[STATE] = state
    for method, path, handler in ROUTES:
        for at in ("/api" + path, path):  # a GET answers HEAD too, as ComfyUI's routes.get does
            if method == "GET":
                app.router.add_get(at, handler)
            else:
                app.router.add_route(method, at, handler)

    async def on_startup(_app: web.Application) -> None:
        state.hub.start()
        state.executor.start()

    async def on_shutdown(_app: web.Application) -> None:
        await state.executor.stop()
        await state.hub.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app
