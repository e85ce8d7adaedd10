"""Odd requests and what a real ComfyUI 0.3.64 answered them (status codes, seen side by side
with the emulator on the same machine): bodies its handlers read with `in` tests and `.get`
(a 500 where that raises), a falsy `prompt_id` kept as given, HEAD on every GET route. The
emulator's test (tests/emulators/test_comfyui_fidelity.py) holds it to them; the real tier
(tests/real_comfyui/test_bodies_real.py) checks that real ComfyUI still answers them so."""

from __future__ import annotations

import io
import json

from PIL import Image

TINY = {"1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}  # fmt: skip


def _j(value: object) -> bytes:
    return json.dumps(value).encode()


# (method, path, body) -> status real ComfyUI 0.3.64 answered
CASES: dict[tuple[str, str, bytes | None], int] = {
    ("POST", "/queue", b"{bad"): 500,
    ("POST", "/queue", b"5"): 500,
    ("POST", "/queue", _j({"delete": None})): 500,
    ("POST", "/queue", _j([1])): 200,
    ("POST", "/queue", _j({"delete": ["not-queued"]})): 200,
    ("POST", "/history", b""): 500,
    ("POST", "/history", b"5"): 500,
    ("POST", "/history", _j({"delete": None})): 500,
    ("POST", "/history", _j({"delete": ["unknown"]})): 200,
    ("POST", "/free", b"{bad"): 500,
    ("POST", "/free", _j([1])): 500,
    ("POST", "/free", _j({"free_memory": False})): 200,
    ("POST", "/interrupt", b""): 200,  # no body: a global interrupt
    ("POST", "/interrupt", _j([1])): 500,
    ("POST", "/interrupt", _j({"prompt_id": "not-running"})): 200,
    ("POST", "/prompt", _j([1])): 400,  # no "prompt" in it: no_prompt
    ("POST", "/prompt", b"5"): 500,
    ("POST", "/prompt", _j({"prompt": TINY, "extra_data": [1], "client_id": "c"})): 500,
    ("HEAD", "/system_stats", None): 200,
    ("HEAD", "/queue", None): 200,
    ("HEAD", "/history", None): 200,
    ("HEAD", "/object_info/EmptyImage", None): 200,
    ("HEAD", "/features", None): 200,
}


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    return buf.getvalue()


# POST /upload/image form fields (with an `image` PNG) -> status real ComfyUI answered
UPLOADS: dict[tuple[tuple[str, str], ...], int] = {
    (): 200,
    (("type", "input"),): 200,
    (("type", ""),): 500,  # no such folder type (ComfyUI's folder is left unbound)
    (("type", "bogus"),): 500,
}


def statuses(base_url: str) -> tuple[dict, dict]:
    """What the server at `base_url` answers each of CASES and UPLOADS (status codes)."""
    import requests

    cases = {case: requests.request(case[0], base_url + case[1], data=case[2],
                                    timeout=30).status_code for case in CASES}  # fmt: skip
    uploads = {fields: requests.post(base_url + "/upload/image", data=dict(fields),
                                     files={"image": ("odd.png", png())}, timeout=30).status_code
               for fields in UPLOADS}  # fmt: skip
    return cases, uploads


FALSY_IDS = (("", ""), (0, "0"), (None, "None"))  # prompt_id given -> the id ComfyUI answers


def ids_answered(base_url: str) -> list[str]:
    """The prompt ids the server answers for FALSY_IDS' given ones (TINY queued each time)."""
    import requests

    return [requests.post(base_url + "/prompt", json={"prompt": TINY, "prompt_id": given},
                          timeout=30).json()["prompt_id"] for given, _ in FALSY_IDS]  # fmt: skip
