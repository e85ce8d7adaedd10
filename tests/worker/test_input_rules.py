"""Input rules from issues 11 and 15: worker-comfyui clients' extra keys and subfolders, file
inputs that leave ComfyUI's input folder, animated images, nesting depth, unique upload names,
and error messages that say what really went wrong."""

from __future__ import annotations

import base64
import io
import json

import pytest

from tests.helpers import RECORDINGS
from tests.worker.conftest import load_workflow, png_b64
from worker.comfy import format_node_errors, prompt_error
from worker.errors import InputError, UnreadableModel, to_result
from worker.inputs import MAX_DEPTH, job_upload_folder, parse_job_input, rewrite_image_refs
from worker.monitor import _error_from
from worker.settings import Settings

S = Settings()
WF = load_workflow("wan22_t2v_14B_lightx2v")


def load_image_wf(name: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }


# -- worker-comfyui compatibility -------------------------------------------------------------
def test_unknown_keys_are_ignored_and_listed_as_warnings():
    r = parse_job_input(
        {
            "workflow": WF,
            "client_tag": "abc",
            "images": [{"name": "a.png", "image": png_b64(), "note": "x"}],
        },
        S,
    )
    assert r.images[0].name == "a.png"
    assert r.warnings == (
        "input: unknown key 'client_tag' ignored (known: workflow, images, comfy_org_api_key)",
        "images[0]: unknown key 'note' ignored (known: name, image)",
    )
    assert parse_job_input({"workflow": WF}, S).warnings == ()


def test_base64_with_whitespace_anywhere_is_read_as_worker_comfyui_reads_it():
    """worker-comfyui's decode leaves whitespace out wherever it stands: a '\\r' or a space far
    into the text (no newline) is read too; other characters are still refused."""
    import base64

    clean = png_b64((64, 48))
    spaced = clean[:300] + "\r" + clean[300:600] + " " + clean[600:]
    for text in (clean, spaced):
        r = parse_job_input({"workflow": WF, "images": [{"name": "a.png", "image": text}]}, S)
        assert r.images[0].data == base64.b64decode(clean)
    with pytest.raises(InputError, match=r"images\[0\]\.image: is not valid base64"):
        bad = clean[:300] + "*" + clean[300:]
        parse_job_input({"workflow": WF, "images": [{"name": "a.png", "image": bad}]}, S)


def test_image_name_may_carry_a_relative_subfolder():
    r = parse_job_input(
        {"workflow": WF, "images": [{"name": "sub/in/a.png", "image": png_b64()}]}, S
    )
    assert (r.images[0].subfolder, r.images[0].filename) == ("sub/in", "a.png")


def test_empty_input_object_is_reported_as_present_and_empty():
    with pytest.raises(InputError, match=r"^invalid input: input: is an empty object"):
        parse_job_input({}, S)
    assert str(InputError("x", "y")).startswith("invalid input: ")


# -- file inputs outside the input folder (issue 15) ------------------------------------------
@pytest.mark.parametrize(
    "value, why",
    [
        ("../../etc/secret.png", "climbs out of the folder with '..'"),
        ("sub/../../x.png", "climbs out of the folder with '..'"),
        ("/etc/passwd", "is an absolute path"),
        ("C:\\secret.png", "is an absolute path"),
        ("ComfyUI_00001_.png [output]", "reads ComfyUI's output folder"),
        ("x.png [temp]", "reads ComfyUI's temp folder"),
        # ComfyUI cuts the tag and whatever one character stands before it
        ("ComfyUI_00001_.png_[output]", "reads ComfyUI's output folder"),
        ("x.pngX[temp]", "reads ComfyUI's temp folder"),
        ("./" * 520 + "../../../../etc/hostname", "climbs out of the folder with '..'"),  # long
    ],
)
def test_file_inputs_outside_the_input_folder_are_refused(value, why):
    with pytest.raises(InputError) as e:
        parse_job_input({"workflow": load_image_wf(value)}, S)
    text = str(e.value)
    assert text.startswith("invalid input: workflow['1'] (LoadImage) input 'image': ")
    assert why in text and repr(value)[:40] in text


def test_a_latent_file_outside_the_input_folder_is_refused():
    wf = load_image_wf("a.png")
    wf["5"] = {"class_type": "LoadLatent", "inputs": {"latent": "../../../../tmp/x.latent"}}
    with pytest.raises(InputError, match=r"workflow\['5'\] \(LoadLatent\) input 'latent': climbs"):
        parse_job_input({"workflow": wf}, S)


def test_other_nodes_file_inputs_are_checked_and_annotations_can_be_allowed():
    wf = load_image_wf("a.png")
    wf["3"] = {"class_type": "SomeCustomLoader", "inputs": {"picture": "../x.webp"}}
    with pytest.raises(InputError, match=r"workflow\['3'\] \(SomeCustomLoader\) input 'picture'"):
        parse_job_input({"workflow": wf}, S)
    ok = parse_job_input(
        {"workflow": load_image_wf("out.png [output]")}, S.replace(allow_annotated_inputs=True)
    )
    assert ok.workflow["1"]["inputs"]["image"] == "out.png [output]"
    # prompts and plain names are not file paths
    wf = load_image_wf("sub/a.png [input]")
    wf["4"] = {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "a cat walks ../ away", "clip": ["1", 0]},
    }
    parse_job_input({"workflow": wf}, S)


def test_settings_read_allow_annotated_inputs():
    assert Settings.from_env({}).allow_annotated_inputs is False
    assert Settings.from_env({"ALLOW_ANNOTATED_INPUTS": "true"}).allow_annotated_inputs is True


# -- animated images (issue 15) ----------------------------------------------------------------
@pytest.mark.parametrize("fmt, ext", [("WEBP", "webp"), ("PNG", "png")])
def test_every_frame_of_an_animation_counts_against_the_pixel_limit(fmt, ext):
    from PIL import Image

    frames = [Image.new("RGB", (50, 50), (i * 20, 0, 0)) for i in range(10)]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=50)
    b64 = base64.b64encode(buf.getvalue()).decode()
    s = Settings(max_image_pixels=10_000)  # one frame is 2,500 pixels, ten are 25,000
    with pytest.raises(
        InputError, match=r"is 50x50 x 10 frames = 25000 pixels; allowed: at most 10000"
    ):
        parse_job_input({"workflow": WF, "images": [{"name": f"a.{ext}", "image": b64}]}, s)
    one = Settings(max_image_pixels=30_000)
    r = parse_job_input({"workflow": WF, "images": [{"name": f"a.{ext}", "image": b64}]}, one)
    assert r.images[0].frames == 10


# -- nesting depth (issue 15) -------------------------------------------------------------------
def test_deep_json_string_and_deep_workflow_are_refused_with_the_limit():
    deep_text = "[" * 100_000 + "]" * 100_000
    for raw in (deep_text, {"workflow": deep_text}):
        with pytest.raises(InputError, match=f"at most {MAX_DEPTH} levels"):
            parse_job_input(raw, S)
    value: dict = {}
    wf = {"1": {"class_type": "X", "inputs": {"v": value}}}
    for _ in range(5000):
        value["a"] = {}
        value = value["a"]
    with pytest.raises(InputError, match=f"nested deeper than {MAX_DEPTH} levels") as e:
        parse_job_input({"workflow": wf}, S)
    assert to_result(e.value)["error"].startswith("invalid input: ")


# -- unique upload names (issue 15) ------------------------------------------------------------
def test_uploads_get_a_folder_of_their_own_and_the_workflow_follows():
    folder = job_upload_folder("job-1/../x")
    assert folder.startswith("wanpod-") and "/" not in folder and ".." not in folder
    wf = load_image_wf("example.png")
    wf["3"] = {"class_type": "LoadImage", "inputs": {"image": "sub/b.png [input]"}}
    out = rewrite_image_refs(
        wf, {"example.png": f"{folder}/example.png", "sub/b.png": f"{folder}/sub/b.png"}
    )
    assert out["1"]["inputs"]["image"] == f"{folder}/example.png"
    assert out["3"]["inputs"]["image"] == f"{folder}/sub/b.png"
    assert wf["1"]["inputs"]["image"] == "example.png"  # the client's workflow is not changed


# -- error messages (issue 11) -----------------------------------------------------------------
def recorded_bodies() -> dict[str, dict]:
    rec = json.loads((RECORDINGS / "invalid_prompts.json").read_text())
    seq = {c["seq"]: c["case"] for c in rec["cases"]}
    return {
        seq[e["seq"]]: {"body": e["json"], "prompt": (e["request"].get("json") or {}).get("prompt")}
        for e in rec["events"]
        if e.get("kind") == "http" and e.get("seq") in seq and isinstance(e.get("json"), dict)
    }


def test_only_loader_inputs_read_as_missing_files():
    ne = {
        "5": {
            "class_type": "ImageScale",
            "errors": [
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": "upscale_method: 'bogus' not in [...]",
                    "extra_info": {
                        "input_name": "upscale_method",
                        "input_config": [["nearest-exact", "bilinear"], {}],
                        "received_value": "bogus",
                    },
                }
            ],
        }
    }
    assert format_node_errors(ne) == [
        "node 5 (ImageScale) input 'upscale_method': 'bogus' is not one of the options: "
        "nearest-exact, bilinear"
    ]
    loader = recorded_bodies()["model_not_in_list"]["body"]["node_errors"]
    assert "files that exist: wan2.2_vae.safetensors" in format_node_errors(loader)[0]


def test_a_link_to_a_missing_node_names_the_node_and_the_input():
    rec = recorded_bodies()["link_to_missing_node"]
    lines = format_node_errors(rec["body"]["node_errors"], rec["prompt"])
    assert lines == [
        "node 2 (SaveImage) input 'images': links to node 42, which is not in the workflow"
    ]
    inner = {
        "2": {
            "class_type": "CreateVideo",
            "errors": [
                {
                    "type": "exception_during_inner_validation",
                    "message": "Exception when validating inner node",
                    "details": "'99'",
                    "extra_info": {
                        "input_name": "video",
                        "exception_message": "'99'",
                        "exception_type": "KeyError",
                        "traceback": ['  File "/comfyui/execution.py", line 788\n'],
                        "linked_node": ["2", 0],
                    },
                }
            ],
        }
    }
    wf = {"2": {"class_type": "CreateVideo", "inputs": {"images": ["99", 0], "fps": 8}}}
    assert format_node_errors(inner, wf) == [
        "node 2 (CreateVideo) input 'images': links to node 99, which is not in the workflow"
    ]


def test_a_bad_output_slot_is_named():
    ne = {
        "2": {
            "class_type": "SaveImage",
            "errors": [
                {
                    "type": "exception_during_validation",
                    "message": "Exception when validating node",
                    "details": "tuple index out of range",
                    "extra_info": {"exception_type": "IndexError", "traceback": []},
                }
            ],
        }
    }
    wf = {
        "1": {"class_type": "EmptyImage", "inputs": {}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 3], "filename_prefix": "x"}},
    }
    assert format_node_errors(ne, wf) == [
        "node 2 (SaveImage) input 'images': links to output slot 3 of node 1 (EmptyImage), "
        "which has no such output"
    ]


def test_unknown_class_without_stray_punctuation_and_with_details():
    err = recorded_bodies()["unknown_node_class"]["body"]["error"]
    msg, details = prompt_error(err)
    assert msg == "Cannot execute because node NoSuchNodeClass does not exist (node 1)"
    assert details == ["node 1: Cannot execute because node NoSuchNodeClass does not exist"]


def test_execution_error_details_are_one_line_without_server_paths():
    rec = json.loads((RECORDINGS / "wan_t2v_14B_lightx2v.json").read_text())
    data = next(
        e["json"]["data"]
        for e in rec["events"]
        if isinstance(e.get("json"), dict) and e["json"].get("type") == "execution_error"
    )
    exc = _error_from(data)
    assert isinstance(exc, UnreadableModel)
    exc.locate("vae")
    out = to_result(exc)
    assert out["error"] == (
        "workflow execution failed: node 73 (VAELoader): model file 'wan_2.1_vae.safetensors' "
        "in models/vae is unreadable (incomplete download?); replace the file and run the job again"
    )
    assert out["details"] == ["SafetensorError: Error while deserializing header: header too small"]
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/comfyui/x.py", line 3, in f\n'
        "    g()\n"
        "    ^^^\n"
        "ValueError: bad /srv/comfy/models/vae/v.safetensors"
    )
    one = to_result(UnreadableModel("1", "VAELoader", "vae_name", "v.safetensors", tb))
    assert one["details"] == ["ValueError: bad v.safetensors"]


# -- SaveImageWebsocket frames (issue 11) ------------------------------------------------------
def test_binary_frames_of_a_websocket_output_node_are_kept_and_previews_dropped():
    import struct

    from worker.monitor import Watcher

    wf = {
        "3": {"class_type": "KSampler", "inputs": {}},
        "9": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["8", 0]}},
    }
    w = Watcher(None, S, "p1", "c1", wf, None)  # type: ignore[arg-type]
    png = base64.b64decode(png_b64())
    w.current_node = "3"
    w._binary(struct.pack(">II", 1, 1) + b"\xff\xd8\xffjpeg preview")  # a sampler preview
    w.current_node = "9"
    w._binary(struct.pack(">II", 1, 2) + png)  # send_image: [1][2 = PNG][bytes]
    meta = json.dumps({"node_id": "9", "prompt_id": "p1", "image_type": "image/png"}).encode()
    w._binary(struct.pack(">II", 4, len(meta)) + meta + png)  # with preview metadata
    other = json.dumps({"node_id": "9", "prompt_id": "p2", "image_type": "image/png"}).encode()
    w._binary(struct.pack(">II", 4, len(other)) + other + png)  # another prompt's
    w._binary(b"\x00\x00")  # too short to be anything
    assert [(i.node_id, i.mime, i.data) for i in w.end.ws_images] == [
        ("9", "image/png", png),
        ("9", "image/png", png),
    ]
