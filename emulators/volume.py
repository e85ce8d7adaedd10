"""A placeholder network volume for the ComfyUI emulator: 0-byte files named like real models.

`write_volume(root, extra)` writes every model file the catalog's templates need (each pipeline in
each of its modes), plus `extra` ({folder: [names]}, nested names as `sub/file`), under
`root/models/<folder>/`, and an `extra_model_paths.yaml` that maps those folders, the way a RunPod
network volume is mounted for ComfyUI. The emulator started with `--extra-model-paths-config` on
that file lists exactly these files in `/models` and its loaders' options, as real ComfyUI does.

`DEMO_EXTRAS` is what the no-credentials demo's volume adds: a few user LoRAs (a high/low pair, a
nested single, a single) and two upscale models, so the studio's LoRA picker and upscale option
have something to offer. `RIFE_SCHEMA` is the frame-interpolation node pack's recorded schema
(`--extra-schema`): an emulator given it has the smooth-motion node, as an endpoint with
ComfyUI-Frame-Interpolation installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from workflows.catalog import PACKAGE, load_catalog
from workflows.poststeps import post_steps

RIFE_SCHEMA = PACKAGE / "data" / "comfyui_frame_interpolation.object_info.json"
DEMO_EXTRAS: dict[str, list[str]] = {
    "loras": [
        "demo_motion_boost_high_noise.safetensors",
        "demo_motion_boost_low_noise.safetensors",
        "styles/demo_film_grain.safetensors",
        "demo_soft_light.safetensors",
    ],
    "upscale_models": [post_steps().upscale.default_model, "4x-UltraSharp.pth"],
}


def catalog_files() -> dict[str, list[str]]:
    """{folder: [file names]} of every catalog template in every mode it offers."""
    catalog = load_catalog()
    out: dict[str, list[str]] = {}
    for f in catalog.files_for(list(catalog.ids()), ["turbo", "quality"]):
        out.setdefault(f.folder, []).append(f.name)
    return out


def write_volume(root: Path, extra: Mapping[str, Sequence[str]] | None = None) -> Path:
    """The volume under `root` (see the module doc); returns its extra_model_paths.yaml."""
    files = catalog_files()
    for folder, names in (extra or {}).items():
        files.setdefault(folder, []).extend(names)
    for folder, names in files.items():
        for name in dict.fromkeys(names):
            path = root / "models" / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    lines = ["volume:", f"  base_path: {root}"] + [f"  {f}: models/{f}/" for f in files]
    yaml = root / "extra_model_paths.yaml"
    yaml.write_text("\n".join(lines) + "\n")
    return yaml
