"""A real ComfyUI checkout as the ComfyUI under test (the optional real tier: `make test-comfyui`).

`COMFYUI_DIR` names the checkout (its `main.py`); the python that runs it is `COMFYUI_PYTHON`, else
`COMFYUI_DIR/venv/bin/python`, else `COMFYUI_DIR/.venv/bin/python`. Each instance runs with
`--cpu` on a free port, with its own input/output/temp/user folders and database under a temp
folder, and a placeholder model volume made there: a 0-byte file for every model file the recorded
schema's loaders list (tests/fixtures/comfyui/object_info_with_wan_placeholders.json), so real
`/prompt` accepts the Wan templates and their jobs fail at model load.

`RealComfyUI` has the emulator's `Comfy` interface (folders, `url`, `env()`, `settings()`,
`stop()`); `knobs()` with anything but the defaults skips the test: only the emulator has knobs.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from emulators.comfyui.models import EXTRA_OPTIONS, LOADER_INPUTS
from emulators.comfyui.schema import RECORDING_ARTEFACTS
from tests.helpers import WAN_SCHEMA, ServerProcess, free_port, load_json
from tests.worker.conftest import DEFAULT_KNOBS, Comfy

# ComfyUI starts in 7-11 s on an idle 2-core machine; allow for a busy one.
START_DEADLINE_S = 180.0


def comfyui_dir() -> Path | None:
    """The checkout under test, or None when the real tier is off (COMFYUI_DIR unset)."""
    value = os.environ.get("COMFYUI_DIR", "").strip()
    return Path(value).resolve() if value else None


def comfyui_python(checkout: Path) -> Path:
    """COMFYUI_PYTHON, else the checkout's own venv (venv/ or .venv/)."""
    explicit = os.environ.get("COMFYUI_PYTHON", "").strip()
    candidates = [Path(explicit)] if explicit else [
        checkout / "venv" / "bin" / "python", checkout / ".venv" / "bin" / "python"
    ]  # fmt: skip
    for c in candidates:
        if c.is_file():
            return c
    raise pytest.UsageError(
        f"no python for the ComfyUI checkout {checkout}: tried {', '.join(map(str, candidates))};"
        " set COMFYUI_PYTHON to the python that has ComfyUI's requirements installed"
    )


def placeholder_files(schema_path: Path = WAN_SCHEMA) -> dict[str, list[str]]:
    """Model folder -> the file names the recorded schema's loaders list (e.g. diffusion_models:
    wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors, ...), less the recording session's
    `probe_*` artefacts (no ComfyUI install has them; the emulator leaves them out too)."""
    schema = load_json(schema_path)
    folders: dict[str, set[str]] = {}
    for (cls, name), folder in LOADER_INPUTS.items():
        spec = ((schema.get(cls) or {}).get("input") or {}).get("required", {}).get(name)
        options = spec[0] if spec and isinstance(spec[0], list) else []
        builtin = EXTRA_OPTIONS.get((cls, name), [])
        files = [
            f
            for f in options
            if isinstance(f, str) and f not in builtin and not f.startswith(RECORDING_ARTEFACTS)
        ]
        if files:
            folders.setdefault(folder, set()).update(files)
    return {folder: sorted(files) for folder, files in folders.items()}


# The user's own models an endpoint may hold beside the catalog's (a LoRA pair, a nested single,
# two upscale models): what the LoRA and post-step tests fill workflows with.
USER_FILES = {
    "loras": [
        "style/my_style_high_noise.safetensors",
        "style/my_style_low_noise.safetensors",
        "detail.safetensors",
        "motion_boost_HIGH.safetensors",
        "motion_boost_LOW.safetensors",
    ],
    "upscale_models": ["RealESRGAN_x2plus.pth", "4x-UltraSharp.pth"],
}


def make_placeholder_volume(root: Path) -> Path:
    """0-byte model files under root/models/<folder>/ (the recorded schema's and USER_FILES) and
    an extra_model_paths.yaml for them."""
    lines = ["placeholders:", f"  base_path: {root}"]
    folders = placeholder_files()
    for folder, names in USER_FILES.items():
        folders[folder] = sorted({*folders.get(folder, []), *names})
    for folder, files in folders.items():
        for name in files:
            path = root / "models" / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        lines.append(f"  {folder}: models/{folder}")
    config = root / "extra_model_paths.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


class RealComfyUI(Comfy):
    """A real ComfyUI process (COMFYUI_DIR, --cpu) with its folders and placeholder models."""

    kind = "real"

    def __init__(self, root: Path, checkout: Path, wait: bool = True) -> None:
        self.root = root
        self.input, self.output, self.temp = root / "input", root / "output", root / "temp" / "temp"
        self.user = root / "user"
        for d in (self.input, self.output, self.temp, self.user):
            d.mkdir(parents=True, exist_ok=True)
        models = make_placeholder_volume(root / "volume")
        port = free_port()  # real ComfyUI cannot announce a port 0 bind: picked here
        self.pid_file = root / "comfyui.pid"
        argv = [
            str(comfyui_python(checkout)), "main.py", "--cpu", "--listen", "127.0.0.1",
            "--port", str(port), "--disable-auto-launch",
            "--input-directory", str(self.input), "--output-directory", str(self.output),
            "--temp-directory", str(root / "temp"), "--user-directory", str(self.user),
            "--database-url", f"sqlite:///{root / 'comfyui.db'}",
            "--extra-model-paths-config", str(models),
        ]  # fmt: skip
        self.server = ServerProcess(
            argv, port, ready_path="/system_stats", cwd=checkout, deadline_s=START_DEADLINE_S
        )
        self.server.start(wait=False)
        self.pid_file.write_text(str(self.server.proc.pid))
        if wait:
            self.server.wait_ready()

    def knobs(self, **knobs: object) -> dict:
        changed = sorted(k for k, v in knobs.items() if DEFAULT_KNOBS.get(k, object()) != v)
        if changed:
            pytest.skip(f"emulator knob(s) {', '.join(changed)}: real ComfyUI has no such control")
        return {}

    def env(self, **extra: str) -> dict[str, str]:
        # a real CPU run (and a busy machine) needs longer than the emulator's defaults
        return super().env(**{"COMFY_READY_TIMEOUT_S": "60", "JOB_TIMEOUT_S": "300", **extra})


_shared: RealComfyUI | None = None


def shared_real_comfyui() -> RealComfyUI:
    """One real ComfyUI for the whole test process (stopped at exit)."""
    global _shared
    if _shared is None:
        checkout = comfyui_dir()
        if checkout is None:
            pytest.skip("real-ComfyUI tier: COMFYUI_DIR is unset")
        root = Path(tempfile.mkdtemp(prefix="wanpod-real-comfyui-"))
        _shared = RealComfyUI(root, checkout)
        atexit.register(_stop_shared, root)
    return _shared


def _stop_shared(root: Path) -> None:
    if _shared is not None:
        _shared.stop()
    shutil.rmtree(root, ignore_errors=True)
