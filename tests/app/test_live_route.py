"""The page's live stream of its job (app/ui/live_route.py), against a real studio on the stack:
the page's Generate (`page_generate`, over Gradio's queue as the page calls it) answers the job's
first view and its final one only, and `GET /wanpod/live/<job id>` brings the updates in between,
each the status panel as the page shows it, ending with the final one. The API's /generate still
streams every update. Who may follow a job is tested with the other per-user routes
(tests/app/test_isolation.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import requests

from tests.app.test_api import args


def sse(response: requests.Response) -> Iterator[dict]:
    for line in response.iter_lines(decode_unicode=True):
        if line and line.startswith("data:"):
            yield json.loads(line[5:])


def page_generate(base: str, values: list) -> tuple[requests.Response, str]:
    """Join the page's own Generate event; the open queue stream and the event's id."""
    config = requests.get(f"{base}/config", timeout=30).json()
    dep = next(d for d in config["dependencies"] if d.get("api_name") == "page_generate")
    types = {c["id"]: c.get("type") for c in config["components"]}
    given = iter(values)
    data = [None if types.get(i) == "state" else next(given) for i in dep["inputs"]]
    sh = uuid.uuid4().hex
    body = {"data": data, "fn_index": dep["id"], "session_hash": sh, "event_data": None}
    joined = requests.post(f"{base}/gradio_api/queue/join", json=body, timeout=30)
    assert joined.status_code == 200, joined.text
    stream = requests.get(
        f"{base}/gradio_api/queue/data?session_hash={sh}", stream=True, timeout=120
    )
    return stream, joined.json()["event_id"]


def test_the_page_gets_the_first_and_final_answers_and_follows_the_job_live(studio):
    queue, event_id = page_generate(studio.base_url, args(prompt="a heron, live", seconds=3.0))
    messages = (m for m in sse(queue) if m.get("event_id") == event_id)
    first = next(m for m in messages if m["msg"] in ("process_generating", "process_completed"))
    assert first["msg"] == "process_generating", first
    status, _video, _details, rid = first["output"]["data"][:4]
    assert rid.startswith("wp-") and 'data-final="0"' in status, status

    with requests.get(f"{studio.base_url}/wanpod/live/{rid}", stream=True, timeout=120) as live:
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/event-stream")
        panels = list(sse(live))  # the stream ends with the job
    assert panels[-1]["final"] and not any(p["final"] for p in panels[:-1])
    assert 'data-state="COMPLETED"' in panels[-1]["html"], panels[-1]
    assert all(f'data-rid="{rid}"' in p["html"] for p in panels)
    assert 'class="wp-clock"' in panels[0]["html"]  # a live panel: the page's clock counts on

    # the page's event: a new state's answer at most (the details name the state), the final
    # answer (a generator's last), then the event's end, which repeats it
    rest = [m for m in messages if m["msg"].startswith("process_")]
    names = [m["msg"] for m in rest]
    assert names[-2:] == ["process_generating", "process_completed"] and len(names) <= 3, names
    final = rest[-1]["output"]["data"]
    assert 'data-state="COMPLETED"' in final[0] and final[1]["url"], final[:2]
    queue.close()


def test_an_unknown_job_has_no_stream(studio):
    r = requests.get(f"{studio.base_url}/wanpod/live/wp-0000000000000000", timeout=30)
    assert r.status_code == 404 and "Unknown job" in r.json()["detail"]


def test_the_api_still_streams_every_update(client):
    job = client.submit(*args(prompt="a heron, streamed", seconds=3.0), api_name="/generate")
    outputs = []
    for out in job:  # every answer the API streamed, the final one last
        outputs.append(out)
    states = [o[0].split('data-state="')[1].split('"')[0] for o in outputs]
    assert states[-1] == "COMPLETED" and "IN_PROGRESS" in states, states
    assert len(outputs) >= 3
