"""The inventory job `{"inventory": true}`: ComfyUI's model folders, node classes and version,
answered without running a workflow; against the emulator's shipped schema and a fake volume."""

from __future__ import annotations

import json

from tests.worker.conftest import Comfy, get_json, load_workflow, run
from worker.handler import make_handler

WAN_FILES = {
    "diffusion_models": "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
    "text_encoders": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "vae": "wan_2.1_vae.safetensors",
    "loras": "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
}


def test_inventory_lists_what_comfyui_lists(emu: Comfy):
    out = run(make_handler(emu.settings()), {"id": "inv", "input": {"inventory": True}})
    assert set(out) == {"inventory"}, out
    inv = out["inventory"]
    assert inv["nodes"] == sorted(get_json(emu.url + "/object_info"))
    assert (
        inv["comfyui_version"] == get_json(emu.url + "/system_stats")["system"]["comfyui_version"]
    )
    folders = [f for f in get_json(emu.url + "/models") if f not in ("custom_nodes", "configs")]
    assert sorted(inv["models"]) == sorted(folders)
    for folder, name in WAN_FILES.items():
        assert inv["models"][folder] == sorted(get_json(f"{emu.url}/models/{folder}"))
        assert name in inv["models"][folder]
    # nothing was queued: ComfyUI's history stays as it was
    assert get_json(emu.url + "/queue") == {"queue_running": [], "queue_pending": []}


def test_inventory_follows_the_volume(tmp_path):
    vol = tmp_path / "vol"
    for folder, name in [
        ("unet", "my_unet.safetensors"),  # the legacy name: ComfyUI lists it as diffusion_models
        ("loras/styles", "ink.safetensors"),
        ("vae", "wan_2.1_vae.safetensors"),
    ]:
        (vol / "models" / folder).mkdir(parents=True, exist_ok=True)
        (vol / "models" / folder / name).write_bytes(b"")
    paths = tmp_path / "extra_model_paths.yaml"
    paths.write_text(
        "vol:\n  base_path: " + str(vol) + "\n  diffusion_models: models/diffusion_models/\n"
        "  unet: models/unet/\n  loras: models/loras/\n  vae: models/vae/\n"
    )
    comfy = Comfy(tmp_path / "comfy", ["--extra-model-paths-config", str(paths)])
    try:
        out = run(make_handler(comfy.settings()), {"id": "v", "input": {"inventory": True}})
    finally:
        comfy.stop()
    models = out["inventory"]["models"]
    assert "my_unet.safetensors" in models["diffusion_models"]
    assert "styles/ink.safetensors" in models["loras"]
    assert models["vae"] == ["wan_2.1_vae.safetensors"]
    assert "umt5_xxl_fp8_e4m3fn_scaled.safetensors" not in models.get("text_encoders", [])


def test_inventory_must_be_true_and_alone(emu: Comfy):
    h = make_handler(emu.settings())
    out = run(h, {"id": "a", "input": {"inventory": "yes"}})
    assert out["error"].startswith("invalid input: inventory: must be true"), out
    out = run(
        h,
        {
            "id": "b",
            "input": {"inventory": True, "workflow": load_workflow("wan22_t2v_14B_lightx2v")},
        },
    )
    assert "inventory: comes with 'workflow'" in out["error"]
    assert "alone" in out["error"]


def test_inventory_when_comfyui_is_down(tmp_path):
    comfy = Comfy(tmp_path / "c")
    settings = comfy.settings(COMFY_READY_TIMEOUT_S="1")
    comfy.stop()
    out = run(make_handler(settings), {"id": "d", "input": {"inventory": True}})
    assert out["error"].startswith("ComfyUI unavailable"), out
    assert json.dumps(out).count("inventory") == 0
