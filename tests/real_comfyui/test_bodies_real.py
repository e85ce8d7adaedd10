"""Real ComfyUI 0.3.64 still answers the odd requests of tests/emulators/bodies.py as recorded
there (the emulator's own test holds it to the same table), keeps a falsy prompt_id as given,
and lists models saved under its output folder (the emulator does both too)."""

from __future__ import annotations

import requests

from tests.emulators.bodies import CASES, TINY, UPLOADS, png
from tests.real_comfyui.helpers import idle, wait_for
from tests.real_comfyui.server import RealComfyUI


def test_odd_requests_are_answered_as_recorded(real: RealComfyUI) -> None:
    got = {case: requests.request(case[0], real.url + case[1], data=case[2],
                                  timeout=30).status_code for case in CASES}  # fmt: skip
    assert got == CASES
    uploads = {fields: requests.post(real.url + "/upload/image", data=dict(fields),
                                    files={"image": ("odd.png", png())}, timeout=30).status_code
               for fields in UPLOADS}  # fmt: skip
    assert uploads == UPLOADS


def test_a_falsy_prompt_id_is_kept_as_given(real: RealComfyUI) -> None:
    for given, kept in (("", ""), (0, "0"), (None, "None")):
        body = requests.post(real.url + "/prompt", json={"prompt": TINY, "prompt_id": given},
                             timeout=30).json()  # fmt: skip
        assert body["prompt_id"] == kept
        wait_for(lambda: idle(real), "the prompt to end", 60)


def test_models_saved_under_the_output_folder_are_listed(real: RealComfyUI) -> None:
    (real.output / "loras").mkdir()
    (real.output / "loras" / "saved_loras.safetensors").touch()
    listed = requests.get(real.url + "/models/loras", timeout=30).json()
    assert "saved_loras.safetensors" in listed
