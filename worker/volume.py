"""Network volume checks for start.sh: where the volume is, how many model files each ComfyUI
folder holds, and warnings for Wan 2.2 files that are missing or sit in the wrong folder.

`python -m worker.volume [--roots A:B] [--write-yaml PATH]` prints the report (never fails the
start: a worker without a volume can still run workflows whose models are baked into the image).
Roots default to WANPOD_VOLUME_PATHS or `/runpod-volume:/workspace` (serverless, pods).
`render_yaml(roots, cached)` writes ComfyUI's extra_model_paths.yaml for those roots; the shipped
`worker/extra_model_paths.yaml` is `render_yaml(DEFAULT_ROOTS)` (a test keeps them equal).

RunPod's cached models: when an endpoint caches a Hugging Face model, RunPod mounts it as a
Hugging Face cache at `/runpod-volume/huggingface-cache/hub/models--ORG--NAME/snapshots/REV/`
(`find_cached` looks under every root). Each `split_files/<folder>/` found there (the layout of
the Comfy-Org repackaged repositories) becomes a section of the generated yaml, so ComfyUI loads
those files from local disk without a network volume; the report names each one.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workflows.catalog import load_catalog

from .settings import TRUE_WORDS, VOLUME_ROOTS

DEFAULT_ROOTS = VOLUME_ROOTS
ROOT_KEYS = {"/runpod-volume": "runpod_volume", "/workspace": "workspace"}
MODEL_FOLDERS = (
    "checkpoints",
    "diffusion_models",
    "unet",
    "text_encoders",
    "clip",
    "vae",
    "loras",
    "upscale_models",
    "clip_vision",
    "audio_encoders",
    "controlnet",
    "embeddings",
)
ALIASES = {"unet": "diffusion_models", "clip": "text_encoders"}
MODEL_EXTS = {".safetensors", ".ckpt", ".pt", ".pt2", ".bin", ".pth", ".pkl", ".sft", ".gguf"}

# The files the official Wan 2.2 templates load, by ComfyUI folder (from the catalog, the one list).
WAN22_FILES: dict[str, str] = {f.name: f.folder for f in load_catalog().sources.values()}


def expected_folder(name: str) -> str | None:
    """The folder a Wan-family file belongs in, from its name (None: not a Wan file we know)."""
    if name in WAN22_FILES:
        return WAN22_FILES[name]
    n = name.lower()
    if "lora" in n or "lightx2v" in n:
        return "loras" if "wan" in n else None
    if n.startswith("umt5"):
        return "text_encoders"
    if "wan" in n and "vae" in n:
        return "vae"
    if n.startswith("clip_vision_h"):
        return "clip_vision"
    if n.startswith("wav2vec2"):
        return "audio_encoders"
    if re.match(r"^wan2?\.?[12]", n) and re.search(r"(t2v|i2v|ti2v|flf2v|s2v|vace|fun|animate)", n):
        return "diffusion_models"
    return None


HF_CACHE = Path("huggingface-cache") / "hub"


@dataclass(frozen=True)
class CachedModel:
    """One cached Hugging Face snapshot with ComfyUI folders under split_files/."""

    repo: str  # ORG/NAME
    revision: str
    base: Path  # .../snapshots/REV/split_files
    files: dict[str, list[str]]  # folder -> model file names


def _model_files(d: Path) -> list[str]:
    return sorted(
        str(p.relative_to(d))
        for p in d.rglob("*")
        if p.is_file() and p.suffix.lower() in MODEL_EXTS
    )


def find_cached(roots: Sequence[str]) -> list[CachedModel]:
    """Cached models with split_files/<folder>/ under `<root>/huggingface-cache/hub` (the
    revision refs/main names when there is one, else every snapshot)."""
    out: list[CachedModel] = []
    for r in roots:
        hub = Path(r) / HF_CACHE
        if not hub.is_dir():
            continue
        for repo_dir in sorted(hub.glob("models--*")):
            _, org, name = [*repo_dir.name.split("--", 2), "", ""][:3]
            ref = repo_dir / "refs" / "main"
            main = ref.read_text(errors="replace").strip() if ref.is_file() else ""
            snaps = sorted((repo_dir / "snapshots").glob("*"))
            for snap in [s for s in snaps if s.name == main] or snaps:
                base = snap / "split_files"
                files = {
                    d.name: _model_files(d) for d in sorted(base.glob("*")) if d.is_dir()
                }  # fmt: skip
                files = {k: v for k, v in files.items() if v}
                if files:
                    out.append(CachedModel(f"{org}/{name}", snap.name, base, files))
    return out


@dataclass
class Report:
    root: Path | None
    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cached: list[CachedModel] = field(default_factory=list)


def find_root(roots: Sequence[str]) -> Path | None:
    for r in roots:
        p = Path(r)
        if p.is_dir():
            return p
    return None


def scan(root: Path | None, cached: Sequence[CachedModel] = ()) -> Report:
    rep = Report(root, cached=list(cached))
    located: dict[str, list[str]] = {}
    for c in cached:
        for folder, names in c.files.items():
            for n in names:
                located.setdefault(Path(n).name, []).append(ALIASES.get(folder, folder))
    if root is None:
        return rep
    models = root / "models"
    for folder in MODEL_FOLDERS:
        d = models / folder
        names = _model_files(d) if d.is_dir() else []
        rep.counts[folder] = len(names)
        rep.files[folder] = names
        for n in names:
            located.setdefault(Path(n).name, []).append(folder)
    if models.is_dir():  # model files outside any known folder
        for p in models.iterdir():
            if p.is_file() and p.suffix.lower() in MODEL_EXTS and expected_folder(p.name):
                rep.warnings.append(
                    f"{p.name} is directly in models/; move it to models/{expected_folder(p.name)}/"
                )
    for name, folders in sorted(located.items()):
        want = expected_folder(name)
        if want is None:
            continue
        ok = {want} | {a for a, t in ALIASES.items() if t == want}
        for f in folders:
            if f not in ok:
                rep.warnings.append(
                    f"{name} is in models/{f}/ but ComfyUI's Wan loaders look in models/{want}/; "
                    "move it there"
                )
    missing = [n for n in WAN22_FILES if n not in located]
    if missing:
        rep.warnings.append(
            f"{len(missing)} of the {len(WAN22_FILES)} Wan 2.2 template files are missing "
            "(templates that need them will fail with a 'not available' error; "
            "`python -m worker.provision` or the provision job downloads them): "
            + ", ".join(f"{WAN22_FILES[n]}/{n}" for n in missing)
        )
    return rep


YAML_HEADER = """\
# ComfyUI extra model paths for WanPod workers: the network volume is searched under both roots.
# /runpod-volume is where serverless workers mount a network volume; /workspace is where pods do.
# Keys are ComfyUI folder names. Wan 2.2 needs diffusion_models, text_encoders, vae, loras (and
# clip_vision / audio_encoders for some variants); unet and clip are the legacy names of the same
# folders (worker-comfyui's layout), so volumes made for it keep working.
"""


def render_yaml(roots: Sequence[str], cached: Sequence[CachedModel] = ()) -> str:
    out = YAML_HEADER.splitlines()
    for i, root in enumerate(roots):
        key = ROOT_KEYS.get(root) or f"volume_{i}"
        out.append(f"{key}:")
        out.append(f"  base_path: {root}")
        out += [f"  {f}: models/{f}/" for f in MODEL_FOLDERS]
        out.append("")
    for i, c in enumerate(cached):
        out.append(f"# RunPod cached model {c.repo} (revision {c.revision})")
        out.append(f"hf_cache_{i}:")
        out.append(f"  base_path: {c.base}")
        out += [f"  {f}: {f}/" for f in c.files]
        out.append("")
    return "\n".join(out[:-1] if out[-1] == "" else out) + "\n"


def print_report(rep: Report, debug: bool, out=sys.stdout) -> None:
    for c in rep.cached:
        counts = ", ".join(f"{f} {len(n)}" for f, n in c.files.items())
        print(f"volume: cached model {c.repo} (revision {c.revision[:12]}): {counts} "
              f"file(s) from {c.base}", file=out)  # fmt: skip
        if debug:
            for f, names in c.files.items():
                for n in names:
                    print(f"volume:     {f}/{n}", file=out)
    if rep.root is None:
        print(
            "volume: no network volume found; models must be in the image (/comfyui/models)"
            + (" or a cached model" if rep.cached else ""),
            file=out,
        )
        for w in rep.warnings:
            print(f"volume: WARNING: {w}", file=out)
        return
    total = sum(rep.counts.values())
    print(f"volume: {rep.root} ({total} model files)", file=out)
    for folder in MODEL_FOLDERS:
        print(f"volume:   models/{folder}: {rep.counts.get(folder, 0)}", file=out)
        if debug:
            for n in rep.files.get(folder, []):
                print(f"volume:     {n}", file=out)
    for w in rep.warnings:
        print(f"volume: WARNING: {w}", file=out)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    ap = argparse.ArgumentParser(prog="python -m worker.volume")
    ap.add_argument("--roots", default=env.get("WANPOD_VOLUME_PATHS") or ":".join(DEFAULT_ROOTS))
    ap.add_argument("--write-yaml", help="write extra_model_paths.yaml for the roots here")
    args = ap.parse_args(argv)
    roots = [r for r in args.roots.split(":") if r]
    try:
        cached = find_cached(roots)
    except OSError as e:  # a volume that cannot be read: its models/ folders are still listed
        print(f"volume: WARNING: cached models not read ({type(e).__name__}: {e})", flush=True)
        cached = []
    if args.write_yaml:
        Path(args.write_yaml).write_text(render_yaml(roots, cached))
    try:
        root = find_root(roots)
        debug = (env.get("NETWORK_VOLUME_DEBUG") or "").strip().lower() in TRUE_WORDS
        print_report(scan(root, cached), debug)
    except OSError as e:  # the report only: the yaml is written
        print(f"volume: WARNING: the volume could not be scanned ({type(e).__name__}: {e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
