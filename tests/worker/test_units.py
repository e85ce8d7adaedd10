"""Pure modules: settings, errors, input validation, outputs, progress, base64 encoding."""

from __future__ import annotations

import base64
import io
import json

import pytest

from tests.worker.conftest import load_workflow, png_b64
from worker import errors
from worker.comfy import format_node_errors
from worker.delivery import b64_file, b64_file_chunked, too_large_message
from worker.errors import ConfigError, InputError, to_result
from worker.inputs import parse_job_input
from worker.outputs import collect
from worker.progress import STAGES, Progress, ProgressReporter, planned_steps, stage_for
from worker.settings import Secret, Settings

S = Settings()


# -- settings --------------------------------------------------------------------------------
def test_settings_defaults_match_worker_comfyui():
    s = Settings.from_env({})
    assert s.comfy_host == "127.0.0.1:8188"
    assert s.ready_interval_s == 0.05 and s.ready_max_retries == 0
    assert s.ws_reconnect_attempts == 5 and s.ws_reconnect_delay_s == 3.0
    assert s.s3 is None and not s.progress_enabled


def test_settings_bad_values_name_the_variable():
    with pytest.raises(ConfigError, match="WEBSOCKET_RECONNECT_ATTEMPTS='x' is not an integer"):
        Settings.from_env({"WEBSOCKET_RECONNECT_ATTEMPTS": "x"})
    with pytest.raises(ConfigError, match="REFRESH_WORKER='maybe' is not a boolean"):
        Settings.from_env({"REFRESH_WORKER": "maybe"})
    with pytest.raises(ConfigError, match="COMFY_HOST"):
        Settings.from_env({"COMFY_HOST": "http://x:1"})


def test_incomplete_s3_settings_are_an_error_at_start():
    with pytest.raises(ConfigError) as e:
        Settings.from_env({"BUCKET_ENDPOINT_URL": "http://s3.local", "BUCKET_ACCESS_KEY_ID": "AK"})
    assert "BUCKET_SECRET_ACCESS_KEY missing" in str(e.value)
    with pytest.raises(ConfigError, match="set BUCKET_NAME"):
        Settings.from_env(
            {
                "BUCKET_ENDPOINT_URL": "http://127.0.0.1:9000",
                "BUCKET_ACCESS_KEY_ID": "AK",
                "BUCKET_SECRET_ACCESS_KEY": "SK",
            }
        )


def test_s3_bucket_from_virtual_hosted_endpoint_and_secrets_masked():
    s = Settings.from_env(
        {
            "BUCKET_ENDPOINT_URL": "https://my-bucket.s3.eu-west-1.amazonaws.com",
            "BUCKET_ACCESS_KEY_ID": "AKIAEXAMPLEKEY",
            "BUCKET_SECRET_ACCESS_KEY": "very-secret-value",
            "COMFY_ORG_API_KEY": "comfy-org-key-123",
        }
    )
    assert s.s3.bucket == "my-bucket"
    assert s.s3.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert s.s3.region == "eu-west-1"
    text = repr(s)
    for secret in ("AKIAEXAMPLEKEY", "very-secret-value", "comfy-org-key-123"):
        assert secret not in text
    assert repr(Secret("x")) == "Secret('***')"


@pytest.mark.parametrize(
    "host, region",
    [
        ("my-bucket.s3.eu-west-1.amazonaws.com", "eu-west-1"),
        ("my-bucket.s3-eu-west-1.amazonaws.com", "eu-west-1"),  # AWS's older dash form
        ("s3.dualstack.ap-southeast-2.amazonaws.com", "ap-southeast-2"),
        ("s3-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ("my-bucket.s3.amazonaws.com", "us-east-1"),  # the global endpoint
        ("s3.eu-central-1.wasabisys.com", "eu-central-1"),
        ("s3.us-west-004.backblazeb2.com", "us-west-004"),
        ("minio.internal", "us-east-1"),
    ],
)
def test_s3_region_is_the_one_the_endpoint_names(host, region):
    env = {"BUCKET_ACCESS_KEY_ID": "AK", "BUCKET_SECRET_ACCESS_KEY": "SK", "BUCKET_NAME": "b"}
    s = Settings.from_env({**env, "BUCKET_ENDPOINT_URL": f"https://{host}"})
    assert s.s3.region == region
    named = Settings.from_env(
        {**env, "BUCKET_ENDPOINT_URL": f"https://{host}", "BUCKET_REGION": "x-1"}
    )
    assert named.s3.region == "x-1"


def test_a_blank_setting_is_its_default():
    """An empty row in RunPod's environment editor means the default, for switches too."""
    blank = {"CLEANUP_JOB_FILES": "", "REFRESH_WORKER": " ", "WEBSOCKET_RECONNECT_ATTEMPTS": ""}
    s = Settings.from_env(blank)
    assert s.cleanup is True and s.refresh_worker is False and s.ws_reconnect_attempts == 5
    assert Settings.from_env({"CLEANUP_JOB_FILES": "false"}).cleanup is False
    # except COMFY_PID_FILE, where empty means no pid file (start.sh writes none): no check
    assert Settings.from_env({}).comfy_pid_file == "/tmp/comfyui.pid"
    assert Settings.from_env({"COMFY_PID_FILE": ""}).comfy_pid_file == ""


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", errors.ALL_ERRORS)
def test_every_error_class_has_a_readable_message(cls):
    assert cls.__doc__
    if cls is InputError:
        exc = cls("field", "is wrong", "a, b")
    elif cls is errors.UnreadableModel:
        exc = cls(
            "10", "VAELoader", "vae_name", "v.safetensors", "SafetensorError: header too small"
        )
    else:
        exc = cls("something broke")
    out = to_result(exc)
    assert isinstance(out["error"], str) and out["error"]
    assert out["error"].startswith(cls.prefix + ": ")


def test_to_result_unexpected_exception_and_scrubbing():
    out = to_result(ValueError("bad thing with key sk-12345678"), secrets=["sk-12345678"])
    assert out == {"error": "internal worker error: ValueError: bad thing with key ***"}
    blob = base64.b64encode(b"x" * 300).decode()
    assert blob not in to_result(errors.ExecutionFailed(f"oops {blob}"))["error"]
    jpeg = png_b64((64, 64), fmt="JPEG")  # starts "/9j/": slashes, but long parts between them
    assert (
        to_result(errors.ExecutionFailed(f"oops {jpeg}"))["error"]
        == "workflow execution failed: oops <…>"
    )


def test_a_secret_that_looks_like_a_path_is_scrubbed_whole():
    """An S3 secret key holds '+' and '/': it is taken out before a path in the message is
    shortened to its last part (which would cut the secret apart, leaving most of it)."""
    secret = "Ab3d+/Ef5h/Ij7lMn9pQr1tUv3xWz5Ab7dEf9h"
    for exc in (RuntimeError(f"signing failed for key {secret}"),
                errors.ExecutionFailed(f"bad credentials {secret}")):  # fmt: skip
        error = to_result(exc, [secret])["error"]
        assert "***" in error and "Ij7lMn9p" not in error and "Ab3d" not in error, error


def test_a_logged_traceback_holds_no_secret(capsys):
    """The worker's log lines go through one formatter that takes its secret values out of the
    whole line, an unexpected error's traceback included."""
    import logging

    from worker.handler import NOISY_LOGGERS, configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    try:
        configure_logging(Settings.from_env({"COMFY_ORG_API_KEY": "org-key-LOGS-5678"}))
        try:
            raise RuntimeError("ComfyUI answered for org-key-LOGS-5678")
        except RuntimeError:
            logging.getLogger("worker").exception("job x: unexpected error")
        out = capsys.readouterr().out
    finally:  # as the other tests of this process expect it
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, was in noisy.items():
            logging.getLogger(name).setLevel(was)
    assert "job x: unexpected error" in out and "Traceback" in out
    assert "RuntimeError: ComfyUI answered for ***" in out and "org-key-LOGS" not in out


def test_a_refusal_names_a_long_path_as_given():
    """A long path is the caller's own value, not a payload: the refusal quotes it."""
    path = "/runpod-volume/inputs/customer_uploads/2026/12/06/job_0123456789ab/start.png"
    assert len(path.split(".")[0]) > 64  # as long as a base64 run that is cut out
    out = to_result(InputError("workflow['1'] (LoadImage) input 'image'", "is absolute", "", path))
    assert f"(got {path!r})" in out["error"], out


# -- inputs ----------------------------------------------------------------------------------
WF = load_workflow("wan22_t2v_14B_lightx2v")


def refuse(raw, match):
    with pytest.raises(InputError, match=match):
        parse_job_input(raw, S)


def test_accepts_worker_comfyui_input_forms():
    r = parse_job_input({"workflow": WF}, S)
    assert r.workflow["80"]["class_type"] == "SaveVideo"
    r2 = parse_job_input(json.dumps({"workflow": json.dumps(WF)}), S)
    assert r2.workflow == r.workflow
    img = png_b64()
    r3 = parse_job_input(
        {"workflow": WF, "images": [{"name": "a.png", "image": "data:image/png;base64," + img}]}, S
    )
    assert r3.images[0].mime == "image/png" and r3.images[0].width == 64
    r4 = parse_job_input(
        {"workflow": WF, "images": [{"name": "b.jpg", "image": png_b64(fmt="JPEG")}]}, S
    )
    assert r4.images[0].mime == "image/jpeg"


def test_refusals_name_field_value_and_allowed():
    refuse(None, "input: is missing")
    refuse("{nope", "input: is not valid JSON")
    refuse({}, "input: is an empty object")
    refuse({"images": []}, "workflow: is missing")
    refuse({"workflow": []}, "workflow: must be a non-empty object")
    refuse({"workflow": {"nodes": [], "links": []}}, "UI format")
    refuse({"workflow": {"1": {"inputs": {}}}}, r"workflow\['1'\].class_type")
    refuse({"workflow": {"1": {"class_type": "X"}}}, r"workflow\['1'\].inputs")
    refuse({"workflow": WF, "images": {}}, "images: must be a list")
    refuse({"workflow": WF, "images": [{"name": "a.png"}]}, r"images\[0\]: must be an object")
    for bad in ("../x.png", "a/../b.png", "/a.png", "a\\b.png", "..png", "a//b.png", "./a.png"):
        refuse(
            {"workflow": WF, "images": [{"name": bad, "image": png_b64()}]},
            r"images\[0\].name: is not a safe relative file name",
        )
    refuse(
        {"workflow": WF, "images": [{"name": "a.gif", "image": png_b64()}]}, ".png .jpg .jpeg .webp"
    )
    refuse({"workflow": WF, "images": [{"name": "a.png", "image": "!!!"}]}, "not valid base64")
    txt = base64.b64encode(b"hello world, not an image").decode()
    refuse({"workflow": WF, "images": [{"name": "a.png", "image": txt}]}, "not a PNG, JPEG or WebP")
    refuse({"workflow": WF, "images": [{"name": "a.jpg", "image": png_b64()}]}, "content is png")
    two = [{"name": "a.png", "image": png_b64()}] * 2
    refuse({"workflow": WF, "images": two}, "duplicate")
    refuse({"workflow": WF, "comfy_org_api_key": 5}, "comfy_org_api_key: must be a string")


def test_limits_count_size_and_decompression_bomb():
    s = Settings(max_images=1, max_image_bytes=2000, max_image_pixels=10_000)
    imgs = [{"name": f"{i}.png", "image": png_b64()} for i in range(2)]
    with pytest.raises(InputError, match="at most 1 \\(MAX_IMAGES\\)"):
        parse_job_input({"workflow": WF, "images": imgs}, s)
    from PIL import Image

    big = io.BytesIO()
    Image.new("RGB", (300, 300)).save(big, format="PNG")  # small file, 90k pixels
    b = base64.b64encode(big.getvalue()).decode()
    with pytest.raises(InputError, match="pixels"):
        parse_job_input({"workflow": WF, "images": [{"name": "b.png", "image": b}]}, s)
    noisy = base64.b64encode(bytes(range(256)) * 20).decode()
    with pytest.raises(InputError, match="MAX_IMAGE_BYTES"):
        parse_job_input({"workflow": WF, "images": [{"name": "c.png", "image": noisy}]}, s)


def test_api_key_from_input_overrides_env_and_is_masked():
    s = Settings(comfy_org_api_key=Secret("env-key"))
    assert parse_job_input({"workflow": WF}, s).comfy_org_api_key.value == "env-key"
    r = parse_job_input({"workflow": WF, "comfy_org_api_key": "job-key"}, s)
    assert r.comfy_org_api_key.value == "job-key" and "job-key" not in repr(r)


# -- node errors -----------------------------------------------------------------------------
def test_node_errors_one_line_each_and_missing_model_lists_files(tmp_path):
    from tests.helpers import RECORDINGS

    rec = json.loads((RECORDINGS / "invalid_prompts.json").read_text())
    bodies = [
        e["json"]
        for e in rec["events"]
        if isinstance(e.get("json"), dict) and e["json"].get("node_errors")
    ]
    lines = [line for b in bodies for line in format_node_errors(b["node_errors"])]
    assert any(
        "node 2 (VAELoader) input 'vae_name': 'no_such_vae.safetensors' is not available; files "
        "that exist: wan2.2_vae.safetensors, wan_2.1_vae.safetensors, pixel_space" in line
        for line in lines
    ), lines
    assert "node 2 (SaveImage) input 'images': Required input is missing" in lines


# -- outputs ---------------------------------------------------------------------------------
def test_collect_every_kind_dedupes_and_skips_temp():
    def f(name, sub="", t="output"):
        return {"filename": name, "subfolder": sub, "type": t}

    outputs = {
        "9": {"images": [f("w_00001_.mp4", "video")], "animated": [True]},
        "10": {"images": [f("p.png"), f("ComfyUI_temp_x.png", t="temp")]},
        "11": {"gifs": [{**f("vhs_00001.mp4"), "format": "video/h264-mp4"}]},
        "12": {"audio": [f("a.flac", "audio")]},
        "13": {"images": [f("anim.webp")], "animated": [True]},
        "14": {"images": [f("p.png")]},
        "15": {"text": ["hello"]},
    }
    got = [(f.node_id, f.filename, f.kind, f.mime) for f in collect(outputs)]
    assert got == [
        ("9", "w_00001_.mp4", "video", "video/mp4"),
        ("10", "p.png", "image", "image/png"),
        ("11", "vhs_00001.mp4", "video", "video/mp4"),
        ("12", "a.flac", "audio", "audio/flac"),
        ("13", "anim.webp", "animation", "image/webp"),
    ]


# -- progress --------------------------------------------------------------------------------
def test_progress_shape_throttle_and_quiet():
    posts = []
    now = [0.0]
    rep = ProgressReporter(
        {"id": "j"}, True, 1.0, 0.3, post=lambda j, p: posts.append(p), clock=lambda: now[0]
    )
    rep.update(stage="starting", nodes_total=10)
    rep.update(stage="loading")  # stage change: posted
    now[0] = 0.5
    rep.update(nodes_done=3)  # throttled
    now[0] = 1.6
    rep.update(stage="sampling", node="81", node_type="KSamplerAdvanced", step=1, steps=2)
    assert [p["stage"] for p in posts] == ["starting", "loading", "sampling"]
    assert set(posts[-1]) == set(Progress().to_dict()) == {
        "stage", "node", "node_type", "step", "steps", "nodes_done", "nodes_total", "percent",
        "elapsed_s", "queue_position",
    }  # fmt: skip
    assert posts[-1]["percent"] == 35.0 and posts[-1]["elapsed_s"] == 1.6
    rep.finish()
    rep.update(stage="saving")
    assert len(posts) == 3
    assert all(p["stage"] in STAGES for p in posts)
    assert stage_for("KSamplerAdvanced", "loading") == "sampling"
    assert stage_for("VAEDecode", "sampling") == "decoding"
    assert stage_for("SaveVideo", "decoding") == "saving"
    assert stage_for("UNETLoader", "starting") == "loading"


def test_a_throttled_change_is_posted_when_the_interval_is_up():
    import asyncio

    posts: list[dict] = []

    async def scenario() -> None:
        rep = ProgressReporter({"id": "j"}, True, 0.2, 0.0, post=lambda j, p: posts.append(p))
        rep.update(stage="sampling", node="81", step=0, steps=2)  # posted (stage change)
        rep.update(step=1)  # throttled ...
        rep.update(step=2)
        assert [p["step"] for p in posts] == [0]
        await asyncio.sleep(0.3)  # ... and posted once the interval is up, latest state only
        assert [p["step"] for p in posts] == [0, 2]
        rep.update(step=1, steps=2, node="84")  # 0.1 s after that post: throttled
        rep.finish()  # nothing after the end, not even a pending trailing post
        await asyncio.sleep(0.3)

    asyncio.run(scenario())
    assert [p["step"] for p in posts] == [0, 2]


def test_ordered_sender_posts_one_at_a_time_in_order_and_the_newest_pending_wins():
    import threading

    from worker.progress import OrderedSender

    posts: list[int] = []
    release = threading.Event()
    in_flight = threading.Event()

    def slow_post(job: dict, payload: dict) -> None:
        in_flight.set()
        release.wait(5)
        posts.append(payload["n"])

    sender = OrderedSender({"id": "j"}, slow_post)
    sender.submit({"id": "j"}, {"n": 1})
    assert in_flight.wait(5)  # 1 is being posted ...
    for n in (2, 3, 4):  # ... while a burst arrives: only the newest is kept
        sender.submit({"id": "j"}, {"n": n})
    release.set()
    assert sender.close(5)  # drains what is pending, then accepts nothing more
    sender.submit({"id": "j"}, {"n": 5})
    assert posts == [1, 4] and sender.sent == 2


def test_percent_never_goes_backwards():
    posts: list[dict] = []
    rep = ProgressReporter({"id": "j"}, True, 0.0, 0.0, post=lambda j, p: posts.append(p))
    rep.update(stage="sampling", nodes_total=4, nodes_done=2, step=1, steps=2)
    rep.update(stage="queued", nodes_done=0, step=None)  # e.g. a re-queued attempt
    assert [p["percent"] for p in posts] == [62.5, 62.5]


def test_queue_position_comes_from_the_status_broadcasts():
    """No GET /queue: ComfyUI broadcasts queue_remaining (running + pending, ours included) when
    our prompt is put; the greeting on connect (with `sid`) predates our prompt."""
    from worker.monitor import Watcher

    rep = ProgressReporter({"id": "j"}, enabled=False, interval_s=0.0, quiet_s=0.0)
    watch = Watcher(None, S, "p1", "c1", {}, rep)  # type: ignore[arg-type]

    def status(remaining: int, **extra) -> None:
        data = {"status": {"exec_info": {"queue_remaining": remaining}}, **extra}
        watch._handle({"type": "status", "data": data})

    rep.update(stage="queued")
    status(2, sid="c1")  # two prompts before ours was put: not counted
    assert rep.state.queue_position is None
    status(3)  # ours put behind two
    assert rep.state.queue_position == 2
    status(4)  # someone queued after us: we do not move back
    status(2)
    assert rep.state.queue_position == 1
    watch._handle({"type": "execution_start", "data": {"prompt_id": "p1"}})
    assert rep.state.queue_position == 0 and rep.state.stage == "loading"


def test_nodes_between_two_samplers_keep_the_last_samplers_progress():
    """Wan 2.2 14B runs the low-noise expert's ModelSamplingSD3 (and LoRA) between the two
    KSamplerAdvanced nodes: the job stays at the first sampler's last step meanwhile (its steps
    counted once in the percent), so pages never see a non-sampler "sampling" or a step reset."""
    from worker.monitor import Watcher

    wf = load_workflow("wan22_t2v_14B_lightx2v")
    samplers = sorted(
        (n for n, v in wf.items() if v["class_type"] == "KSamplerAdvanced"),
        key=lambda n: wf[n]["inputs"]["start_at_step"],
    )
    second_model = str(wf[samplers[1]]["inputs"]["model"][0])  # the low-noise ModelSamplingSD3
    assert wf[second_model]["class_type"] == "ModelSamplingSD3"
    rep = ProgressReporter({"id": "j"}, enabled=False, interval_s=0.0, quiet_s=0.0)
    watch = Watcher(None, S, "p1", "c1", wf, rep)  # type: ignore[arg-type]

    def msg(mtype: str, **data) -> None:
        assert watch._handle({"type": mtype, "data": {"prompt_id": "p1", **data}}) is False

    rep.update(nodes_total=len(wf))
    msg("executing", node=samplers[0])
    msg("progress", value=2, max=2)
    msg("progress_state", nodes={samplers[0]: {"state": "finished"}})
    assert (rep.state.step, rep.state.steps) == (2, 2)  # shown, but counted once
    assert rep.state.percent == round(100 * 1 / len(wf), 1)
    msg("executing", node=second_model)
    state = rep.state
    assert (state.stage, state.node, state.node_type, state.step, state.steps) == (
        "sampling", samplers[0], "KSamplerAdvanced", 2, 2,
    )  # fmt: skip
    msg("executing", node=samplers[1])
    assert (rep.state.node, rep.state.step, rep.state.steps) == (samplers[1], 0, 2)


# -- delivery helpers ------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 3 * (1 << 20) + 1, 7 * (1 << 20) + 2])
def test_b64_file_matches_base64(tmp_path, n):
    import os

    p = tmp_path / "f.bin"
    data = os.urandom(n)
    p.write_bytes(data)
    assert b64_file(p, n) == base64.b64encode(data).decode()
    assert b64_file_chunked(p, n) == base64.b64encode(data).decode()


def test_upload_sends_the_real_content_type_and_name():
    import asyncio

    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from worker.comfy import ComfyClient

    seen = {}

    async def upload(request):
        post = await request.post()
        f = post["image"]
        seen.update(
            name=f.filename, type=f.content_type, overwrite=post["overwrite"], n=len(f.file.read())
        )
        return web.json_response({"name": f.filename, "subfolder": "", "type": "input"})

    async def scenario():
        app = web.Application()
        app.router.add_post("/upload/image", upload)
        async with TestServer(app, host="127.0.0.1") as srv, aiohttp.ClientSession() as session:
            s = Settings(comfy_host=f"127.0.0.1:{srv.port}")
            req = parse_job_input(
                {
                    "workflow": WF,
                    "images": [{"name": "my photo.jpg", "image": png_b64(fmt="JPEG")}],
                },
                s,
            )
            return await ComfyClient(s, session).upload(req.images[0])

    assert asyncio.run(scenario()) == "my photo.jpg"
    assert seen["name"] == "my photo.jpg" and seen["type"] == "image/jpeg"
    assert seen["overwrite"] == "true" and seen["n"] > 100


def test_too_large_message_says_how_to_enable_s3():
    msg = too_large_message(26_700_000, 20_000_000)
    assert "26.7 MB" in msg and "BUCKET_ENDPOINT_URL" in msg and "BUCKET_NAME" in msg


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"class_type": "KSampler", "inputs": {"steps": 20}}, 20),
        (  # the high-noise expert of a 4-step split: steps 0..2
            {
                "class_type": "KSamplerAdvanced",
                "inputs": {"steps": 4, "start_at_step": 0, "end_at_step": 2},
            },
            2,
        ),
        (  # the low-noise expert of a 20-step split runs to the end (end_at_step 10000)
            {
                "class_type": "KSamplerAdvanced",
                "inputs": {"steps": 20, "start_at_step": 10, "end_at_step": 10000},
            },
            10,
        ),
        ({"class_type": "KSampler", "inputs": {"steps": ["5", 0]}}, None),  # a link: unknown
        ({"class_type": "VAEDecode", "inputs": {}}, None),
    ],
)
def test_planned_steps_of_a_sampler_are_known_before_it_reports(node, expected):
    assert planned_steps(node) == expected
