"""Model folders as ComfyUI's `folder_paths` sees them, from `--extra-model-paths-config` YAML
files (and `--base-directory`'s `models/`), re-scanned on every request.

Rules reproduced (fixture README, "Model folders and extra_model_paths.yaml"):
- top-level sections hold `base_path` (relative: against the yaml's folder; `~`/`$VARS` expanded),
  optional `is_default`, and folder keys whose value is one path or several, one per line;
- the legacy keys `clip` and `unet` map to `text_encoders` and `diffusion_models`;
- known folders keep their extension filter (`.safetensors .ckpt .pt .pt2 .bin .pth .pkl .sft`);
  an unknown key creates a new folder type with no filter (listed by `GET /models`);
- nested files are listed as `sub/file.safetensors`; lists are sorted;
- `GET /models/clip` and `/models/unet` give 404 (that route does not map the aliases).
"""

from __future__ import annotations

import os
from pathlib import Path

PT_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
LEGACY = {"clip": "text_encoders", "unet": "diffusion_models"}
STANDARD: list[tuple[str, list[str], set[str]]] = [
    ("checkpoints", ["checkpoints"], PT_EXTENSIONS),
    ("configs", ["configs"], {".yaml"}),
    ("loras", ["loras"], PT_EXTENSIONS),
    ("vae", ["vae"], PT_EXTENSIONS),
    ("text_encoders", ["text_encoders", "clip"], PT_EXTENSIONS),
    ("diffusion_models", ["unet", "diffusion_models"], PT_EXTENSIONS),
    ("clip_vision", ["clip_vision"], PT_EXTENSIONS),
    ("style_models", ["style_models"], PT_EXTENSIONS),
    ("embeddings", ["embeddings"], PT_EXTENSIONS),
    ("diffusers", ["diffusers"], {"folder"}),
    ("vae_approx", ["vae_approx"], PT_EXTENSIONS),
    ("controlnet", ["controlnet", "t2i_adapter"], PT_EXTENSIONS),
    ("gligen", ["gligen"], PT_EXTENSIONS),
    ("upscale_models", ["upscale_models"], PT_EXTENSIONS),
    ("custom_nodes", [], set()),
    ("hypernetworks", ["hypernetworks"], PT_EXTENSIONS),
    ("photomaker", ["photomaker"], PT_EXTENSIONS),
    ("classifiers", ["classifiers"], {""}),
    ("model_patches", ["model_patches"], PT_EXTENSIONS),
    ("audio_encoders", ["audio_encoders"], PT_EXTENSIONS),
]
STANDARD_FOLDERS = [name for name, _, _ in STANDARD]

# Loader inputs whose options are a model folder's file list.
LOADER_INPUTS: dict[tuple[str, str], str] = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("LoraLoader", "lora_name"): "loras",
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
}
EXTRA_OPTIONS = {("VAELoader", "vae_name"): ["pixel_space"]}
# model folders ComfyUI also reads under its output folder (CheckpointSave, LoraSave ... write
# there): <output>/checkpoints, <output>/clip (text_encoders), ...
OUTPUT_MODEL_FOLDERS = ("checkpoints", "clip", "vae", "diffusion_models", "loras")


class ModelFolders:
    def __init__(self) -> None:
        self.folders: dict[str, tuple[list[Path], set[str]]] = {}

    @classmethod
    def from_config(
        cls,
        yaml_paths: list[Path],
        base_directory: Path | None = None,
        output_directory: Path | None = None,
    ) -> ModelFolders:
        mf = cls()
        models = Path(base_directory) / "models" if base_directory else None
        for name, subdirs, exts in STANDARD:
            paths = [models / d for d in subdirs] if models else []
            mf.folders[name] = (paths, set(exts))
        for y in yaml_paths:
            mf.load_yaml(Path(y))
        if output_directory is not None:  # ComfyUI's main.py: where its save nodes put models
            for key in OUTPUT_MODEL_FOLDERS:
                mf.add(key, Path(output_directory) / key)
        return mf

    def add(self, key: str, path: Path) -> None:
        name = LEGACY.get(key, key)
        if name in self.folders:
            self.folders[name][0].append(path)
        else:
            self.folders[name] = ([path], set())

    def load_yaml(self, path: Path) -> None:
        import yaml

        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        yaml_dir = path.resolve().parent
        for section in config.values():
            if not isinstance(section, dict):
                continue
            conf = dict(section)
            base = conf.pop("base_path", None)
            if base:
                base = os.path.expandvars(os.path.expanduser(str(base)))
                if not os.path.isabs(base):
                    base = str((yaml_dir / base).resolve())
            conf.pop("is_default", None)
            for key, value in conf.items():
                for line in str(value).split("\n"):
                    if not line:
                        continue
                    if base:
                        full = os.path.join(base, line)
                    elif not os.path.isabs(line):
                        full = str(yaml_dir / line)
                    else:
                        full = line
                    self.add(key, Path(os.path.normpath(full)))

    def names(self) -> list[str]:
        return list(self.folders)

    def files(self, folder: str) -> list[str]:
        paths, exts = self.folders[folder]
        found: set[str] = set()
        for d in paths:
            if not d.is_dir():
                continue
            for dirpath, _subdirs, filenames in os.walk(d, followlinks=True):
                for f in filenames:
                    rel = os.path.relpath(os.path.join(dirpath, f), d)
                    if not exts or os.path.splitext(rel)[-1].lower() in exts:
                        found.add(rel)
        return sorted(found)
