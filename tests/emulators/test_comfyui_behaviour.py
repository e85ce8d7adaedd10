"""Emulator behaviour beyond single recordings: real media files, the official Wan templates
running end to end, client_id routing, reconnects, and every fault knob."""

from __future__ import annotations

import io
import json
import os
import socket
import time
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
import websocket
from PIL import Image

from tests.emulators.comfy_client import Comfy, close_later, recorded_ws, recording
from tests.emulators.test_comfyui_replay import upload_wan_inputs, wait_history
from tests.helpers import (
    COMFY_FIXTURES,
    RECORDINGS,
    ServerProcess,
    comfy_emulator,
    free_port,
    png_bytes,
)

WAN_TEMPLATES = sorted((COMFY_FIXTURES / "workflows").glob("*.api.json"))


def probe_mp4(data: bytes) -> dict[str, Any]:
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        return {
            "codec": s.codec_context.name,
            "fps": Fraction(s.average_rate),
            "frames": frames,
            "size": (s.codec_context.width, s.codec_context.height),
            "prompt_tag": "prompt" in c.metadata,
        }


def run(comfy: Comfy, workflow: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    with comfy.connect() as sock:
        sock.recv()
        pid = comfy.queue_prompt(workflow, sock.client_id)["prompt_id"]
        return sock.until_done(pid), pid


def first_output(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return next(m for m in messages if m["type"] == "executed")["data"]["output"]


def test_video_is_real_h264_like_the_recorded_one(comfy: Comfy) -> None:
    rec = recording("video_success")
    got, _ = run(comfy, rec["workflow"])
    item = first_output(got)["images"][0]
    r = comfy.get("/view", params=item)
    assert r.headers["Content-Type"] == "video/mp4"
    recorded_item = first_output(recorded_ws(rec))["images"][0]
    reference = (RECORDINGS / "files" / "video_success" / recorded_item["filename"]).read_bytes()
    assert probe_mp4(r.content) == probe_mp4(reference)


@pytest.mark.parametrize("path", WAN_TEMPLATES, ids=[p.stem for p in WAN_TEMPLATES])
def test_official_wan_template_runs_to_an_mp4(comfy: Comfy, path: Path) -> None:
    workflow = json.loads(path.read_text())
    upload_wan_inputs(comfy, workflow)
    got, pid = run(comfy, workflow)
    types = [m["type"] for m in got]
    assert "execution_success" in types and "execution_error" not in types
    # one progress per sampler step, value 1..max, max = the steps that sampler runs
    for nid, node in workflow.items():
        if node["class_type"] not in ("KSampler", "KSamplerAdvanced"):
            continue
        i = node["inputs"]
        if node["class_type"] == "KSampler":
            expected = i["steps"]
        else:
            expected = min(i["steps"], i["end_at_step"]) - i["start_at_step"]
        prog = [m["data"] for m in got if m["type"] == "progress" and m["data"]["node"] == nid]
        assert [(p["value"], p["max"]) for p in prog] == [
            (v, expected) for v in range(1, expected + 1)
        ]
    item = first_output(got)["images"][0]
    assert first_output(got)["animated"] == [True]
    info = probe_mp4(comfy.get("/view", params=item).content)
    fps = next(n["inputs"]["fps"] for n in workflow.values() if n["class_type"] == "CreateVideo")
    length = next(n["inputs"]["length"] for n in workflow.values() if "length" in n["inputs"])
    assert info["codec"] == "h264"
    assert info["fps"] == fps
    assert info["frames"] == length
    assert info["prompt_tag"]
    h = wait_history(comfy, pid)
    assert h["status"]["status_str"] == "success"
    assert next(iter(h["outputs"].values()))["images"] == [item]


def test_video_size_follows_the_latent_and_can_be_full_size(comfy: Comfy) -> None:
    workflow = json.loads(
        (COMFY_FIXTURES / "workflows" / "wan22_t2v_14B_lightx2v.api.json").read_text()
    )
    latent = next(n for n in workflow.values() if n["class_type"] == "EmptyHunyuanLatentVideo")
    latent["inputs"].update(width=192, height=112, length=9)
    comfy.config(video_max_side=0)
    got, _ = run(comfy, workflow)
    info = probe_mp4(comfy.get("/view", params=first_output(got)["images"][0]).content)
    assert (info["size"], info["frames"]) == ((192, 112), 9)


def test_output_bytes_pads_a_still_valid_mp4(comfy: Comfy) -> None:
    rec = recording("video_success")
    comfy.config(output_bytes=3_000_000)
    got, _ = run(comfy, rec["workflow"])
    data = comfy.get("/view", params=first_output(got)["images"][0]).content
    assert len(data) == 3_000_000
    info = probe_mp4(data)
    assert (info["codec"], info["frames"]) == ("h264", 24)


def test_hold_at_node_knob_keeps_the_job_at_that_node_until_it_moves_on(comfy: Comfy) -> None:
    rec = recording("image_success")
    comfy.config(hold_at_node="2", cache=False)
    with comfy.connect() as sock:
        sock.recv()
        pid = comfy.queue_prompt(rec["workflow"], sock.client_id)["prompt_id"]
        sock.until(lambda m: m["type"] == "executing" and m["data"]["node"] == "2")
        # held: the prompt is running at node 2, nothing of node 2 has finished
        running = comfy.get("/queue").json()["queue_running"]
        assert [r[1] for r in running] == [pid]
        assert pid not in comfy.get(f"/history/{pid}").json()
        comfy.config(hold_at_node=None)
        got = sock.until_done(pid)
    assert [m["data"]["node"] for m in got if m["type"] == "executed"] == ["2"]
    assert wait_history(comfy, pid)["status"]["status_str"] == "success"


def test_error_at_node_knob_on_a_non_loader(comfy: Comfy) -> None:
    rec = recording("image_success")
    comfy.config(error_at_node="2")
    got, pid = run(comfy, rec["workflow"])
    err = next(m for m in got if m["type"] == "execution_error")["data"]
    assert (err["node_id"], err["node_type"], err["executed"]) == ("2", "SaveImage", ["1"])
    assert "error_at_node" in err["exception_message"]
    assert [m["type"] for m in got][-3:] == ["execution_error", "status", "executing"]
    assert wait_history(comfy, pid)["status"]["status_str"] == "error"


def test_no_client_id_routing(comfy: Comfy) -> None:
    """Without client_id only status, progress_state/progress (target None = everyone, as in the
    0.3.64 source) and execution_interrupted reach sockets; nothing else."""
    rec = recording("progress_upscale")
    with comfy.connect() as sock:
        sock.recv()
        pid = comfy.queue_prompt(rec["workflow"], None)["prompt_id"]
        wait_history(comfy, pid)
        comfy.config(node_delay=0.2)
        workflow = json.loads(json.dumps(recording("interrupt")["workflow"]))
        pid2 = comfy.queue_prompt(workflow, None)["prompt_id"]
        sock.until(lambda m: m["type"] == "progress_state" and "10" in m["data"]["nodes"])
        comfy.post("/interrupt")
        sock.until(lambda m: m["type"] == "execution_interrupted")
        wait_history(comfy, pid2)
        sock.ws.settimeout(0.3)
        with pytest.raises(websocket.WebSocketTimeoutException):
            while True:
                sock.recv()
    types = {m["type"] for m in sock.messages}
    assert types == {"status", "progress_state", "progress", "execution_interrupted"}


def test_messages_go_only_to_the_prompt_client(comfy: Comfy) -> None:
    rec = recording("image_success")
    with comfy.connect() as other, comfy.connect() as mine:
        other.recv()
        mine.recv()
        pid = comfy.queue_prompt(rec["workflow"], mine.client_id)["prompt_id"]
        mine.until_done(pid)
        wait_history(comfy, pid)
        other.ws.settimeout(0.3)
        with pytest.raises(websocket.WebSocketTimeoutException):
            while True:
                other.recv()
    assert {m["type"] for m in other.messages} == {"status"}
    assert len([m for m in other.messages if m["type"] == "status"]) == 4


def test_reconnect_gets_the_running_node(comfy: Comfy) -> None:
    rec = recording("interrupt")
    comfy.config(node_delay=0.2)
    cid = uuid.uuid4().hex
    with comfy.connect(cid) as sock:
        sock.recv()
        pid = comfy.queue_prompt(rec["workflow"], cid)["prompt_id"]
        sock.until(lambda m: m["type"] == "executing" and m["data"]["node"] == "10")
    with comfy.connect(cid) as again:
        assert again.recv()["type"] == "status"
        m = again.recv()
        assert m["type"] == "executing" and set(m["data"]) == {"node"} and m["data"]["node"]
        comfy.post("/interrupt", json={"prompt_id": pid})
        again.until_done(pid)


def test_ws_drop_after_closes_each_socket_after_n_messages(comfy: Comfy) -> None:
    rec = recording("image_success")
    comfy.config(ws_drop_after=3, node_delay=0.1)
    with comfy.connect() as sock:
        sock.recv()
        pid = comfy.queue_prompt(rec["workflow"], sock.client_id)["prompt_id"]
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:
                sock.recv()
    assert [m["type"] for m in sock.messages] == ["status", "status", "status"]
    h = wait_history(comfy, pid)  # the job itself carries on and finishes
    assert h["status"]["status_str"] == "success"


def test_a_drop_noticed_late_leaves_the_reconnected_socket_deaf(comfy: Comfy) -> None:
    """Real ComfyUI 0.3.64 (checked): when the server notices a dropped socket's end only after
    the client reconnected with the same clientId, the new socket gets `status` and `executing`
    on connect, then nothing for the rest of the prompt: the old socket's end unregisters that
    clientId (`sockets.pop(sid)`)."""
    rec = recording("image_success")
    comfy.config(node_delay=0.4, ws_drop_after=5, ws_drop_unnoticed_s=0.2)
    with comfy.connect() as old:
        old.recv()
        pid = comfy.queue_prompt(rec["workflow"], old.client_id)["prompt_id"]
        with pytest.raises((websocket.WebSocketException, OSError)):
            while True:
                old.recv()
    assert len(old.messages) == 5
    with comfy.connect(old.client_id, timeout=3) as new:
        first = new.recv()
        assert first["type"] == "status" and first["data"]["sid"] == old.client_id
        wait_history(comfy, pid)  # the prompt ends meanwhile ...
        with pytest.raises(websocket.WebSocketTimeoutException):
            while True:  # ... and the new socket heard at most the executing greeting
                m = new.recv()
                assert m["type"] == "executing" and set(m["data"]) == {"node"}


def test_an_interrupt_during_the_video_encode_still_ends_in_success(comfy: Comfy) -> None:
    """Real ComfyUI 0.3.64 (checked): SaveVideo's encode cannot be interrupted, and nothing
    checks the flag after the last node, so the prompt reports success with its mp4. With
    encode_delay the file exists, partly written, while the encode runs."""
    rec = recording("video_success")
    save = next(n for n, v in rec["workflow"].items() if v["class_type"] == "SaveVideo")
    comfy.config(encode_delay=0.5)
    with comfy.connect() as sock:
        sock.recv()
        pid = comfy.queue_prompt(rec["workflow"], sock.client_id)["prompt_id"]
        sock.until(lambda m: m["type"] == "executing" and m["data"].get("node") == save)
        comfy.post("/interrupt", json={"prompt_id": pid})
        labels = [m["type"] for m in sock.until_done(pid)]
    assert "execution_success" in labels and "execution_interrupted" not in labels
    h = wait_history(comfy, pid)
    assert h["status"]["status_str"] == "success"
    assert h["outputs"][save]["images"][0]["filename"].endswith(".mp4")


def test_ws_refuse_after_refuses_new_sockets_while_http_works(comfy: Comfy) -> None:
    comfy.config(ws_refuse_after=1)
    with comfy.connect() as first:
        assert first.recv()["type"] == "status"
        with pytest.raises(websocket.WebSocketBadStatusException, match="503"):
            comfy.connect()
    assert comfy.get("/system_stats").status_code == 200
    comfy.config(ws_refuse_after=None)
    with comfy.connect() as again:
        assert again.recv()["type"] == "status"


def test_request_log_lists_what_was_asked(comfy: Comfy) -> None:
    assert comfy.post("/emulator/requests").json() == []
    comfy.get("/system_stats")
    comfy.get("/api/history/nope")
    log = comfy.get("/emulator/requests").json()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("GET", "/system_stats", 200),
        ("GET", "/api/history/nope", 200),
    ]
    assert log[1]["bytes"] == 2  # {}


def test_config_route_validates_and_merges(comfy: Comfy) -> None:
    r = comfy.post("/emulator/config", json={"no_such_knob": 1})
    assert r.status_code == 400 and "no_such_knob" in r.json()["error"]
    r = comfy.post("/emulator/config", json={"step_delay": "fast"})
    assert r.status_code == 400 and "step_delay" in r.json()["error"]
    merged = comfy.post("/api/emulator/config", json={"error_at_node": 7}).json()
    assert merged["error_at_node"] == "7" and merged["step_delay"] == 0.01
    assert comfy.get("/emulator/config").json() == merged


def test_loadimage_options_follow_the_input_folder(comfy: Comfy) -> None:
    name = f"probe_{uuid.uuid4().hex[:8]}.png"
    assert comfy.upload(name, png_bytes(8, 6, (1, 2, 3))).ok
    info = comfy.get("/object_info/LoadImage").json()["LoadImage"]
    assert name in info["input"]["required"]["image"][0]


def _spawn(tmp_path: Path, *flags: str, port: int = 0) -> ServerProcess:
    return comfy_emulator(
        "--output-directory", str(tmp_path / "out"), "--step-delay", "0", *flags, port=port
    )


def test_crash_at_node_exits_the_process(tmp_path: Path) -> None:
    rec = recording("video_success")
    srv = _spawn(tmp_path, "--crash-at-node", "5").start()
    try:
        c = Comfy(srv.base_url)
        close_later(c)
        with c.connect() as sock:
            sock.recv()
            c.queue_prompt(rec["workflow"], sock.client_id)
            with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
                while True:
                    sock.recv()
        assert sock.messages[-1]["type"] == "executing"
        assert sock.messages[-1]["data"]["node"] == "5"
        assert srv.proc.wait(10) == 1
    finally:
        srv.stop()


def test_startup_delay_binds_late(tmp_path: Path) -> None:
    srv = _spawn(tmp_path, "--startup-delay", "1.5", port=free_port())  # known before the bind
    started = time.monotonic()
    srv.start(wait=False)
    try:
        time.sleep(0.5)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", srv.port)) != 0  # not listening yet
        srv.wait_ready()
        assert time.monotonic() - started >= 1.5
    finally:
        srv.stop()


def test_png_outputs_are_real(comfy: Comfy) -> None:
    rec = recording("image_save_and_preview_feature_flags")
    got, _ = run(comfy, rec["workflow"])
    items = [i for m in got if m["type"] == "executed" for i in m["data"]["output"]["images"]]
    assert len(items) == 4
    for item in items:
        with Image.open(io.BytesIO(comfy.get("/view", params=item).content)) as img:
            assert img.format == "PNG" and img.size == (64, 48)
            if item["type"] == "output":
                assert json.loads(img.text["prompt"])["3"]["class_type"] == "SaveImage"


def test_ws_drop_after_type_drops_at_completion(comfy: Comfy) -> None:
    """The socket closes right after execution_success: the client must find the result in
    /history after reconnecting."""
    rec = recording("image_success")
    comfy.config(ws_drop_after_type="execution_success")
    with comfy.connect() as sock:
        sock.recv()
        pid = comfy.queue_prompt(rec["workflow"], sock.client_id)["prompt_id"]
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:
                sock.recv()
    assert sock.messages[-1]["type"] == "execution_success"
    assert wait_history(comfy, pid)["status"]["status_str"] == "success"


def test_audio_and_animation_outputs_are_real_files(comfy: Comfy) -> None:
    workflow = {
        "1": {
            "class_type": "EmptyAudio",
            "inputs": {"duration": 0.5, "sample_rate": 44100, "channels": 2},
        },
        "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "a/x"}},
        "3": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 48, "batch_size": 5, "color": 255},
        },
        "4": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["3", 0],
                "filename_prefix": "anim",
                "fps": 5.0,
                "lossless": False,
                "quality": 80,
                "method": "default",
            },
        },
    }
    got, _ = run(comfy, workflow)
    outputs = {m["data"]["node"]: m["data"]["output"] for m in got if m["type"] == "executed"}
    audio = outputs["2"]["audio"][0]
    assert (audio["subfolder"], audio["type"]) == ("a", "output")
    assert audio["filename"].endswith("_.flac")
    with av.open(io.BytesIO(comfy.get("/view", params=audio).content)) as c:
        s = c.streams.audio[0]
        assert (s.codec_context.name, s.codec_context.sample_rate) == ("flac", 44100)
    assert outputs["4"]["animated"] == [True]
    data = comfy.get("/view", params=outputs["4"]["images"][0]).content
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "WEBP" and img.n_frames == 5


def test_loadaudio_checks_existence_only(comfy: Comfy) -> None:
    workflow = {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": "missing.flac"}},
        "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "a/y"}},
    }
    r = comfy.post("/prompt", json={"prompt": workflow})
    assert r.status_code == 400
    err = r.json()["node_errors"]["1"]["errors"][0]
    assert (err["type"], err["details"]) == (
        "custom_validation_failed",
        "audio - Invalid audio file: missing.flac",
    )


@pytest.mark.parametrize(
    ("prompt", "status"),
    [
        ("not a dict", 500),
        ({"1": 5}, 500),
        ({"1": "text"}, 400),
        ({"1": {"class_type": "SaveImage"}}, 400),
    ],
    ids=["string_prompt", "int_node", "string_node", "node_without_inputs"],
)
def test_malformed_prompts_fail_like_comfyui(comfy: Comfy, prompt: Any, status: int) -> None:
    r = comfy.post("/prompt", json={"prompt": prompt})
    assert r.status_code == status
    if status == 500:
        assert r.text == "500 Internal Server Error\n\nServer got itself in trouble"
    else:
        assert r.json()["error"]["type"] in ("invalid_prompt", "prompt_outputs_failed_validation")


def test_stale_socket_with_same_client_id_unregisters_the_new_one(comfy: Comfy) -> None:
    """ComfyUI's quirk: a second socket with the same clientId replaces the first in its table
    without closing it; when the first one closes, the id is removed and the second socket gets
    nothing more. Clients must close the old socket before reconnecting."""
    cid = uuid.uuid4().hex
    old = comfy.connect(cid)
    old.recv()
    with comfy.connect(cid) as new:
        new.recv()
        old.close()
        time.sleep(0.2)
        pid = comfy.queue_prompt(recording("image_success")["workflow"], cid)["prompt_id"]
        wait_history(comfy, pid)
        new.ws.settimeout(0.3)
        with pytest.raises(websocket.WebSocketTimeoutException):
            new.recv()


def test_in_process_emulator_thread(tmp_path: Path) -> None:
    from emulators.comfyui import EmulatorConfig, EmulatorThread

    config = EmulatorConfig(output_directory=tmp_path / "out", step_delay=0)
    with EmulatorThread(config) as emu:
        c = Comfy(emu.base_url)
        close_later(c)
        assert c.get("/system_stats").json()["system"]["comfyui_version"] == "0.3.64"
        emu.set(error_at_node="2")
        assert c.get("/emulator/config").json()["error_at_node"] == "2"
        emu.set(error_at_node=None)
        with c.connect() as sock:
            sock.recv()
            pid = c.queue_prompt(recording("image_success")["workflow"], sock.client_id)
            sock.until_done(pid["prompt_id"])
        assert list((tmp_path / "out" / "acceptance").glob("image_*_.png"))
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", emu.port)) != 0  # stopped and unbound


def test_view_channels_and_preview(comfy: Comfy) -> None:
    name = f"rgba_{uuid.uuid4().hex[:6]}.png"
    buf = io.BytesIO()
    Image.new("RGBA", (6, 4), (10, 20, 30, 77)).save(buf, format="PNG")
    assert comfy.upload(name, buf.getvalue()).ok
    params = {"filename": name, "type": "input"}
    with Image.open(
        io.BytesIO(comfy.get("/view", params={**params, "channel": "rgb"}).content)
    ) as im:
        assert (im.mode, im.getpixel((0, 0))) == ("RGB", (10, 20, 30))
    with Image.open(
        io.BytesIO(comfy.get("/view", params={**params, "channel": "a"}).content)
    ) as im:
        assert im.getchannel("A").getpixel((0, 0)) == 77
    r = comfy.get("/view", params={**params, "preview": "jpeg;80"})
    assert r.headers["Content-Type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    assert comfy.get("/view", params={"filename": "../x.png"}).status_code == 400
    assert comfy.get("/view", params={"filename": "x.png", "subfolder": "../.."}).status_code == 403


def test_cli_accepts_comfyui_command_lines() -> None:
    from emulators.comfyui.__main__ import parse_args

    args = parse_args(
        [
            "--disable-auto-launch",
            "--disable-metadata",
            "--listen",
            "--verbose",
            "INFO",
            "--log-stdout",
            "--port",
            "8188",
            "--preview-method",
            "auto",
        ]
    )
    assert (args.host, args.port, args.verbose) == ("0.0.0.0", 8188, "INFO")
    args = parse_args(["--listen", "127.0.0.1", "--verbose", "--error-at-node", "9"])
    assert (args.host, args.verbose, args.error_at_node) == ("127.0.0.1", "DEBUG", "9")


def _sampler_workflow(seed: int) -> dict[str, Any]:
    workflow = json.loads((COMFY_FIXTURES / "workflows" / "wan22_ti2v_5B.api.json").read_text())
    for node in workflow.values():
        if node["class_type"] == "KSampler":
            node["inputs"].update(steps=3, seed=seed)
    return workflow


@pytest.mark.parametrize("with_flag", [True, False], ids=["metadata_client", "plain_client"])
def test_preview_method_sends_binary_preview_frames(comfy: Comfy, with_flag: bool) -> None:
    """Per step: progress_state, [type 4 frame], progress, [type 1 frame] (ComfyUI's order)."""
    comfy.config(preview_method="auto")
    workflow = _sampler_workflow(seed=1000 + with_flag)
    frames: list[Any] = []
    with comfy.connect() as sock:
        sock.recv()
        if with_flag:
            sock.ws.send(
                json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
            )
            assert sock.recv()["type"] == "feature_flags"
        pid = comfy.queue_prompt(workflow, sock.client_id)["prompt_id"]
        while True:
            raw = sock.ws.recv()
            if isinstance(raw, bytes):
                frames.append(raw)
                continue
            m = json.loads(raw)
            if m["type"] in ("progress_state", "progress"):
                frames.append(m["type"])
            if m["type"] == "executing" and m["data"]["node"] is None:
                break
    sampler = next(k for k, n in workflow.items() if n["class_type"] == "KSampler")
    kinds = ["bin" if isinstance(f, bytes) else f for f in frames]
    k = kinds.index("progress")  # the first step
    binaries = [f for f in frames if isinstance(f, bytes)]
    assert len(binaries) == 3
    for raw in binaries:
        event = int.from_bytes(raw[:4], "big")
        if with_flag:
            assert event == 4
            n = int.from_bytes(raw[4:8], "big")
            meta = json.loads(raw[8 : 8 + n])
            assert (meta["node_id"], meta["prompt_id"], meta["image_type"]) == (
                sampler,
                pid,
                "image/jpeg",
            )
            image = raw[8 + n :]
        else:
            assert (event, int.from_bytes(raw[4:8], "big")) == (1, 1)  # PREVIEW_IMAGE, JPEG
            image = raw[8:]
        with Image.open(io.BytesIO(image)) as img:
            assert img.format == "JPEG" and max(img.size) <= 512
    if with_flag:
        assert kinds[k - 2 : k + 1] == ["progress_state", "bin", "progress"]
    else:
        assert kinds[k - 1 : k + 2] == ["progress_state", "progress", "bin"]


def test_filename_prefix_placeholders(comfy: Comfy) -> None:
    workflow = json.loads(json.dumps(recording("image_success")["workflow"]))
    workflow["2"]["inputs"]["filename_prefix"] = "vars/%year%/img_%width%x%height%"
    got, _ = run(comfy, workflow)
    item = first_output(got)["images"][0]
    assert item["subfolder"] == f"vars/{time.localtime().tm_year}"
    assert item["filename"].startswith("img_64x48_")


def test_upload_crashes_where_comfyui_does(comfy: Comfy) -> None:
    r = comfy.upload("x.png", png_bytes(8, 6, (1, 1, 1)), type="bogus")
    assert r.status_code == 500  # ComfyUI: unbound upload folder for an unknown type
    r = comfy.post("/upload/image", data={"image": "not a file"})
    assert r.status_code == 500


def test_queue_delete_front_and_interrupt_leave_pending_prompts_alone(comfy: Comfy) -> None:
    slow = json.loads(json.dumps(recording("interrupt")["workflow"]))
    quick = recording("image_success")["workflow"]
    comfy.config(node_delay=0.3)
    with comfy.connect() as sock:
        sock.recv()
        running = comfy.queue_prompt(slow, sock.client_id)["prompt_id"]
        sock.until(lambda m: m["type"] == "executing" and m["data"]["prompt_id"] == running)
        deleted = comfy.queue_prompt(quick, sock.client_id)["prompt_id"]
        later = comfy.queue_prompt(quick, sock.client_id, extra_data={"n": 1})["prompt_id"]
        first = comfy.queue_prompt(quick, sock.client_id, front=True)["prompt_id"]
        pending = [x[1] for x in comfy.get("/queue").json()["queue_pending"]]
        assert set(pending) == {deleted, later, first}
        assert comfy.post("/queue", json={"delete": [deleted]}).status_code == 200
        assert deleted not in [x[1] for x in comfy.get("/queue").json()["queue_pending"]]
        comfy.post("/interrupt")  # global: only the running prompt
        sock.until_done(running)
        comfy.config(node_delay=0)
        sock.until_done(later)
    starts = [m["data"]["prompt_id"] for m in sock.messages if m["type"] == "execution_start"]
    assert starts == [running, first, later]  # front=True jumps the queue
    assert comfy.get(f"/history/{deleted}").json() == {}
    assert wait_history(comfy, running)["status"]["status_str"] == "error"
    assert wait_history(comfy, later)["status"]["status_str"] == "success"


def test_gc_stall_holds_the_end_of_job_messages_at_most_every_10_s(comfy: Comfy) -> None:
    comfy.config(gc_stall=1.0)
    workflow = json.loads(json.dumps(recording("image_success")["workflow"]))
    gaps = []
    for color in (1, 2):
        workflow["1"]["inputs"]["color"] = color
        with comfy.connect() as sock:
            sock.recv()
            pid = comfy.queue_prompt(workflow, sock.client_id)["prompt_id"]
            sock.until(lambda m: m["type"] == "execution_success")
            t = time.monotonic()
            sock.until_done(pid)
            gaps.append(time.monotonic() - t)
    assert gaps[0] >= 0.9  # the first job stalls (no collection yet)
    assert gaps[1] < 0.9  # the next one, within 10 s, does not


def test_stock_schema_rejects_the_wan_models(tmp_path: Path) -> None:
    """With the recorded stock /object_info (no Wan files on the machine) the official template is
    refused at /prompt, one value_not_in_list per loader, like a worker without the volume."""
    workflow = json.loads(
        (COMFY_FIXTURES / "workflows" / "wan22_t2v_14B_lightx2v.api.json").read_text()
    )
    srv = _spawn(tmp_path, "--schema", str(COMFY_FIXTURES / "object_info.json")).start()
    try:
        with Comfy(srv.base_url) as c:
            r = c.post("/prompt", json={"prompt": workflow})
        assert r.status_code == 400
        body = r.json()
        assert body["error"]["type"] == "prompt_outputs_failed_validation"
        loaders = {
            k
            for k, n in workflow.items()
            if n["class_type"].endswith("Loader") or n["class_type"] == "LoraLoaderModelOnly"
        }
        assert set(body["node_errors"]) == loaders
        for nid in loaders:
            errors = body["node_errors"][nid]["errors"]
            assert {e["type"] for e in errors} == {"value_not_in_list"}
    finally:
        srv.stop()


def test_max_upload_size_limits_uploads(tmp_path: Path) -> None:
    srv = _spawn(tmp_path, "--max-upload-size", "0.01").start()  # about 10 KB
    try:
        with Comfy(srv.base_url) as c:
            assert c.get("/features").json()["max_upload_size"] == 10485
            assert c.upload("small.png", png_bytes(8, 6, (1, 2, 3))).status_code == 200
            big = png_bytes(8, 6, (1, 2, 3)) + os.urandom(20_000)
            assert c.upload("big.png", big).status_code == 413
    finally:
        srv.stop()


def test_the_folder_an_emulator_made_for_itself_goes_when_it_stops(tmp_path: Path) -> None:
    """Directories not given go to a temp folder of the emulator's own, removed when it stops
    (in a thread, or its process stopped by SIGTERM); folders given stay."""
    from emulators.comfyui import EmulatorConfig, EmulatorThread

    own = EmulatorConfig(step_delay=0)
    folder = own.own_folder
    with EmulatorThread(own):
        assert own.input_directory.is_dir() and own.input_directory.parent == folder
    assert folder is not None and not folder.exists()
    given = {f"{n}_directory": tmp_path / n for n in ("input", "output", "temp")}
    with EmulatorThread(EmulatorConfig(step_delay=0, **given)) as emu:
        assert emu.config.own_folder is None
    assert all(p.is_dir() for p in given.values())

    temp = tmp_path / "system-temp"
    temp.mkdir()
    srv = comfy_emulator()
    srv.env = {"TMPDIR": str(temp)}
    with srv:
        assert [p.name[:13] for p in temp.iterdir()] == ["wanpod-comfy-"]
    assert srv.proc.returncode == 0 and list(temp.iterdir()) == []
