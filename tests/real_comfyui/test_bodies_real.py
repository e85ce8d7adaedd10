"""Real ComfyUI 0.3.64 still answers the odd requests of tests/emulators/bodies.py as recorded
there (the emulator's own test holds it to the same table), keeps a falsy prompt_id as given,
and lists models saved under its output folder (the emulator does both too)."""

from __future__ import annotations

import requests

from tests.emulators.bodies import CASES, FALSY_IDS, UPLOADS, ids_answered, statuses
from tests.real_comfyui.helpers import idle, wait_for
from tests.real_comfyui.server import RealComfyUI


def test_odd_requests_are_answered_as_recorded(real: RealComfyUI) -> None:
    assert statuses(real.url) == (CASES, UPLOADS)


def test_a_falsy_prompt_id_is_kept_as_given(real: RealComfyUI) -> None:
    assert ids_answered(real.url) == [kept for _, kept in FALSY_IDS]
    wait_for(lambda: idle(real), "the prompts to end", 60)


def test_models_saved_under_the_output_folder_are_listed(real: RealComfyUI) -> None:
    (real.output / "loras" / "saved_loras.safetensors").touch()  # (the fixture made the folder)
    listed = requests.get(real.url + "/models/loras", timeout=30).json()
    assert "saved_loras.safetensors" in listed
