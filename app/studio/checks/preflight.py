"""Pre-flight: refuse a paid run the endpoint cannot do (a model file or node class it lacks).

The endpoint's inventory comes from a cheap job, `{"inventory": true}`, which the worker answers
without running a workflow: `{"inventory": {"models": {folder: [files]}, "nodes": [class names],
"comfyui_version": str | None}}` (folders are ComfyUI's `/models` keys; legacy `unet`/`clip` are
merged into `diffusion_models`/`text_encoders`).

- `parse_inventory(output)` -> `Inventory` or `InventoryUnavailable` (wrong shape).
- `missing(workflow, inventory)` -> `Missing` (files with the folder each belongs in, node
  classes): the filled workflow goes through `workflows.schema.check` against a schema built from
  the inventory (its loaders list exactly the endpoint's files), so "which file goes where" is the
  workflows part's rule, not a second copy. `template_gaps(template, mode, inventory)` does the
  same from the catalog's `model_files` for a whole template.
- `InventoryCache(path, fetch, max_age_s)`: the last answer, with the moment it was fetched, in a
  JSON file in the data folder; `get()` refetches when older than max_age_s; a fetch that is still
  running on the endpoint is polled again instead of sending a second job; a fetch another
  thread runs (the studio's warm-up) is waited for at most the caller's own timeout.
- `Preflight.check(workflow, uploads=None)`: refuses (InputError) an image input that is not a file
  the job uploads (`uploads`, checked in every mode), then raises `PreflightError` (one line per
  missing thing) when the inventory shows a gap. If the inventory cannot be had, mode "required"
  refuses and mode "best-effort" (default) lets the job go with a note; mode "off" skips. A refusal
  from a cache older than `recheck_s` is confirmed with a fresh inventory first (the file may just
  have been uploaded).
Settings (read once, `PreflightSettings.from_env`): WANPOD_PREFLIGHT (required | best-effort |
off), WANPOD_INVENTORY_MAX_AGE_S (default 3600), WANPOD_INVENTORY_TIMEOUT_S (default 300).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.endpoint.states import JobState
from app.environment import env_float
from app.errors import (
    ConfigError,
    EndpointError,
    InventoryPending,
    InventoryUnavailable,
    PreflightError,
    StudioError,
)
from app.studio.checks.inputs import check_inputs
from app.studio.files import replacing
from workflows.catalog import LOADER_FOLDERS
from workflows.poststeps import post_steps, unavailable
from workflows.schema import check as schema_check

ENV_VARS = ("WANPOD_PREFLIGHT", "WANPOD_INVENTORY_MAX_AGE_S", "WANPOD_INVENTORY_TIMEOUT_S")
MODES = ("required", "best-effort", "off")
INVENTORY_INPUT: dict[str, Any] = {"inventory": True}
ALIASES = {"unet": "diffusion_models", "clip": "text_encoders"}
FOLDERS = tuple(sorted({f for inputs in LOADER_FOLDERS.values() for f in inputs.values()}))


@dataclass(frozen=True)
class Inventory:
    models: Mapping[str, tuple[str, ...]]
    nodes: frozenset[str]
    comfyui_version: str | None = None
    fetched_at: float = 0.0

    @functools.cached_property
    def schema(self) -> dict[str, Any]:
        """`inventory_schema(self)`, built once per inventory (checked at every submit)."""
        return inventory_schema(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "models": {k: list(v) for k, v in self.models.items()},
            "nodes": sorted(self.nodes),
            "comfyui_version": self.comfyui_version,
        }


def parse_inventory(output: Any, fetched_at: float = 0.0) -> Inventory:
    """The worker's answer (`{"inventory": {...}}` or the inner object) as an Inventory."""
    inv = output.get("inventory", output) if isinstance(output, Mapping) else None
    if not isinstance(inv, Mapping):
        raise InventoryUnavailable("the worker's answer has no inventory object")
    models, nodes = inv.get("models"), inv.get("nodes")
    if not isinstance(models, Mapping) or not isinstance(nodes, list | tuple):
        raise InventoryUnavailable(
            "the worker's inventory lacks 'models' {folder: files} or 'nodes'"
        )
    merged: dict[str, list[str]] = {}
    for folder, files in models.items():
        if not isinstance(files, list | tuple):
            raise InventoryUnavailable(
                f"the worker's inventory lists {folder!r} without a file list"
            )
        merged.setdefault(ALIASES.get(str(folder), str(folder)), []).extend(map(str, files))
    version = inv.get("comfyui_version")
    return Inventory(
        models={k: tuple(dict.fromkeys(v)) for k, v in merged.items()},
        nodes=frozenset(map(str, nodes)),
        comfyui_version=str(version) if version else None,
        fetched_at=fetched_at,
    )


# -- comparison ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MissingFile:
    name: str
    folder: str
    nodes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.name} → models/{self.folder}/"


@dataclass(frozen=True)
class Missing:
    files: tuple[MissingFile, ...] = ()
    nodes: tuple[str, ...] = ()  # class names

    def __bool__(self) -> bool:
        return bool(self.files or self.nodes)

    def message(self) -> str:
        lines = []
        if self.files:
            lines.append(
                f"the endpoint lacks {len(self.files)} model file"
                f"{'s' if len(self.files) != 1 else ''} this job needs (put each in the folder "
                "shown, on the network volume):"
            )
            lines += [f"- {f}" for f in self.files]
        if self.nodes:
            lines.append(
                "the endpoint's ComfyUI lacks node classes (install the custom nodes that provide "
                'them in the worker image: --build-arg CUSTOM_NODES="<node packs>"): '
                + ", ".join(self.nodes)
            )
            if post_steps().interpolate.node in self.nodes:  # smooth motion: say which pack
                lines.append("- " + unavailable(()).get("interpolate", ""))
        return "pre-flight: " + "\n".join(lines)


def inventory_schema(inventory: Inventory) -> dict[str, Any]:
    """A minimal /object_info the schema check can read: the endpoint's classes, and for its
    loaders the endpoint's files as the option lists."""
    schema: dict[str, Any] = {}
    for cls in inventory.nodes:
        inputs = LOADER_FOLDERS.get(cls, {})
        required = {
            name: [list(inventory.models.get(folder, ()))] for name, folder in inputs.items()
        }
        schema[cls] = {"input": {"required": required}, "output_node": True}
    return schema


def missing(workflow: Mapping[str, Any], inventory: Inventory) -> Missing:
    """What `workflow` (API format) needs that the inventory does not have."""
    files: dict[tuple[str, str], list[str]] = {}
    nodes: dict[str, None] = {}
    models = {folder: inventory.models.get(folder, ()) for folder in FOLDERS}
    models.update(inventory.models)
    for problem in schema_check(workflow, inventory.schema, model_files=models):
        if problem.kind == "unknown_node" and problem.class_type:
            nodes[problem.class_type] = None
        elif problem.kind == "missing_model" and problem.node is not None:
            node = workflow[problem.node]
            folder = LOADER_FOLDERS[node["class_type"]][problem.input]
            name = str(node["inputs"][problem.input])
            files.setdefault((name, folder), []).append(problem.node)
    return Missing(
        files=tuple(MissingFile(n, f, tuple(ids)) for (n, f), ids in files.items()),
        nodes=tuple(nodes),
    )


def template_gaps(template: Any, mode: str, inventory: Inventory) -> tuple[MissingFile, ...]:
    """Model files a catalog template needs in `mode` that the endpoint lacks."""
    out = []
    for mf in template.model_files(mode):
        if mf.name not in inventory.models.get(mf.folder, ()):
            out.append(MissingFile(mf.name, mf.folder))
    return tuple(out)


# -- fetching and caching -------------------------------------------------------------------------
@dataclass(frozen=True)
class PreflightSettings:
    mode: str = "best-effort"
    max_age_s: float = 3600.0
    timeout_s: float = 300.0  # how long a submit waits for the inventory in mode "required"
    best_effort_wait_s: float = 20.0  # ... and in mode "best-effort"
    recheck_s: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PreflightSettings:
        mode = (env.get("WANPOD_PREFLIGHT") or "").strip().lower() or "best-effort"  # blank too
        if mode not in MODES:
            raise ConfigError(
                f"WANPOD_PREFLIGHT={mode!r} is not a mode; allowed: {', '.join(MODES)}"
            )
        return cls(
            mode=mode,
            max_age_s=env_float(
                env, "WANPOD_INVENTORY_MAX_AGE_S", 3600.0, 0.0, 7 * 86400.0, "seconds"
            ),
            timeout_s=env_float(env, "WANPOD_INVENTORY_TIMEOUT_S", 300.0, 5.0, 3600.0, "seconds"),
        )


def fetch_inventory(
    endpoint: Any,
    *,
    timeout_s: float = 300.0,
    poll_s: float = 1.0,
    job_id: str | None = None,
    on_sent: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Inventory:
    """Send the inventory job (or keep polling `job_id`) through the endpoint client."""
    if job_id is None:
        timeout_ms = int(max(timeout_s, 10.0) * 1000)  # RunPod takes more than 5 s only
        ref = endpoint.run(dict(INVENTORY_INPUT), policy={"executionTimeout": timeout_ms})
        job_id = ref.id
        if on_sent:
            on_sent(job_id)
    end = time.monotonic() + timeout_s
    while True:
        st = endpoint.status(job_id)
        if st.final:
            break
        if time.monotonic() >= end:
            raise InventoryPending(
                f"the inventory job {job_id} is still {st.state} after {timeout_s:g} s "
                "(a cold start?); it is checked again on the next run"
            )
        sleep(poll_s)
    if st.state is not JobState.COMPLETED:
        reason = st.error or st.state
        raise InventoryUnavailable(f"the inventory job ended {st.state}: {reason}")
    return parse_inventory(st.output, fetched_at=time.time())


@dataclass
class InventoryCache:
    """The endpoint's inventory in `path` (JSON with fetched_at), refetched when stale."""

    path: Path
    fetch: Callable[..., Inventory]  # fetch(job_id=, on_sent=, timeout_s=) -> Inventory
    max_age_s: float = 3600.0
    endpoint_key: str = ""  # the endpoint URL: a cache of another endpoint is ignored
    clock: Callable[[], float] = time.time
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _parsed: tuple[tuple[int, int, int], Inventory | None] | None = field(default=None, repr=False)

    def cached(self) -> Inventory | None:
        """The inventory in the file, parsed once per version of it (read at every submit)."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        version = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._parsed is not None and self._parsed[0] == version:
            return self._parsed[1]
        data = self._read()
        inv = None
        if data and "inventory" in data:
            try:
                inv = parse_inventory(data["inventory"], float(data.get("fetched_at", 0)))
            except InventoryUnavailable:
                inv = None
        self._parsed = (version, inv)
        return inv

    def age_s(self, inv: Inventory) -> float:
        return max(self.clock() - inv.fetched_at, 0.0)

    def get(self, force: bool = False, timeout_s: float = 300.0) -> Inventory:
        """The cached inventory if fresh, else a new one, waiting at most `timeout_s` for it
        (one fetch at a time; a job still running stays pending and is polled next time)."""
        inv = self.cached()
        if inv is not None and not force and self.age_s(inv) <= self.max_age_s:
            return inv  # fresh, even while another thread fetches
        if not self._lock.acquire(timeout=timeout_s):  # another thread's fetch (the warm-up)
            raise InventoryPending(
                f"the endpoint's inventory is still being fetched after {timeout_s:g} s "
                "(a cold start?); it is checked again on the next run"
            )
        try:
            return self._get_locked(force, timeout_s)
        finally:
            self._lock.release()

    def _get_locked(self, force: bool, timeout_s: float) -> Inventory:
        inv = self.cached()
        if inv is not None and not force and self.age_s(inv) <= self.max_age_s:
            return inv
        pending = (self._read() or {}).get("pending_job")
        try:
            fresh = self.fetch(job_id=pending, on_sent=self._remember_pending, timeout_s=timeout_s)
        except InventoryPending:
            raise
        except StudioError as exc:
            self._write({"pending_job": None})
            if not isinstance(exc, EndpointError):
                raise
            raise InventoryUnavailable(f"the inventory job failed: {exc}") from None
        except Exception as exc:  # the endpoint client's messages are secret-free
            self._write({"pending_job": None})
            raise InventoryUnavailable(f"the inventory job failed: {exc}") from None
        fresh = Inventory(fresh.models, fresh.nodes, fresh.comfyui_version, self.clock())
        self._write({"pending_job": None, "fetched_at": fresh.fetched_at,
                     "inventory": fresh.to_json()})  # fmt: skip
        return fresh

    def _remember_pending(self, job_id: str) -> None:
        self._write({"pending_job": job_id})

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("endpoint", "") != self.endpoint_key:
            return None
        return data

    def _write(self, update: Mapping[str, Any]) -> None:
        data = {**(self._read() or {}), **update, "endpoint": self.endpoint_key}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(self.path) as tmp:
            tmp.write_text(json.dumps(data, indent=1))


@dataclass(frozen=True)
class Verdict:
    ok: bool
    note: str = ""  # shown next to the job when the inventory could not be checked
    inventory: Inventory | None = None


class Preflight:
    """`check(workflow)` before /run: raises PreflightError, or returns a Verdict with a note."""

    def __init__(self, cache: InventoryCache, settings: PreflightSettings) -> None:
        self.cache = cache
        self.settings = settings

    def check(self, workflow: Mapping[str, Any], uploads: Iterable[str] | None = None) -> Verdict:
        """`uploads`: the image names the job uploads; every LoadImage must read one of them
        (checked whatever the mode: it needs no inventory; app/studio/checks/inputs.py)."""
        if uploads is not None:
            check_inputs(workflow, uploads)
        if self.settings.mode == "off":
            return Verdict(True, "pre-flight is off (WANPOD_PREFLIGHT=off)")
        s = self.settings
        wait = s.timeout_s if s.mode == "required" else min(s.best_effort_wait_s, s.timeout_s)
        try:
            inv = self.cache.get(timeout_s=wait)
            gap = missing(workflow, inv)
            if gap and self.cache.age_s(inv) > s.recheck_s:
                inv = self.cache.get(force=True, timeout_s=wait)
                gap = missing(workflow, inv)
        except InventoryUnavailable as exc:
            if self.settings.mode == "required":
                raise InventoryUnavailable(
                    f"pre-flight: cannot check the endpoint's models ({exc}); "
                    "WANPOD_PREFLIGHT=required refuses the job"
                ) from None
            return Verdict(True, f"not checked against the endpoint's models: {exc}")
        if gap:
            version = f" (ComfyUI {inv.comfyui_version})" if inv.comfyui_version else ""
            stamp = time.strftime("%H:%M UTC", time.gmtime(inv.fetched_at))
            raise PreflightError(gap, f"[endpoint inventory{version} of {stamp}]")
        return Verdict(True, "", inv)
