"""Demo mode: the local stack (`emulators.stack`: one ComfyUI emulator per worker, the local RunPod
control plane, real worker processes) started for a studio that has no RunPod credentials.

`start_local_stack(settings)` is a context manager yielding the running `emulators.stack.LocalStack`
(`.base_url`, `.api_key`: a fresh random key the studio treats as a secret like a real one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from emulators.stack import LocalStack, StackConfig


@contextlib.contextmanager
def start_local_stack(settings: Any, **overrides: Any) -> Iterator[LocalStack]:
    config = StackConfig(
        workers=int(settings.demo_workers),
        step_delay=float(settings.demo_step_delay),
        **overrides,
    )
    with LocalStack(config) as stack:
        yield stack
