"""The inventory job: what this worker's ComfyUI can run, without running a workflow.

Job input `{"inventory": true}` (alone) answers
    {"inventory": {"models": {"<folder>": ["file.safetensors", "sub/x.safetensors", ...], ...},
                   "nodes": ["CLIPLoader", "KSamplerAdvanced", ...],      # sorted class names
                   "comfyui_version": "0.3.64" | None}}
from ComfyUI's own routes: GET /models (folder keys) and /models/{folder} (files, nested ones as
`sub/file`, exactly what the loaders list), GET /object_info (class names), GET /system_stats. The
studio's pre-flight (app/studio/checks/preflight.py) compares a filled workflow with this before
paying for a run. Folders that hold no models (custom_nodes, configs) are left out. Errors are
WorkerErrors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from .comfy import ComfyClient
from .errors import ComfyProtocolError, InputError

NOT_MODEL_FOLDERS = frozenset({"custom_nodes", "configs"})


def wants_inventory(raw: object) -> bool:
    """True for `{"inventory": true}`; InputError when `inventory` is not true or not alone."""
    if not isinstance(raw, Mapping) or "inventory" not in raw:
        return False
    if raw["inventory"] is not True:
        raise InputError("inventory", "must be true", "true", raw["inventory"])
    others = sorted(set(raw) - {"inventory"})
    if others:
        raise InputError(
            "inventory",
            f"comes with {', '.join(map(repr, others))}",
            '{"inventory": true} alone (it runs no workflow)',
        )
    return True


async def _get_json(client: ComfyClient, path: str) -> object:
    try:
        async with client.session.get(client.base + path) as r:
            if r.status != 200:
                raise ComfyProtocolError(f"GET {path} answered HTTP {r.status}")
            return await r.json()
    except aiohttp.ClientError as e:
        raise ComfyProtocolError(f"GET {path} failed ({type(e).__name__})") from None


async def collect_inventory(client: ComfyClient) -> dict:
    """The inventory answer (ComfyUI must be ready: the caller waited for it)."""
    stats, folders, object_info = await asyncio.gather(
        _get_json(client, "/system_stats"),
        _get_json(client, "/models"),
        _get_json(client, "/object_info"),
    )
    if not isinstance(folders, list) or not isinstance(object_info, Mapping):
        raise ComfyProtocolError("GET /models or /object_info did not answer a list / an object")
    names = [str(f) for f in folders if str(f) not in NOT_MODEL_FOLDERS]
    files = await asyncio.gather(*(_get_json(client, f"/models/{name}") for name in names))
    models = {
        name: sorted(str(x) for x in listed)
        for name, listed in zip(names, files, strict=True)
        if isinstance(listed, list)
    }
    system = stats.get("system", {}) if isinstance(stats, Mapping) else {}
    return {
        "inventory": {
            "models": models,
            "nodes": sorted(str(k) for k in object_info),
            "comfyui_version": system.get("comfyui_version")
            if isinstance(system, Mapping)
            else None,
        }
    }


async def model_folder(client: ComfyClient, filename: str) -> str:
    """The models folder (ComfyUI's /models keys) that lists `filename`, or "" when none does."""
    folders = await _get_json(client, "/models")
    for name in folders if isinstance(folders, list) else ():
        if str(name) in NOT_MODEL_FOLDERS:
            continue
        listed = await _get_json(client, f"/models/{name}")
        if isinstance(listed, list) and filename in listed:
            return str(name)
    return ""
