"""The page's live stream of its job (app/ui/live_route.py), against a real studio on the stack:
the page's Generate (`page_generate`, a direct request as the page makes it) answers the job's
first view, `GET /wanpod/live/<job id>` brings every update, each the status panel as the page
shows it, ending with the final one, and the page's end-of-job event (`page_final`) the final
view with its video. The API's /generate still streams every update. Who may follow a job is
tested with the other per-user routes (tests/app/test_isolation.py)."""

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


def join(
    base: str, api_name: str, values: list | None = None, session: str = "", **by_elem_id
) -> Iterator[dict]:
    """Call one of the page's own events as the page does: over Gradio's queue, or in one
    direct request for an event that takes no queue (`"queue": false` in the page's config,
    answered as one `process_completed` message here); `values` for its inputs in order
    (States are the studio's: null), else each input's value in the page as served, or
    `by_elem_id`'s; in page session `session` (its States kept from one event to the next),
    else a new one; the event's messages until it completes."""
    config = requests.get(f"{base}/config", timeout=30).json()
    dep = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    comps = {c["id"]: c for c in config["components"]}
    given = iter(values or [])
    data = []
    for i in dep["inputs"]:
        props = comps[i].get("props", {})
        if comps[i].get("type") == "state":
            data.append(None)
        elif values is not None:
            data.append(next(given))
        else:
            data.append(by_elem_id.get(props.get("elem_id"), props.get("value")))
    sh = session or uuid.uuid4().hex
    body = {"data": data, "fn_index": dep["id"], "session_hash": sh, "event_data": None}
    if dep.get("queue") is False:  # Gradio's client posts to /run/predict (by fn_index)
        answer = requests.post(f"{base}/gradio_api/run/predict", json=body, timeout=120)
        output = answer.json()
        yield {"msg": "process_completed", "success": answer.status_code == 200, "output": output}
        return
    joined = requests.post(f"{base}/gradio_api/queue/join", json=body, timeout=30)
    assert joined.status_code == 200, joined.text
    event_id = joined.json()["event_id"]
    url = f"{base}/gradio_api/queue/data?session_hash={sh}"
    with requests.get(url, stream=True, timeout=120) as stream:
        for m in sse(stream):
            if m.get("event_id") == event_id and m["msg"].startswith("process_"):
                yield m
                if m["msg"] == "process_completed":
                    return


def test_the_page_gets_the_first_view_follows_the_job_live_and_asks_for_its_end(studio):
    """`page_generate` lasts as long as the submit: its answer is the job's first view (the
    job id, a live panel); the live stream brings every panel to the final one; then the
    page's end-of-job event (`page_final`, which the panel's script clicks) answers the final
    view, the video, the gallery and the session's strip, in one event (`page_final_only`:
    the same without the gallery, for a page whose gallery is off screen, in one direct
    request)."""
    messages = list(join(studio.base_url, "page_generate", args(prompt="a heron, live",
                                                                 seconds=3.0)))  # fmt: skip
    assert messages[-1]["msg"] == "process_completed" and messages[-1]["success"], messages[-1]
    status, _video, _details, rid = messages[-1]["output"]["data"][:4]
    assert rid.startswith("wp-") and 'data-final="0"' in status, status
    # one answer in one request: the page says "Submitting…" itself, and the event is a
    # function, not a generator, taking no queue (a join, an event stream, its messages)
    config = requests.get(f"{studio.base_url}/config", timeout=30).json()
    (dep,) = [d for d in config["dependencies"] if d.get("api_name") == "page_generate"]
    assert dep["queue"] is False and [m["msg"] for m in messages] == ["process_completed"]
    # values only: the job's buttons follow the job id in the page itself (a property update
    # from the studio would be a component built per button and answer)
    first = messages[-1]["output"]["data"]
    assert not [v for v in first if isinstance(v, dict) and v.get("__type__") == "update"]
    assert first[-2].startswith("**Seed that ran:**"), first[-2]  # the seed line, by value
    assert first[-1] is None  # the strip's job ids (a State) stay in the studio

    # refused: said in the panel, as the event's answer (a direct request that failed would
    # show the page nothing)
    (refused,) = join(studio.base_url, "page_generate", args(prompt="", seconds=3.0))
    assert refused["success"], refused
    panel = refused["output"]["data"][0]
    assert 'data-state="REFUSED"' in panel and "Not submitted: prompt: is empty" in panel

    with requests.get(f"{studio.base_url}/wanpod/live/{rid}", stream=True, timeout=120) as live:
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/event-stream")
        panels = list(sse(live))  # the stream ends with the job
    assert panels[-1]["final"] and not any(p["final"] for p in panels[:-1])
    assert 'data-state="COMPLETED"' in panels[-1]["html"], panels[-1]
    assert all(f'data-rid="{rid}"' in p["html"] for p in panels)
    assert 'class="wp-clock"' in panels[0]["html"]  # a live panel: the page's clock counts on

    (end,) = [m for m in join(studio.base_url, "page_final", **{"wp-job": rid})
              if m["msg"] == "process_completed"]  # fmt: skip
    assert end["success"], end
    gallery, _rids, note, status, video, details, result, recent, _recent = end["output"]["data"]
    assert 'data-state="COMPLETED"' in status and video["url"] and rid in details
    assert result["state"] == "COMPLETED" and result["job_id"] == rid
    # served from where the studio stored it (not hashed and copied into Gradio's cache)
    assert f"/results/{rid}/" in video["url"], video["url"]
    got = requests.get(video["url"], timeout=30)
    assert got.status_code == 200 and got.content[4:8] == b"ftyp"
    newest = gallery["value"][0]  # an update (its marked tile: the opened job's, none here)
    assert "shown, newest first" in note and "a heron, live" in newest["caption"]
    assert len(recent) == 1 and rid in recent[0]["caption"]  # this session's strip,
    assert recent[0]["image"]["url"].endswith(".thumb.jpg"), recent[0]  # a tile of a still

    # with the gallery off screen the page asks for the same end without it (its script
    # clicks History's Refresh once the gallery comes into view)
    (only,) = [m for m in join(studio.base_url, "page_final_only", **{"wp-job": rid})
               if m["msg"] == "process_completed"]  # fmt: skip
    assert only["success"], only
    assert only["output"]["data"][:4] == [status, video, details, result]
    assert len(only["output"]["data"]) == 6  # the strip and its ids: no gallery
    config = requests.get(f"{studio.base_url}/config", timeout=30).json()
    (dep,) = [d for d in config["dependencies"] if d.get("api_name") == "page_final_only"]
    assert dep["queue"] is False  # the page posts it directly: no queue join, no event stream


def test_the_page_events_name_no_progress_target(studio):
    """An event that shows no progress names no component as its progress target
    (app/ui/quiet.py): Gradio's page would visit each target again at every later message."""
    config = requests.get(f"{studio.base_url}/config", timeout=30).json()
    quiet = [d for d in config["dependencies"] if d["show_progress"] == "hidden"]
    assert len(quiet) > 50, len(quiet)  # the page's own events and the API's
    assert [d["api_name"] for d in quiet if d["show_progress_on"] != []] == []
    shown = [d["api_name"] for d in config["dependencies"] if d["show_progress"] != "hidden"]
    assert shown == ["refreshed"], shown  # Refresh from the endpoint shows its own progress,
    # on its note: not on the accordion, whose every field the page would visit at each message
    (refreshed,) = [d for d in config["dependencies"] if d.get("api_name") == "refreshed"]
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    assert refreshed["show_progress_on"] == [ids["wp-offers-note"]], refreshed["show_progress_on"]


def test_an_unknown_job_has_no_stream(studio):
    r = requests.get(f"{studio.base_url}/wanpod/live/wp-0000000000000000", timeout=30)
    assert r.status_code == 404 and "Unknown job" in r.json()["detail"]


def test_the_api_still_streams_every_update(client):
    """An API client gets the job's progress as it runs, not only its first view and its end
    (the page's events): 30 steps of the stand-in's 0.1 s are 3 s of sampling, so at least two
    running views come (a changed view is sent at most every UPDATE_EVERY_S, app/ui/pace.py)."""
    job = client.submit(*args(prompt="a heron, streamed", steps=30), api_name="/generate")
    outputs = []
    for out in job:  # every answer the API streamed, the final one last
        outputs.append(out)
    states = [o[0].split('data-state="')[1].split('"')[0] for o in outputs]
    assert states[-1] == "COMPLETED", states
    running = [o[0] for o, s in zip(outputs, states, strict=True) if s == "IN_PROGRESS"]
    assert len(set(running)) >= 2, states  # the progress moved on between them


def test_a_job_the_page_stopped_following_is_in_the_strip_at_the_next_end(studio):
    """A second Generate takes the panel while the first job runs: the page follows the new
    job and never asks for the first one's end. The first job joined this session's strip
    when it was submitted, so the strip shows it at the next end the page asks for."""
    session = uuid.uuid4().hex
    rids = []
    for prompt in ("a heron, first", "a heron, second"):
        (answer,) = join(studio.base_url, "page_generate", args(prompt=prompt, seconds=3.0),
                         session=session)  # fmt: skip
        rids.append(answer["output"]["data"][3])
    for rid in rids:  # both run to their end
        with requests.get(f"{studio.base_url}/wanpod/live/{rid}", stream=True, timeout=120) as s:
            assert 'data-state="COMPLETED"' in list(sse(s))[-1]["html"]
    first, second = rids
    (end,) = join(studio.base_url, "page_final_only", session=session, **{"wp-job": second})
    recent = end["output"]["data"][4]
    assert [t["caption"].split(" · ")[0] for t in recent] == [second, first], recent
