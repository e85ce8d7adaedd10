"""The catalog of WanPod's Wan 2.2 templates (workflows/catalog.yaml + templates/*.api.json).

`load_catalog() -> Catalog` reads the package data (relative to this package, no network) and
returns frozen dataclasses: per template its title, what it needs, its modes (with defaults), its
parameters (type, default per mode, min/max/step, choices, description, where each lands as
node+input), resolution presets on the model's grid, native fps, and the model files each mode needs
with their ComfyUI folders (read from the template's loader nodes) and where each is published
(Hub repository and path, from `model_sources`; every loaded file must have one).
`frames_for(seconds, fps)` is the 4n+1 snapping rule the form shows ("5.0 s -> 81 frames") and
`fill` applies.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from workflows.errors import ParamError, TemplateError

PACKAGE = Path(__file__).resolve().parent
MODES = ("turbo", "quality")
# Loader class -> {input: ComfyUI models folder}; used for "which file goes where".
LOADER_FOLDERS: dict[str, dict[str, str]] = {
    "UNETLoader": {"unet_name": "diffusion_models"},
    "CLIPLoader": {"clip_name": "text_encoders"},
    "DualCLIPLoader": {"clip_name1": "text_encoders", "clip_name2": "text_encoders"},
    "VAELoader": {"vae_name": "vae"},
    "LoraLoaderModelOnly": {"lora_name": "loras"},
    "LoraLoader": {"lora_name": "loras"},
    "CheckpointLoaderSimple": {"ckpt_name": "checkpoints"},
    "CLIPVisionLoader": {"clip_name": "clip_vision"},
    "UpscaleModelLoader": {"model_name": "upscale_models"},
    "AudioEncoderLoader": {"audio_encoder_name": "audio_encoders"},
}


def frames_for(seconds: float, fps: float) -> int:
    """Frames for a duration: the nearest 4n+1 to seconds*fps (ties go up), at least 1."""
    n = math.floor(seconds * fps / 4 + 0.5)
    return 4 * max(n, 0) + 1


def snap_frames(frames: int) -> int:
    """The nearest 4n+1 frame count (ties go up), at least 1."""
    return 4 * max((frames - 1 + 2) // 4, 0) + 1


@dataclass(frozen=True)
class Landing:
    node: str
    input: str

    def __str__(self) -> str:
        return f"{self.node}.{self.input}"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str  # text | string | int | float | choice | image
    description: str = ""
    default: Any = None  # scalar, or {mode: value}
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()
    lands: tuple[Landing, ...] = ()
    modes: tuple[str, ...] = MODES  # modes in which the parameter applies
    required: bool = False

    def default_for(self, mode: str) -> Any:
        if isinstance(self.default, Mapping):
            return self.default.get(mode)
        return self.default

    def allowed(self) -> str:
        """Human description of the allowed values (used in ParamError)."""
        if self.choices:
            shown = ", ".join(str(c) for c in self.choices[:12])
            return shown + (f", ... ({len(self.choices)} in all)" if len(self.choices) > 12 else "")
        parts = []
        if self.min is not None and self.max is not None:
            parts.append(f"{_num(self.min)} to {_num(self.max)}")
        if self.step is not None and self.type in ("int", "float") and self.step != 1:
            parts.append(f"in steps of {_num(self.step)}")
        return " ".join(parts) or self.type


@dataclass(frozen=True)
class Preset:
    label: str
    width: int
    height: int


@dataclass(frozen=True)
class ModelFile:
    name: str
    folder: str  # ComfyUI models/<folder>
    repo: str = field(default="", compare=False)  # Hugging Face Hub repository, e.g. Comfy-Org/...
    path: str = field(default="", compare=False)  # path in it: split_files/<folder>/<name>

    @property
    def url(self) -> str:
        """The file's public Hub address (what the official templates list)."""
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.path}"


@dataclass(frozen=True)
class Mode:
    name: str
    description: str
    bypass: Mapping[str, str] = field(default_factory=dict)  # node -> input that replaces it
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Template:
    id: str
    title: str
    family: str  # "14b" | "5b"
    needs: tuple[str, ...]
    optional: tuple[str, ...]
    modes: Mapping[str, Mode]
    default_mode: str
    unavailable_modes: Mapping[str, str]
    params: Mapping[str, ParamSpec]
    presets: tuple[Preset, ...]
    default_preset: str
    fps: int
    grid: int
    official: str
    workflow: Mapping[str, Any]  # the API-format template (turbo layout for the 14B); never mutate
    sources: Mapping[str, ModelFile] = field(default_factory=dict)  # file name -> where published

    @property
    def experts(self) -> int:
        return 2 if "split" in self.params else 1

    def param(self, name: str) -> ParamSpec:
        try:
            return self.params[name]
        except KeyError:
            raise ParamError(name, name, ", ".join(self.params)) from None

    def params_for(self, mode: str) -> list[ParamSpec]:
        """The parameters that apply in `mode`, in catalog order."""
        return [p for p in self.params.values() if mode in p.modes]

    def default(self, name: str, mode: str) -> Any:
        m = self.modes.get(mode)
        if m is not None and name in m.defaults:
            return m.defaults[name]
        return self.params[name].default_for(mode)

    def preset(self, label: str) -> Preset:
        for p in self.presets:
            if p.label == label:
                return p
        raise ParamError("resolution", label, ", ".join(p.label for p in self.presets))

    def frames_for(self, seconds: float, fps: float | None = None) -> int:
        return frames_for(seconds, fps or self.fps)

    def workflow_copy(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.workflow))

    def model_files(self, mode: str | None = None) -> tuple[ModelFile, ...]:
        """Model files the template needs in `mode` (default mode when None), with folders."""
        mode = mode or self.default_mode
        dropped = set(self.modes[mode].bypass) if mode in self.modes else set()
        out: list[ModelFile] = []
        for node_id, node in self.workflow.items():
            if node_id in dropped:
                continue
            for inp, folder in LOADER_FOLDERS.get(node["class_type"], {}).items():
                name = node["inputs"][inp]
                out.append(self.sources.get(name) or ModelFile(name, folder))
        return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Catalog:
    templates: Mapping[str, Template]
    sampler_names: tuple[str, ...]
    schedulers: tuple[str, ...]
    post_steps: Mapping[str, Any] = field(default_factory=dict)  # read by workflows/poststeps.py
    sources: Mapping[str, ModelFile] = field(default_factory=dict)  # every published file by name

    def __getitem__(self, template_id: str) -> Template:
        return self.get(template_id)

    def __iter__(self):
        return iter(self.templates.values())

    def get(self, template_id: str) -> Template:
        try:
            return self.templates[template_id]
        except KeyError:
            raise ParamError("template", template_id, ", ".join(self.templates)) from None

    def ids(self) -> tuple[str, ...]:
        return tuple(self.templates)

    def files_for(
        self, template_ids: tuple[str, ...] | list[str], modes: tuple[str, ...] | list[str]
    ) -> tuple[ModelFile, ...]:
        """The model files the given templates need in the given modes (a mode a template does not
        offer is skipped; a template that offers none of them is a ParamError)."""
        out: list[ModelFile] = []
        for tid in template_ids:
            t = self.get(tid)
            chosen = [m for m in modes if m in t.modes]
            if not chosen:
                raise ParamError("modes", ",".join(modes), f"{tid} offers {', '.join(t.modes)}")
            for m in chosen:
                out.extend(t.model_files(m))
        return tuple(dict.fromkeys(out))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _flatten(items: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _landing(text: str) -> Landing:
    node, _, inp = text.partition(".")
    return Landing(node, inp)


def _param(raw: Mapping[str, Any], fam: Mapping[str, Any], lists: Mapping[str, list]) -> ParamSpec:
    raw = dict(raw)
    name = raw["name"]
    default = raw.get("default")
    lo, hi, step = raw.get("min"), raw.get("max"), raw.get("step")
    if step == "grid":
        step = fam["grid"]
    if name in ("width", "height"):
        lo, hi = fam["size"]["min"], fam["size"]["max"]
        preset = next(p for p in fam["presets"] if p["label"] == fam["default_preset"])
        default = preset[name]
    if name == "frames":
        lo, hi = fam["frames"]["min"], fam["frames"]["max"]
        default = frames_for(5.0, fam["fps"])
    if default == "family":
        default = fam[name]
    choices = tuple(lists[raw["choices"]]) if isinstance(raw.get("choices"), str) else ()
    return ParamSpec(
        name=name,
        type=raw["type"],
        description=raw.get("description", ""),
        default=default,
        min=lo,
        max=hi,
        step=step,
        choices=choices,
        lands=tuple(_landing(t) for t in raw.get("lands", [])),
        modes=tuple(raw.get("modes", MODES)),
        required=bool(raw.get("required", False)),
    )


def _sources(raw: Mapping[str, Mapping[str, str]]) -> dict[str, ModelFile]:
    out: dict[str, ModelFile] = {}
    for name, src in raw.items():
        parts = src["path"].split("/")
        if len(parts) != 3 or parts[0] != "split_files" or parts[2] != name:
            raise TemplateError(f"model_sources: {name} path {src['path']!r} is not "
                                f"split_files/<folder>/{name}")  # fmt: skip
        out[name] = ModelFile(name, parts[1], src["repo"], src["path"])
    return out


def _text_default(p: ParamSpec, workflow: Mapping[str, Any]) -> ParamSpec:
    """Prompts default to the official template's example text (read from our template)."""
    if p.type != "text" or p.default is not None or not p.lands:
        return p
    land = p.lands[0]
    return dataclasses.replace(p, default=workflow[land.node]["inputs"][land.input])


@cache
def _load() -> Catalog:
    data = yaml.safe_load((PACKAGE / "catalog.yaml").read_text(encoding="utf-8"))
    lists = json.loads((PACKAGE / "data" / "sampler_options.json").read_text(encoding="utf-8"))
    sources = _sources(data.get("model_sources", {}))
    templates: dict[str, Template] = {}
    for tid, t in data["templates"].items():
        fam = data["families"][t["family"]]
        modes = {
            name: Mode(
                name,
                m.get("description", ""),
                dict(m.get("bypass", {})),
                dict(m.get("defaults", {})),
            )
            for name, m in t["modes"].items()
        }
        workflow = json.loads((PACKAGE / t["file"]).read_text(encoding="utf-8"))
        params = [_param(p, fam, lists) for p in _flatten(t["params"])]
        params = [_text_default(p, workflow) for p in params]
        for p in params:  # a parameter only applies in modes the template has
            if not set(p.modes) & set(modes):
                raise TemplateError(f"{tid}: parameter {p.name} applies in no mode")
        for p in params:
            for land in p.lands:
                node = workflow.get(land.node)
                if node is None or land.input not in node["inputs"]:
                    raise TemplateError(f"{tid}: {p.name} lands on missing {land}")
        templates[tid] = Template(
            id=tid,
            title=t["title"],
            family=t["family"],
            needs=tuple(t.get("needs", ())),
            optional=tuple(t.get("optional", ())),
            modes=modes,
            default_mode=t["default_mode"],
            unavailable_modes=dict(t.get("unavailable_modes", {})),
            params={p.name: p for p in params},
            presets=tuple(Preset(**p) for p in fam["presets"]),
            default_preset=fam["default_preset"],
            fps=int(fam["fps"]),
            grid=int(fam["grid"]),
            official=t.get("official", ""),
            workflow=workflow,
            sources=sources,
        )
        for node in workflow.values():  # every file a loader reads is published, in its folder
            for inp, folder in LOADER_FOLDERS.get(node["class_type"], {}).items():
                src = sources.get(node["inputs"][inp])
                if src is None or src.folder != folder:
                    raise TemplateError(
                        f"{tid}: {node['inputs'][inp]} ({folder}) has no model_sources entry "
                        f"with path split_files/{folder}/..."
                    )
    return Catalog(
        templates,
        tuple(lists["sampler_name"]),
        tuple(lists["scheduler"]),
        post_steps=data.get("post_steps", {}),
        sources=dict(sources),
    )


def load_catalog() -> Catalog:
    """The catalog (cached; treat it and its templates' workflows as read-only)."""
    return _load()


def frames_for_duration(template_id: str, seconds: float, fps: float | None = None) -> int:
    """Frames `fill` will use for `seconds` on this template (fps defaults to the model's)."""
    return load_catalog().get(template_id).frames_for(seconds, fps)


def markdown_table() -> str:
    """The docs/workflows.md table: templates, modes, defaults, model files (generated, tested)."""
    rows = [
        "| Template | Modes (default first) | Defaults | Model files (folder) |",
        "|---|---|---|---|",
    ]
    for t in load_catalog():
        modes = [t.default_mode, *[m for m in t.modes if m != t.default_mode]]
        mode_txt = "<br>".join(f"**{m}**: {t.modes[m].description}" for m in modes)
        for m, why in t.unavailable_modes.items():
            mode_txt += f"<br>~~{m}~~: not offered ({why})"
        fr = t.params["frames"].default
        res = t.preset(t.default_preset)
        defaults = (
            f"{res.width}x{res.height} ({t.default_preset}), {fr} frames at {t.fps} fps, "
            f"grid {t.grid}, sampler {t.default('sampler', t.default_mode)}/"
            f"{t.default('scheduler', t.default_mode)}"
        )
        files = {}
        for m in modes:
            for f in t.model_files(m):
                files.setdefault(f, []).append(m)
        file_txt = "<br>".join(
            f"`{f.name}` ({f.folder}{'' if len(ms) == len(modes) else ', ' + '/'.join(ms)})"
            for f, ms in files.items()
        )
        needs = ", ".join(t.needs) + (f"; optional {', '.join(t.optional)}" if t.optional else "")
        rows.append(
            f"| `{t.id}`: {t.title}<br>needs {needs} | {mode_txt} | {defaults} | {file_txt} |"
        )
    return "\n".join(rows)
