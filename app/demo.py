"""Demo mode: the local stack (`emulators.stack`: one ComfyUI emulator per worker, the local RunPod
control plane, real worker processes) started for a studio that has no RunPod credentials.

`start_local_stack(settings)` is a context manager yielding the running `emulators.stack.LocalStack`
(`.base_url`, `.api_key`: a fresh random key the studio treats as a secret like a real one).
`banner()` is the page's demo note: what the synthetic videos show (the size they are scaled to is
the emulator's own `video_max_side`, read here, not written twice) and that demo jobs end with the
studio (the local stack stops with it, so a restart finds them LOST).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emulators.comfyui.config import VIDEO_MAX_SIDE
from emulators.stack import LocalStack, StackConfig
from emulators.volume import DEMO_EXTRAS, RIFE_SCHEMA, write_volume


def banner() -> str:
    """The demo mode's note on the page (Markdown)."""
    side = VIDEO_MAX_SIDE
    return (
        "**Demo mode:** no RunPod credentials are set, so this studio runs the local stack "
        "(ComfyUI emulator + local RunPod control plane + the real worker). Videos are "
        "**synthetic**, not Wan 2.2 output: they show your prompt as a caption, your start/end "
        "images, motion from your seed, and your frame count and fps, scaled down to "
        f"{side} px on the long side (aspect ratio kept). Timings are emulated. "
        "**Demo jobs end with the studio:** the local stack stops with it, so a job still "
        "running when the studio restarts is lost."
    )


@contextlib.contextmanager
def start_local_stack(settings: Any, **overrides: Any) -> Iterator[LocalStack]:
    """The stack; its ComfyUI reads a placeholder volume with every catalog model, a few example
    LoRAs and upscale models (emulators/volume.py), and has the smooth-motion (RIFE) node."""
    with tempfile.TemporaryDirectory(prefix="wanpod-demo-volume-") as root:
        paths = write_volume(Path(root), DEMO_EXTRAS)
        volume = ("--extra-model-paths-config", str(paths), "--extra-schema", str(RIFE_SCHEMA))
        config = StackConfig(
            workers=int(settings.demo_workers),
            step_delay=float(settings.demo_step_delay),
            **{"comfy_args": volume, **overrides},
        )
        with LocalStack(config) as stack:
            yield stack
