"""Emulator settings: folders, schema, pace and the fault knobs.

`EmulatorConfig` is built once from the command line (or by a test) and its *knobs* can be changed
at run time through `GET/POST /emulator/config` (JSON with the same names; POST merges and returns
the whole new config). Folder, schema, model-path and upload-size settings are fixed at start.

Knobs (all optional, `None`/0 means off):
- step_delay (s): pause before each sampler step / upscale tile `progress` message.
- node_delay (s): time every executed node takes (besides sampler steps).
- startup_delay (s): the process binds its port only after this long (real ComfyUI does not listen
  until it is ready); read at start by the CLI / `serve()` / `EmulatorThread`.
- ws_drop_after (int N): the server closes each websocket right after sending it its N-th message
  (the count starts at 1 with the `status` sent on connect, per connection).
- ws_drop_after_type (message type, e.g. "execution_success"): the server closes a websocket right
  after sending it a message of that type (every time one is sent).
- ws_drop_unnoticed_s (s): a drop by ws_drop_after(_type) is a network failure instead of a close:
  the connection is cut at once, but the server notices only this long after, and its socket
  table then forgets the clientId whichever socket holds it now (ComfyUI's `sockets.pop(sid)`):
  a client that reconnected meanwhile with the same clientId gets its `status` / `executing`
  on connect and nothing after (real ComfyUI after a client-side drop).
- ws_refuse_after (int N): once N websockets have been accepted (counted from when the knob is
  set), further upgrades are answered HTTP 503 while HTTP keeps working.
- crash_at_node (node id): `os._exit(1)` when that node starts (right after its `executing` message
  has been sent).
- error_at_node (node id): that node fails with `execution_error` (recorded shape) when it starts.
- hold_at_node (node id): that node waits when it starts (right after its `executing` message)
  for as long as the knob names it; setting it to another id or null lets it run on (an
  interrupt ends the wait). Lets a test see a job at a node for certain, however fast it runs.
- output_bytes (int N): every mp4 written is padded with a trailing `free` box to exactly N bytes
  (it stays a valid, decodable mp4); ignored when the encoded file is already larger.
- encode_delay (s): SaveVideo's encode takes this long (the file exists, partly written, from its
  start, as PyAV writes it). Like the real encode it cannot be interrupted: an interrupt that
  lands meanwhile is seen only before the next node, so a prompt ending in SaveVideo succeeds.
- extra_output ({"filename", "subfolder", "type"} or null): every node that reports files also
  reports this one, as a custom node or a compromised ComfyUI could (e.g. `{"filename":
  "environ", "subfolder": "/proc/self", "type": "output"}`); nothing is written for it.
- video_max_side (int): encoded video frames are scaled down to fit this side (0 = full size).
- cache (bool): ComfyUI's classic output cache (identical re-runs are served from it).
- gc_stall (s): ComfyUI's end-of-job garbage collection: after a job, when 10 s have passed since
  the last one, the whole server stalls this long (0.29 s measured on the recording machine)
  before the final `status` / `executing {node: null}` go out. Default 0 (off).
- prompt_answer_delay (s): POST /prompt answers this long after it queued the prompt (a slow
  network or a loaded server): the prompt may start before its client has its id. Default 0.
- preview_method ("none" | "auto" | "latent2rgb" | "taesd"): anything but "none" makes samplers send
  a binary JPEG preview frame at every step, as ComfyUI's `--preview-method` does: type 4
  PREVIEW_IMAGE_WITH_METADATA before `progress` to clients that sent the `supports_preview_metadata`
  feature flag, else type 1 PREVIEW_IMAGE after it.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KNOBS: tuple[str, ...] = (
    "step_delay",
    "node_delay",
    "startup_delay",
    "ws_drop_after",
    "ws_drop_after_type",
    "ws_drop_unnoticed_s",
    "ws_refuse_after",
    "crash_at_node",
    "error_at_node",
    "hold_at_node",
    "output_bytes",
    "encode_delay",
    "extra_output",
    "video_max_side",
    "cache",
    "preview_method",
    "gc_stall",
    "prompt_answer_delay",
)


class ConfigError(ValueError):
    """A knob name or value that the emulator does not accept."""


def _opt_float(name: str, v: Any) -> float:
    if v is None:
        return 0.0
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ConfigError(f"{name}: expected a number of seconds, got {v!r}")
    try:
        f = float(v)
    except ValueError as e:
        raise ConfigError(f"{name}: expected a number of seconds, got {v!r}") from e
    if f < 0:
        raise ConfigError(f"{name}: must be >= 0, got {v!r}")
    return f


def _opt_int(name: str, v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise ConfigError(f"{name}: expected an integer or null, got {v!r}")
    try:
        i = int(v)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: expected an integer or null, got {v!r}") from e
    if i < 0:
        raise ConfigError(f"{name}: must be >= 0, got {v!r}")
    return i


def _opt_node(name: str, v: Any) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise ConfigError(f"{name}: expected a node id string or null, got {v!r}")
    return str(v)


def _file_ref(name: str, v: Any) -> dict[str, str] | None:
    if v is None:
        return None
    keys = ("filename", "subfolder", "type")
    if (
        not isinstance(v, Mapping)
        or set(v) != set(keys)
        or not all(isinstance(v[k], str) for k in keys)
    ):
        raise ConfigError(
            f"{name}: expected null or {{filename, subfolder, type}} strings, got {v!r}"
        )
    return {k: v[k] for k in keys}


def _bool(name: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "1", "false", "0"):
        return v.lower() in ("true", "1")
    raise ConfigError(f"{name}: expected true or false, got {v!r}")


def _choice(name: str, v: Any, allowed: tuple[str, ...]) -> str:
    v = "none" if v is None else v
    if v not in allowed:
        raise ConfigError(f"{name}: expected one of {list(allowed)}, got {v!r}")
    return str(v)


_COERCE = {
    "step_delay": _opt_float,
    "node_delay": _opt_float,
    "startup_delay": _opt_float,
    "ws_drop_after": _opt_int,
    "ws_drop_after_type": lambda n, v: None if v in (None, "") else str(v),
    "ws_drop_unnoticed_s": _opt_float,
    "ws_refuse_after": _opt_int,
    "crash_at_node": _opt_node,
    "error_at_node": _opt_node,
    "hold_at_node": _opt_node,
    "output_bytes": _opt_int,
    "encode_delay": _opt_float,
    "extra_output": _file_ref,
    "video_max_side": lambda n, v: _opt_int(n, v) or 0,
    "cache": _bool,
    "gc_stall": _opt_float,
    "prompt_answer_delay": _opt_float,
    "preview_method": lambda n, v: _choice(n, v, ("none", "auto", "latent2rgb", "taesd")),
}


VIDEO_MAX_SIDE = 320  # the long side the synthetic videos are scaled to, by default (px)


@dataclass
class EmulatorConfig:
    input_directory: Path | None = None  # None: a fresh folder under the system temp dir
    output_directory: Path | None = None
    temp_directory: Path | None = None
    schema_path: Path | None = None  # None: the shipped Wan 2.2 schema (emulators/data)
    # Custom node packs "installed": their node schemas are merged over the dump (--extra-schema).
    extra_schemas: list[Path] = field(default_factory=list)
    # With these, loader option lists and /models come from the model folders on disk.
    extra_model_paths: list[Path] = field(default_factory=list)
    base_directory: Path | None = None
    max_upload_size_mb: float = 100.0  # ComfyUI's --max-upload-size (request body limit, 413)
    step_delay: float = 0.05
    node_delay: float = 0.0
    startup_delay: float = 0.0
    ws_drop_after: int | None = None
    ws_drop_after_type: str | None = None
    ws_drop_unnoticed_s: float = 0.0
    ws_refuse_after: int | None = None
    ws_accepted: int = 0  # websockets accepted since ws_refuse_after was set (not a knob)
    crash_at_node: str | None = None
    error_at_node: str | None = None
    hold_at_node: str | None = None
    output_bytes: int | None = None
    encode_delay: float = 0.0
    extra_output: dict[str, str] | None = None
    video_max_side: int = VIDEO_MAX_SIDE
    cache: bool = True
    preview_method: str = "none"
    gc_stall: float = 0.0
    prompt_answer_delay: float = 0.0
    argv: list[str] = field(default_factory=list)
    # the temp folder this config made for the directories not given: removed by
    # `remove_own_folder()` when the server built on it stops (a copy made by `replace` owns none)
    own_folder: Path | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("input_directory", "output_directory", "temp_directory"):
            if getattr(self, name) is None:
                if self.own_folder is None:
                    self.own_folder = Path(tempfile.mkdtemp(prefix="wanpod-comfy-"))
                setattr(self, name, self.own_folder / name.split("_")[0])
        self.input_directory = Path(self.input_directory).resolve()
        self.output_directory = Path(self.output_directory).resolve()
        self.temp_directory = Path(self.temp_directory).resolve()
        for d in (self.input_directory, self.output_directory, self.temp_directory):
            d.mkdir(parents=True, exist_ok=True)
        self.update({k: getattr(self, k) for k in KNOBS})

    def knobs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KNOBS}

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and apply knob changes (all or nothing); return the knobs now in force."""
        unknown = sorted(set(changes) - set(KNOBS))
        if unknown:
            raise ConfigError(f"unknown knob(s) {unknown}; known: {list(KNOBS)}")
        coerced = {k: _COERCE[k](k, v) for k, v in changes.items()}
        for k, v in coerced.items():
            setattr(self, k, v)
        if "ws_refuse_after" in coerced:
            self.ws_accepted = 0
        return self.knobs()

    def replace(self, **kw: Any) -> EmulatorConfig:
        return dataclasses.replace(self, **kw)

    def remove_own_folder(self) -> None:
        """Remove the temp folder made for the directories not given (their files with it);
        nothing when every directory was given (the caller's folders stay)."""
        if self.own_folder is not None:
            shutil.rmtree(self.own_folder, ignore_errors=True)
            self.own_folder = None
