"""The node schema: ComfyUI's `GET /object_info` dump, loaded once.

The default is `emulators/data/object_info_wan22.json.gz`: the recorded
`object_info_with_wan_placeholders.json` (real ComfyUI 0.3.64 with the Wan 2.2 placeholder model
files, so the official Wan templates validate) merged with the 18 audio node schemas that the
recording machine lacked (`object_info_audio_nodes_torchaudio_stub.json`). Any other dump can be
given with `--schema PATH` (plain or gzipped JSON).

`--extra-schema PATH` (repeatable) stands for an installed custom node pack: the node schemas of
that file (an /object_info dump, or `{"nodes": {...}}` with its provenance beside, like
workflows/data/comfyui_frame_interpolation.object_info.json) are merged over the dump, and nodes.py
runs the ones it knows (RIFE VFI).

Input specs are `[type, options?]`: `type` is a string ("INT", "IMAGE", "COMBO" for V3 combos) or a
list of allowed values (a legacy COMBO, validated at /prompt).
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import EXTRA_OPTIONS, LOADER_INPUTS, STANDARD_FOLDERS, ModelFolders

DEFAULT_SCHEMA = Path(__file__).resolve().parent.parent / "data" / "object_info_wan22.json.gz"

# Loaders whose option list is the live list of files in the input folder; validation only checks
# that the named file exists (their VALIDATE_INPUTS), which is what INPUT_FILE_COMBOS drives.
INPUT_FILE_COMBOS: dict[str, str] = {
    "LoadImage": "image",
    "LoadImageMask": "image",
    "LoadAudio": "audio",
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
AUDIO_EXTENSIONS = (".wav", ".mp3", ".ogg", ".flac", ".aiff", ".aif", ".m4a", ".opus")
FILE_KIND = {"image": ("image", IMAGE_EXTENSIONS), "audio": ("audio", AUDIO_EXTENSIONS)}


# Files the recording session put in its model folders to see how they are listed; they are no
# part of any ComfyUI install, so the loaders' option lists leave them out.
RECORDING_ARTEFACTS = ("probe_in_", "probe_subdir/")


def _artefact(option: object) -> bool:
    return isinstance(option, str) and option.startswith(RECORDING_ARTEFACTS)


def _options(val: object) -> list[Any] | None:
    """The option list of an input spec (legacy `[[...], {}]` or V3 `["COMBO", {"options"}]`)."""
    if not isinstance(val, list) or not val:
        return None
    if isinstance(val[0], list):
        return val[0]
    opts = val[1].get("options") if len(val) > 1 and isinstance(val[1], dict) else None
    return opts if isinstance(opts, list) else None


def without_artefacts(nodes: dict[str, Any]) -> dict[str, Any]:
    """The schema with recording artefacts left out of every option list; nodes without any
    are shared, not copied."""
    out = dict(nodes)
    for cls, info in nodes.items():
        cats = [c for c in (info.get("input") or {}).values() if isinstance(c, dict)]
        if not any(_artefact(o) for c in cats for v in c.values() for o in _options(v) or ()):
            continue
        info = out[cls] = copy.deepcopy(info)
        for cat in info["input"].values():
            for val in cat.values() if isinstance(cat, dict) else ():
                options = _options(val)
                if options is not None:
                    options[:] = [o for o in options if not _artefact(o)]
    return out


def load_schema_file(path: Path | None) -> dict[str, Any]:
    """The parsed dump; cached per file, so many in-process emulators share one (read-only) copy."""
    p = (Path(path) if path is not None else DEFAULT_SCHEMA).resolve()
    st = p.stat()
    return _load(str(p), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
    p = Path(path)
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    data = json.loads(raw)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{p}: not an /object_info dump (a JSON object of node schemas)")
    return data


def with_extra_schemas(nodes: dict[str, Any], paths: list[Path]) -> dict[str, Any]:
    """`nodes` plus the node schemas of each extra file (a new dict; the cached one is shared)."""
    if not paths:
        return nodes
    merged = dict(nodes)
    for path in paths:
        data = load_schema_file(Path(path))
        extra = data["nodes"] if isinstance(data.get("nodes"), dict) else data
        merged.update({k: v for k, v in extra.items() if isinstance(v, dict) and "input" in v})
    return merged


@dataclass(frozen=True)
class InputSpec:
    name: str
    category: str  # required | optional | hidden
    type: Any  # str or list (legacy COMBO options)
    options: dict[str, Any]

    @property
    def info(self) -> list[Any]:
        """The spec as ComfyUI echoes it in `extra_info.input_config`."""
        return [self.type, self.options]


class Schema:
    """Node schemas; with `models`, loader option lists come from the model folders on disk."""

    def __init__(
        self, nodes: dict[str, Any], input_directory: Path, models: ModelFolders | None = None
    ) -> None:
        self.nodes = without_artefacts(nodes)
        self.input_directory = Path(input_directory)
        self.models = models

    def _model_options(self, class_type: str, name: str) -> list[str] | None:
        folder = LOADER_INPUTS.get((class_type, name))
        if self.models is None or folder is None or folder not in self.models.folders:
            return None
        return self.models.files(folder) + EXTRA_OPTIONS.get((class_type, name), [])

    def has(self, class_type: str) -> bool:
        return class_type in self.nodes

    def is_output(self, class_type: str) -> bool:
        return bool(self.nodes.get(class_type, {}).get("output_node", False))

    def outputs(self, class_type: str) -> list[str]:
        return list(self.nodes[class_type].get("output", []))

    def inputs(self, class_type: str) -> dict[str, InputSpec]:
        """required + optional inputs (what validation walks), in schema order."""
        out: dict[str, InputSpec] = {}
        spec = self.nodes[class_type].get("input", {})
        for cat in ("required", "optional"):
            for name, val in (spec.get(cat) or {}).items():
                if isinstance(val, list) and val:
                    typ = val[0]
                    opts = val[1] if len(val) > 1 and isinstance(val[1], dict) else {}
                else:
                    typ, opts = val, {}
                if class_type in INPUT_FILE_COMBOS and INPUT_FILE_COMBOS[class_type] == name:
                    typ = self.input_files(name)
                files = self._model_options(class_type, name)
                if files is not None:
                    if isinstance(typ, list):
                        typ = files
                    else:
                        opts = {**opts, "options": files}
                out[name] = InputSpec(name, cat, typ, opts)
        return out

    def input_spec(self, class_type: str, name: str) -> InputSpec | None:
        return self.inputs(class_type).get(name)

    def input_files(self, kind: str = "image") -> list[str]:
        """Top-level image (or audio) files of the input folder (the loader's option list)."""
        d = self.input_directory
        exts = FILE_KIND.get(kind, FILE_KIND["image"])[1]
        if not d.is_dir():
            return []
        return sorted(
            p.name
            for p in d.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in exts
        )

    def node_info(self, class_type: str) -> dict[str, Any]:
        info = self.nodes[class_type]
        model_inputs = [n for (c, n) in LOADER_INPUTS if c == class_type and self.models]
        if class_type in INPUT_FILE_COMBOS or model_inputs:
            info = copy.deepcopy(info)
            for cat in ("required", "optional"):
                for name, val in (info["input"].get(cat) or {}).items():
                    spec = self.inputs(class_type)[name]
                    if name == INPUT_FILE_COMBOS.get(class_type) or name in model_inputs:
                        if isinstance(spec.type, list):
                            val[0] = spec.type
                        elif len(val) > 1 and isinstance(val[1], dict):
                            val[1]["options"] = spec.options.get("options", [])
        return info

    def object_info(self) -> dict[str, Any]:
        return {k: self.node_info(k) for k in self.nodes}

    def model_folders(self) -> list[str]:
        return self.models.names() if self.models is not None else list(STANDARD_FOLDERS)

    def model_lists(self) -> dict[str, list[str]]:
        """Model folder -> file names: scanned from disk when model folders are configured,
        else read from the schema's loader option lists."""
        if self.models is not None:
            return {f: self.models.files(f) for f in self.models.names()}
        sources = {
            "diffusion_models": ("UNETLoader", "unet_name"),
            "text_encoders": ("CLIPLoader", "clip_name"),
            "vae": ("VAELoader", "vae_name"),
            "loras": ("LoraLoaderModelOnly", "lora_name"),
            "upscale_models": ("UpscaleModelLoader", "model_name"),
            "checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
            "clip_vision": ("CLIPVisionLoader", "clip_name"),
            "controlnet": ("ControlNetLoader", "control_net_name"),
            "embeddings": ("", ""),
        }
        out: dict[str, list[str]] = {}
        for folder, (cls, name) in sources.items():
            files: list[str] = []
            if cls in self.nodes:
                spec = self.input_spec(cls, name)
                if spec is not None:
                    opts = spec.type if isinstance(spec.type, list) else spec.options.get("options")
                    files = [f for f in (opts or []) if isinstance(f, str) and f != "pixel_space"]
            out[folder] = sorted(files)
        return out
