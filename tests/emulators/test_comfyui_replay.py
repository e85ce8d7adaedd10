"""Replay every real ComfyUI recording against the emulator and compare what comes back:
websocket message types, order and key sets; HTTP status codes and bodies."""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from emulators.comfyui.schema import RECORDING_ARTEFACTS
from tests.emulators.comfy_client import (
    Comfy,
    close_later,
    key_shape,
    label,
    recorded_http,
    recorded_ws,
    recording,
)
from tests.helpers import RECORDINGS, comfy_emulator, png_bytes


def replay(comfy: Comfy, name: str, before: Any = None) -> tuple[list[dict[str, Any]], dict]:
    """Submit the recording's workflow with a fresh socket; return (messages, POST /prompt body)."""
    rec = recording(name)
    with comfy.connect() as sock:
        sock.recv()  # status on connect
        if before is not None:
            before(sock)
        body = comfy.queue_prompt(rec["workflow"], sock.client_id)
        sock.until_done(body["prompt_id"])
        return sock.messages, body


VOLATILE = {"prompt_id", "timestamp", "sid", "traceback", "exception_message"}


def mask(value: Any, key: str = "") -> Any:
    """Values with run-specific parts masked: ids, times, tracebacks, object addresses, paths,
    file counters; set-ordered lists sorted."""
    if key in VOLATILE:
        return "<volatile>"
    if isinstance(value, dict):
        return {k: mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [mask(v) for v in value]
        return sorted(items) if key in ("executed", "current_outputs") else items
    if isinstance(value, str):
        value = re.sub(r" at 0x[0-9a-f]+>", " at 0x…>", value)
        return re.sub(r"_\d{5}_\.", "_NNNNN_.", value)
    return value


def assert_same_messages(got: list[dict[str, Any]], rec: dict[str, Any]) -> None:
    assert [label(m) for m in got] == rec["ws_type_sequence"]
    for mine, theirs in zip(got, recorded_ws(rec), strict=True):
        assert mine["type"] == theirs["type"]
        assert key_shape(mine["data"]) == key_shape(theirs["data"]), mine["type"]
        if mine["type"] == "executed" and mine["data"]["node"] in PREVIEW_NODES.get(
            rec["name"], ()
        ):
            continue  # PreviewImage names carry 5 random letters
        assert mask(mine["data"]) == mask(theirs["data"]), mine["type"]


PREVIEW_NODES = {"image_save_and_preview_feature_flags": ("4",)}


def numbered(value: Any) -> Any:
    """Output items with the file counter masked (it depends on what the folder holds)."""
    return json.loads(re.sub(r"_\d{5}_\.", "_NNNNN_.", json.dumps(value)))


def history(comfy: Comfy, prompt_id: str) -> dict[str, Any]:
    return comfy.get(f"/history/{prompt_id}").json()[prompt_id]


def wait_history(comfy: Comfy, prompt_id: str, timeout: float = 15) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        h = comfy.get(f"/history/{prompt_id}").json()
        if h:
            return h[prompt_id]
        time.sleep(0.02)
    raise AssertionError(f"no history for {prompt_id}")


def recorded_history(rec: dict[str, Any]) -> dict[str, Any]:
    ev = next(
        e for e in rec["events"] if e["kind"] == "http" and "/history/" in e["request"]["path"]
    )
    return next(iter(ev["json"].values()))


@pytest.mark.parametrize(
    "name", ["image_success", "video_success", "progress_upscale", "execution_error_odd_video_size"]
)
def test_replay_matches_recording(comfy: Comfy, name: str) -> None:
    rec = recording(name)
    got, body = replay(comfy, name)
    assert_same_messages(got, rec)
    assert body["node_errors"] == {}
    mine, theirs = history(comfy, body["prompt_id"]), recorded_history(rec)
    assert key_shape(mine) == key_shape(theirs)
    for h in (mine, theirs):  # the queue number, prompt id and client id differ by construction
        h["prompt"][0:2], h["prompt"][3]["client_id"] = ["<n>", "<id>"], "<cid>"
    assert mask(mine) == mask(theirs)
    assert mine["prompt"][2] == theirs["prompt"][2]  # values normalised the same way (fps 8 -> 8.0)
    assert mine["prompt"][4] == theirs["prompt"][4]
    assert mine["status"]["status_str"] == theirs["status"]["status_str"]
    assert [m[0] for m in mine["status"]["messages"]] == [
        m[0] for m in theirs["status"]["messages"]
    ]
    for m, t in zip(got, recorded_ws(rec), strict=True):
        if m["type"] == "executed":
            assert numbered(m["data"]["output"]) == numbered(t["data"]["output"])
        if m["type"] == "progress":
            assert (m["data"]["value"], m["data"]["max"]) == (t["data"]["value"], t["data"]["max"])
        if m["type"] == "execution_error":
            for k in ("node_id", "node_type", "exception_type", "exception_message"):
                assert m["data"][k] == t["data"][k]
            assert sorted(m["data"]["executed"]) == sorted(t["data"]["executed"])
            assert sorted(m["data"]["current_outputs"]) == sorted(t["data"]["current_outputs"])


def test_cached_rerun(comfy: Comfy) -> None:
    rec = recording("image_cached_rerun")
    first, _ = replay(comfy, "image_cached_rerun")
    second, body = replay(comfy, "image_cached_rerun")
    assert_same_messages(second, rec)
    executed = [m for m in second if m["type"] == "executed"]
    first_executed = [m for m in first if m["type"] == "executed"]
    assert executed[0]["data"]["output"] == first_executed[0]["data"]["output"]
    cached = next(m for m in second if m["type"] == "execution_cached")
    assert (
        cached["data"]["nodes"]
        == next(m for m in recorded_ws(rec) if m["type"] == "execution_cached")["data"]["nodes"]
    )
    assert history(comfy, body["prompt_id"])["outputs"] == recorded_history(rec)["outputs"]


def test_feature_flags_and_preview(comfy: Comfy) -> None:
    rec = recording("image_save_and_preview_feature_flags")
    sent = next(e["json"] for e in rec["events"] if e["kind"] == "ws_send")
    got, _ = replay(comfy, rec["name"], before=lambda s: s.ws.send(json.dumps(sent)))
    assert_same_messages(got, rec)
    assert got[1] == recorded_ws(rec)[1]  # the server's feature_flags answer, verbatim
    previews = next(m for m in got if m["type"] == "executed" and m["data"]["node"] == "4")
    for item in previews["data"]["output"]["images"]:
        assert item["type"] == "temp" and item["subfolder"] == ""
        assert item["filename"].startswith("ComfyUI_temp_") and item["filename"].endswith(".png")
        r = comfy.get("/view", params=item)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"


def test_loadimage_of_subfolder_upload(comfy: Comfy) -> None:
    rec = recording("loadimage_uploaded")
    r = comfy.upload(
        "acceptance_probe.png",
        png_bytes(8, 6, (10, 200, 30)),
        subfolder="acceptance",
        overwrite="true",
    )
    assert r.status_code == 200
    got, _ = replay(comfy, rec["name"])
    assert_same_messages(got, rec)


def test_loadimage_of_non_image_fails_at_run_time(comfy: Comfy) -> None:
    rec = recording("execution_error_not_an_image")
    assert comfy.upload("not_really.png", b"this is not an image", overwrite="true").ok
    got, _ = replay(comfy, rec["name"])
    assert_same_messages(got, rec)
    mine = next(m for m in got if m["type"] == "execution_error")["data"]
    theirs = next(m for m in recorded_ws(rec) if m["type"] == "execution_error")["data"]
    assert mine["exception_type"] == theirs["exception_type"]
    assert mine["exception_message"].startswith("cannot identify image file '")
    assert mine["exception_message"].endswith("not_really.png'\n")


WAN = ["wan_t2v_14B_lightx2v", "wan_i2v_14B_lightx2v", "wan_ti2v_5B", "wan_flf2v_14B_lightx2v"]


def upload_wan_inputs(comfy: Comfy, workflow: dict[str, Any]) -> None:
    for node in workflow.values():
        if node["class_type"] == "LoadImage":
            assert comfy.upload(
                node["inputs"]["image"], png_bytes(8, 6, (90, 60, 30)), overwrite="true"
            ).ok


@pytest.mark.parametrize("name", WAN)
def test_wan_failure_reproduced_with_error_knob(comfy: Comfy, name: str) -> None:
    """The recordings fail at the first loader (0-byte placeholders); error_at_node replays it."""
    rec = recording(name)
    theirs = next(m for m in recorded_ws(rec) if m["type"] == "execution_error")["data"]
    upload_wan_inputs(comfy, rec["workflow"])
    comfy.config(error_at_node=theirs["node_id"])
    got, _ = replay(comfy, name)
    assert_same_messages(got, rec)
    mine = next(m for m in got if m["type"] == "execution_error")["data"]
    for k in (
        "node_id",
        "node_type",
        "executed",
        "exception_type",
        "exception_message",
        "current_inputs",
    ):
        assert mine[k] == theirs[k], k
    assert sorted(mine["current_outputs"]) == sorted(theirs["current_outputs"])


def test_interrupt_by_prompt_id(comfy: Comfy) -> None:
    _interrupt(comfy, "interrupt", by_id=True)


def test_interrupt_global(comfy: Comfy) -> None:
    idle = recorded_http(recording("interrupt_global"), "POST", "/interrupt")[0]
    r = comfy.post("/interrupt")
    assert (r.status_code, r.text) == (idle["status"], idle["text"])
    _interrupt(comfy, "interrupt_global", by_id=False)


def _interrupt(comfy: Comfy, name: str, by_id: bool) -> None:
    rec = recording(name)
    comfy.config(node_delay=0.5)
    with comfy.connect() as sock:
        sock.recv()
        pid = comfy.queue_prompt(rec["workflow"], sock.client_id)["prompt_id"]
        sock.until(lambda m: m["type"] == "executing" and m["data"]["node"] == "11")
        r = comfy.post("/interrupt", json={"prompt_id": pid}) if by_id else comfy.post("/interrupt")
        assert (r.status_code, r.text) == (200, "")
        sock.until_done(pid)
        assert_same_messages(sock.messages, rec)
    mine = next(m for m in sock.messages if m["type"] == "execution_interrupted")["data"]
    theirs = next(m for m in recorded_ws(rec) if m["type"] == "execution_interrupted")["data"]
    assert (mine["node_id"], mine["node_type"]) == (theirs["node_id"], theirs["node_type"])
    assert sorted(mine["executed"]) == sorted(theirs["executed"])
    h, th = history(comfy, pid), recorded_history(rec)
    assert (h["outputs"], h["status"]["status_str"], h["status"]["completed"]) == (
        th["outputs"],
        th["status"]["status_str"],
        th["status"]["completed"],
    )
    assert h["status"]["messages"][-1][0] == "execution_interrupted"


def test_interrupt_during_progress(comfy: Comfy) -> None:
    rec = recording("interrupt_during_progress")
    comfy.config(step_delay=0.3)
    with comfy.connect() as sock:
        sock.recv()
        pid = comfy.queue_prompt(rec["workflow"], sock.client_id)["prompt_id"]
        sock.until(lambda m: m["type"] == "progress" and m["data"]["value"] == 3)
        comfy.post("/interrupt", json={"prompt_id": pid})
        sock.until_done(pid)
    assert_same_messages(sock.messages, rec)
    progress = [m["data"] for m in sock.messages if m["type"] == "progress"]
    recorded = [m["data"] for m in recorded_ws(rec) if m["type"] == "progress"]
    assert [(p["value"], p["max"]) for p in progress] == [(p["value"], p["max"]) for p in recorded]


def test_interrupt_for_another_prompt_is_ignored(comfy: Comfy) -> None:
    rec = recording("image_success")
    comfy.config(node_delay=0.1)
    with comfy.connect() as sock:
        sock.recv()
        pid = comfy.queue_prompt(rec["workflow"], sock.client_id)["prompt_id"]
        sock.until(lambda m: m["type"] == "executing")
        assert comfy.post("/interrupt", json={"prompt_id": "not-running"}).status_code == 200
        sock.until_done(pid)
    assert "execution_success" in sock.labels()


def test_two_queued_prompts(comfy: Comfy) -> None:
    rec = recording("queue_two_prompts")
    posts = recorded_http(rec, "POST", "/prompt")
    comfy.config(node_delay=0.25)
    with comfy.connect() as sock:
        sock.recv()
        ids = []
        for p in posts:
            body = {**p["request"]["json"], "client_id": sock.client_id}
            ids.append(comfy.post("/prompt", json=body).json()["prompt_id"])
        queue = comfy.get("/queue").json()
        sock.until_done(ids[0])
        sock.until_done(ids[1])
    recorded_queue = recorded_http(rec, "GET", "/queue")[0]["json"]
    assert key_shape(queue) == key_shape(recorded_queue)
    assert [x[1] for x in queue["queue_running"]] == [ids[0]]
    assert [x[1] for x in queue["queue_pending"]] == [ids[1]]
    # /queue shows extra_data unredacted (the fake api key), like the recording
    assert queue["queue_running"][0][3] == {
        **recorded_queue["queue_running"][0][3],
        "client_id": sock.client_id,
    }
    got = sock.labels()
    assert [x for x in got if x != "status"] == [
        x for x in rec["ws_type_sequence"] if x != "status"
    ]
    statuses = [
        m["data"]["status"]["exec_info"]["queue_remaining"]
        for m in sock.messages
        if m["type"] == "status"
    ]
    recorded_statuses = [
        m["data"]["status"]["exec_info"]["queue_remaining"]
        for m in recorded_ws(rec)
        if m["type"] == "status"
    ]
    assert statuses == recorded_statuses
    # history drops api_key_comfy_org from extra_data
    recorded_hist = next(iter(recorded_http(rec, "GET", f"/history/{rec['prompt_ids'][0]}")))
    h = history(comfy, ids[0])
    assert set(h["prompt"][3]) == set(next(iter(recorded_hist["json"].values()))["prompt"][3])
    assert "api_key_comfy_org" not in h["prompt"][3]
    last = comfy.get("/history", params={"max_items": 2}).json()
    assert list(last) == ids


def _normalise(body: Any) -> Any:
    if isinstance(body, dict):
        return {
            k: ("<tb>" if k == "traceback" else _normalise(v))
            for k, v in body.items()
            if k not in ("prompt_id", "number")
        }
    if isinstance(body, list):
        return [_normalise(v) for v in body]
    return body


INVALID = recording("invalid_prompts")


@pytest.mark.parametrize("case", INVALID["cases"], ids=[c["case"] for c in INVALID["cases"]])
def test_invalid_prompt_bodies(comfy: Comfy, case: dict[str, Any]) -> None:
    ev = next(e for e in INVALID["events"] if e["seq"] == case["seq"])
    req = ev["request"]
    if "raw_body" in req:
        r = comfy.post("/prompt", data=req["raw_body"].encode())
    else:
        r = comfy.post("/prompt", json=req["json"])
    assert r.status_code == ev["status"] == case["status"]
    assert r.headers["Content-Type"] == ev["headers"]["Content-Type"]
    if "json" not in ev:
        assert r.text == ev["text"]
        return
    assert _normalise(r.json()) == _normalise(ev["json"])
    if r.status_code == 200:
        h = wait_history(comfy, r.json()["prompt_id"])
        recorded = next(
            e
            for e in INVALID["events"]
            if e["kind"] == "http" and e["request"]["path"] == f"/history/{ev['json']['prompt_id']}"
        )
        theirs = next(iter(recorded["json"].values()))
        assert h["prompt"][4] == theirs["prompt"][4]
        assert h["status"]["status_str"] == theirs["status"]["status_str"]
        assert [m[0] for m in h["status"]["messages"]] == [
            m[0] for m in theirs["status"]["messages"]
        ]
        if theirs["status"]["status_str"] == "error":
            assert (
                h["status"]["messages"][-1][1]["exception_message"]
                == (theirs["status"]["messages"][-1][1]["exception_message"])
            )
        else:
            assert list(h["outputs"]) == list(theirs["outputs"])


def test_upload_image_rules(comfy: Comfy, comfy_dirs: dict[str, Path]) -> None:
    rec = recording("upload_image")
    shutil.rmtree(comfy_dirs["input"] / "acceptance", ignore_errors=True)
    contents: dict[str, bytes] = {}
    sent: dict[str, bytes] = {}
    for ev in recorded_http(rec, "POST", "/upload/image"):
        req = ev["request"]
        files = None
        if "files" in req:
            f = req["files"]["image"]
            if f["sha256"] not in contents:
                contents[f["sha256"]] = (
                    png_bytes(8, 6, (len(contents) * 40, 0, 0))
                    if f["bytes"] > 50
                    else b"not an image at all"
                )
            files = {"image": (f["filename"], contents[f["sha256"]], f["content_type"])}
        r = comfy.post("/upload/image", data=req.get("form", {}), files=files or {"x": ("", b"")})
        assert r.status_code == ev["status"], ev.get("note")
        if ev["status"] == 200:
            assert r.json() == ev["json"], ev.get("note")
            sent[r.json()["name"]] = files["image"][1]
        else:
            assert r.content == b""
    for ev in recorded_http(rec, "GET", "/view"):
        r = comfy.get("/view", params=ev["request"]["params"])
        assert r.status_code == ev["status"]
        for h in ("Content-Type", "Content-Disposition"):
            assert r.headers.get(h) == ev["headers"].get(h)
        if ev["status"] == 200 and "preview" not in ev["request"]["params"]:
            assert r.content == sent[ev["request"]["params"]["filename"]]
        if ev["status"] == 200:
            assert r.content[:4] == bytes.fromhex(ev["body_first16_hex"])[:4]


def without_probe_files(value: Any) -> Any:
    """`value` with the recording's probe model files left out of every list."""
    if isinstance(value, dict):
        return {k: without_probe_files(v) for k, v in value.items()}
    if isinstance(value, list):
        return [
            without_probe_files(v)
            for v in value
            if not (isinstance(v, str) and v.startswith(RECORDING_ARTEFACTS))
        ]
    return value


def test_plain_endpoints(comfy: Comfy) -> None:
    rec = recording("endpoints")
    # A fake-volume yaml key of the recording machine; the emulator reads no extra_model_paths.
    made_up = "made_up_key"
    for ev in rec["events"]:
        if ev["kind"] != "http":
            continue
        req = ev["request"]
        if made_up in req["path"]:
            continue
        r = comfy.session.request(
            req["method"],
            comfy.base_url + req["path"],
            params=req.get("params"),
            json=req.get("json"),
            timeout=10,
        )
        assert r.status_code == ev["status"], req["path"]
        if "json" not in ev:
            assert r.content == b"", req["path"]
            continue
        body, theirs = r.json(), ev["json"]
        if req["path"] in ("/system_stats", "/api/system_stats"):
            assert key_shape(body) == key_shape(theirs)
        elif req["path"] == "/history":
            assert len(body) == len(theirs)
            mine, recorded = next(iter(body.values())), next(iter(theirs.values()))
            assert set(mine) == set(recorded)
            assert key_shape(mine["status"]) == key_shape(recorded["status"])
        elif req["path"] == "/models":
            assert body == [x for x in theirs if x != made_up]
        else:  # as recorded, without the recording session's probe files
            assert body == without_probe_files(theirs), req["path"]


def test_recorded_outputs_have_matching_files(comfy: Comfy) -> None:
    """PNG outputs are real PNGs of the recorded size."""
    for name in ("image_success", "progress_upscale"):
        rec = recording(name)
        got, _ = replay(comfy, name)
        item = next(m for m in got if m["type"] == "executed")["data"]["output"]["images"][0]
        r = comfy.get("/view", params=item)
        assert r.headers["Content-Type"] == "image/png"
        recorded = next(m for m in recorded_ws(rec) if m["type"] == "executed")
        ref = RECORDINGS / "files" / name / recorded["data"]["output"]["images"][0]["filename"]
        with Image.open(io.BytesIO(r.content)) as mine, Image.open(ref) as theirs:
            assert mine.format == theirs.format == "PNG"
            assert mine.size == theirs.size


def test_model_folders_from_extra_model_paths_yaml(tmp_path: Path) -> None:
    """A RunPod-style fake volume like the recording's: /models, /models/{folder} and the loader
    lists in /object_info come out as recorded (aliases, filters, nested files, unknown keys)."""
    rec = recording("endpoints")
    lists = {
        e["request"]["path"].split("/")[-1]: e
        for e in rec["events"]
        if e["kind"] == "http" and e["request"]["path"].startswith("/models/")
    }
    volume = tmp_path / "volume"
    keys = set()
    for folder, ev in lists.items():
        for name in ev.get("json") or []:
            key = folder
            if "probe_in_unet_dir" in name:
                key = "unet"
            elif "probe_in_clip_dir" in name:
                key = "clip"
            keys.add(key)
            path = volume / "models" / key / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    (volume / "models" / "vae" / "README.txt").write_text("not a model")  # filtered out
    yaml_lines = ["fake_volume:", "  base_path: ."]
    yaml_lines += [f"  {k}: models/{k}/" for k in sorted(keys)]
    (volume / "extra_model_paths.yaml").write_text("\n".join(yaml_lines) + "\n")
    config = str(volume / "extra_model_paths.yaml")
    with comfy_emulator("--extra-model-paths-config", config) as srv:
        c = Comfy(srv.base_url)
        close_later(c)
        for ev in rec["events"]:
            path = ev.get("request", {}).get("path", "")
            if path == "/models" or path.startswith("/models/") or path.startswith("/object_info/"):
                r = c.get(path)
                assert r.status_code == ev["status"], path
                if ev["status"] == 200:
                    assert r.json() == ev["json"], path
        # a file added after start shows up at once
        (volume / "models" / "vae" / "late.safetensors").write_bytes(b"")
        assert "late.safetensors" in c.get("/models/vae").json()
        vae = c.get("/object_info/VAELoader").json()["VAELoader"]["input"]["required"]
        assert "late.safetensors" in vae["vae_name"][0]


REPLAYED = {
    "endpoints", "execution_error_not_an_image", "execution_error_odd_video_size",
    "image_cached_rerun", "image_save_and_preview_feature_flags", "image_success", "interrupt",
    "interrupt_during_progress", "interrupt_global", "invalid_prompts", "loadimage_uploaded",
    "progress_upscale", "queue_two_prompts", "upload_image", "video_success", *WAN,
}  # fmt: skip


def test_every_recording_is_replayed() -> None:
    """A recording added to the fixtures must get a replay here."""
    assert {p.stem for p in RECORDINGS.glob("*.json")} == REPLAYED
