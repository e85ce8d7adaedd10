"""NaN and infinity in a numeric API field are refused naming the field (not "internal error
(ValueError)"), sent as a raw HTTP client can (JSON's NaN / Infinity literals; gradio_client
itself refuses to encode them) to the studio's `/gradio_api/call/...` routes."""

from __future__ import annotations

import json
import math

import pytest
import requests

from tests.app.test_api import args


def call(base: str, api_name: str, data: list) -> tuple[str, str]:
    """POST /gradio_api/call/<name>, then read its event stream: (last event, its data)."""
    body = json.dumps({"data": data})  # allow_nan: NaN, Infinity, -Infinity literals
    r = requests.post(f"{base}/gradio_api/call/{api_name}", data=body, timeout=30,
                      headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 200, r.text
    kind, last = "", ""
    url = f"{base}/gradio_api/call/{api_name}/{r.json()['event_id']}"
    with requests.get(url, stream=True, timeout=120) as s:
        for line in s.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                last = line[5:].strip()
    return kind, last


@pytest.mark.parametrize(
    ("param", "label", "value"),
    [
        ("cfg", "cfg", math.nan),
        ("steps", "steps", math.nan),
        ("seed", "seed", math.inf),
        ("seconds", "duration", -math.inf),
    ],
)
def test_a_non_finite_number_is_refused_naming_the_field(studio, param, label, value):
    for api_name in ("generate", "quote"):
        kind, text = call(studio.base_url, api_name, args(**{param: value}))
        assert kind == "error", (kind, text)
        message = str(json.loads(text))
        assert f"{label}: {value!r} is not allowed; allowed: a finite number" in message
