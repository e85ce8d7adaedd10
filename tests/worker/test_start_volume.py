"""worker/start.sh against the emulator with a fake network volume, a fake RunPod cached-model
folder and fake GPU / system tools, and the volume report."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import yaml

from tests.helpers import COMFY_FIXTURES, REPO, free_port
from tests.worker.conftest import load_workflow, with_seed
from worker.volume import DEFAULT_ROOTS, WAN22_FILES, find_cached, render_yaml, scan
from workflows.catalog import load_catalog

START = REPO / "worker" / "start.sh"
EMULATOR = f"{sys.executable} -m emulators.comfyui --step-delay 0.005 --no-cache"


def fake_volume(root, misplaced: bool = False):
    for name, folder in WAN22_FILES.items():
        if misplaced and folder == "text_encoders":
            folder = "checkpoints"
        if misplaced and name.startswith("wan2.2_ti2v"):
            continue
        d = root / "models" / ("unet" if folder == "diffusion_models" and "i2v" in name else folder)
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(b"")
    (root / "models" / "loras" / "README.txt").write_text("not a model")
    return root


def start_env(tmp_path, volume, **extra):
    port = free_port()
    folders = tmp_path / "comfy"
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),  # start.sh's extra_model_paths YAML (mktemp) stays in the test's
        "WANPOD_PYTHON": sys.executable,
        "COMFY_CMD": EMULATOR,
        "COMFY_EXTRA_ARGS": f"--input-directory {folders}/in --output-directory {folders}/out "
        f"--temp-directory {folders}/tmp",
        "COMFY_HOST": f"127.0.0.1:{port}",
        "COMFY_PID_FILE": str(tmp_path / "comfy.pid"),
        "COMFY_OUTPUT_DIR": str(folders / "out"),
        "WANPOD_VOLUME_PATHS": f"{tmp_path}/nothing-here:{volume}",
        "COMFY_START_TIMEOUT_S": "30",
        "WANPOD_GPU_CHECK_CMD": "echo OK: Fake GPU 80GB",  # no GPU here: a stand-in check
        **extra,
    }


def test_volume_report_counts_and_warnings(tmp_path):
    rep = scan(fake_volume(tmp_path / "vol", misplaced=True))
    assert rep.counts["diffusion_models"] == 2 and rep.counts["unet"] == 2
    assert rep.counts["loras"] == 4 and rep.counts["checkpoints"] == 1
    text = "\n".join(rep.warnings)
    assert "umt5_xxl_fp8_e4m3fn_scaled.safetensors is in models/checkpoints/ but" in text
    assert "models/text_encoders/" in text
    assert "diffusion_models/wan2.2_ti2v_5B_fp16.safetensors" in text and "missing" in text
    assert "unet" not in text  # the legacy alias is accepted
    assert scan(fake_volume(tmp_path / "ok")).warnings == []


def test_shipped_yaml_lists_both_roots_and_the_wan_folders():
    shipped = (REPO / "worker" / "extra_model_paths.yaml").read_text()
    assert shipped == render_yaml(DEFAULT_ROOTS)
    doc = yaml.safe_load(shipped)
    assert [v["base_path"] for v in doc.values()] == list(DEFAULT_ROOTS)
    for section in doc.values():
        for folder in ("diffusion_models", "text_encoders", "vae", "loras", "upscale_models",
                       "clip_vision", "audio_encoders", "unet", "clip"):  # fmt: skip
            assert section[folder] == f"models/{folder}/"
    # the same keys ComfyUI knows (recorded /models list) plus the two legacy aliases
    recorded = json.loads((COMFY_FIXTURES / "recordings" / "endpoints.json").read_text())
    models = next(
        e["json"] for e in recorded["events"]
        if e.get("request", {}).get("path") in ("/models", "/api/models") and "json" in e
    )  # fmt: skip
    assert set(doc["runpod_volume"]) - {"base_path", "unet", "clip"} <= set(models)


def run_start(tmp_path, vol, job, **env):
    p = subprocess.run(["bash", str(START), "--test_input", json.dumps(job)], cwd=REPO,
                       env=start_env(tmp_path, vol, **env), capture_output=True, text=True,
                       timeout=90)  # fmt: skip
    return p.returncode, p.stdout + p.stderr


T2V_JOB = {"input": {"workflow": with_seed(load_workflow("wan22_t2v_14B_lightx2v"), 41)}}


def test_start_sh_runs_a_job_against_the_emulator_with_a_fake_volume(tmp_path):
    vol = fake_volume(tmp_path / "volume")
    code, out = run_start(tmp_path, vol, T2V_JOB, NETWORK_VOLUME_DEBUG="true")
    assert code == 0, out[-4000:]
    assert f"volume: {vol} (12 model files)" in out
    assert "volume:   models/loras: 4" in out and "volume:     umt5_xxl_fp8_e4m3fn_scaled" in out
    assert "WARNING" not in out
    assert "ComfyUI is ready on" in out
    assert "job local_test done: ComfyUI_00001_.mp4 (video/mp4" in out
    assert "worker exited with code 0" in out


def test_start_sh_warns_about_misplaced_wan_files_and_the_job_says_what_exists(tmp_path):
    vol = fake_volume(tmp_path / "volume", misplaced=True)
    code, out = run_start(tmp_path, vol, T2V_JOB)
    assert "WARNING: umt5_xxl_fp8_e4m3fn_scaled.safetensors is in models/checkpoints/" in out
    assert "diffusion_models/wan2.2_ti2v_5B_fp16.safetensors" in out
    # ComfyUI (the emulator reads the generated extra_model_paths.yaml) does not find it either
    assert code == 1
    assert "node 71 (CLIPLoader) input 'clip_name': 'umt5_xxl_fp8_e4m3fn_scaled.safetensors' is " \
        "not available" in out  # fmt: skip


def test_start_sh_fails_clearly_when_comfyui_does_not_start(tmp_path):
    fail = tmp_path / "broken_comfy.sh"
    fail.write_text("echo 'Traceback: CUDA error: no kernel image'; exit 3\n")
    env = start_env(tmp_path, tmp_path, COMFY_CMD=f"bash {fail}")
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(START)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert p.returncode == 1
    assert "ComfyUI exited with code 3 before it was ready" in p.stdout + p.stderr
    assert time.monotonic() - t0 < 15


def test_start_sh_stops_when_comfyui_dies_while_the_worker_runs(tmp_path):
    vol = fake_volume(tmp_path / "volume")
    env = start_env(tmp_path, vol)
    env["COMFY_EXTRA_ARGS"] += " --crash-at-node 81"
    job = {"input": {"workflow": with_seed(load_workflow("wan22_t2v_14B_lightx2v"), 42)}}
    p = subprocess.run(["bash", str(START), "--test_input", json.dumps(job)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=90)  # fmt: skip
    out = p.stdout + p.stderr
    assert p.returncode != 0, out[-3000:]
    assert "ComfyUI stopped during the job" in out or "ComfyUI (pid" in out, out[-3000:]


def fake_tools(tmp_path):
    """ldconfig that knows a tcmalloc, comfy-manager-set-mode that records its call, and a
    ComfyUI command that records its environment and arguments before starting the emulator."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "ldconfig").write_text(
        "#!/bin/sh\necho '\tlibtcmalloc.so.4 (libc6,x86-64) => /usr/lib/libtcmalloc.so.4'\n"
    )
    (bin_ / "comfy-manager-set-mode").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/manager\n')
    comfy = tmp_path / "comfy.sh"
    comfy.write_text(
        f'echo "LD_PRELOAD=$LD_PRELOAD" > {tmp_path}/comfy-env\n'
        f'echo "$@" > {tmp_path}/comfy-args\n'
        f'exec {EMULATOR} "$@"\n'
    )
    for f in (*bin_.iterdir(), comfy):
        f.chmod(0o755)
    return {"PATH": f"{bin_}:/usr/bin:/bin", "COMFY_CMD": f"bash {comfy}"}


def test_start_sh_keeps_the_base_images_start_up(tmp_path):
    vol = fake_volume(tmp_path / "volume")
    code, out = run_start(tmp_path, vol, T2V_JOB, **fake_tools(tmp_path))
    assert code == 0, out[-4000:]
    assert "tcmalloc: libtcmalloc.so.4 preloaded" in out
    assert (tmp_path / "comfy-env").read_text().strip() == "LD_PRELOAD=libtcmalloc.so.4"
    assert "GPU available: Fake GPU 80GB" in out
    assert (tmp_path / "manager").read_text().strip() == "offline"
    args = (tmp_path / "comfy-args").read_text().split()
    assert {"--log-stdout", "--disable-metadata", "--disable-auto-launch"} <= set(args)
    assert "--verbose" not in args  # ComfyUI's own default (INFO) unless COMFY_LOG_LEVEL is set
    assert "job local_test done: ComfyUI_00001_.mp4 (video/mp4" in out


def test_start_sh_fails_fast_on_a_broken_gpu_before_starting_comfyui(tmp_path):
    broken = tmp_path / "gpu_check.sh"
    broken.write_text("echo 'FAIL: CUDA error: no CUDA-capable device is detected'; exit 1\n")
    tools = fake_tools(tmp_path)
    code, out = run_start(
        tmp_path, tmp_path, T2V_JOB, WANPOD_GPU_CHECK_CMD=f"bash {broken}", **tools
    )
    assert code == 1
    assert "ERROR: GPU is not available (check exited with code 1):" in out
    assert "FAIL: CUDA error: no CUDA-capable device is detected" in out
    assert "report the machine to RunPod support" in out
    assert not (tmp_path / "comfy-args").exists()  # ComfyUI never started


def test_start_sh_says_when_the_gpu_tool_is_missing(tmp_path):
    env = {k: v for k, v in start_env(tmp_path, tmp_path).items() if k != "WANPOD_GPU_CHECK_CMD"}
    p = subprocess.run(["bash", str(START)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=60)  # fmt: skip  # the default check: torch is not in this venv
    out = p.stdout + p.stderr
    assert p.returncode == 1
    assert "ERROR: GPU is not available" in out and "No module named 'torch'" in out
    env["WANPOD_GPU_CHECK_CMD"] = "nvidia-smi-not-installed"
    p = subprocess.run(["bash", str(START)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "(check exited with code 127)" in out
    assert (
        "could not run (command not found); on a CPU-only machine set WANPOD_GPU_CHECK=false" in out
    )
    for on in ("1", "Yes", "TRUE"):  # what settings.py reads as true: the check runs
        env["WANPOD_GPU_CHECK"] = on
        p = subprocess.run(["bash", str(START)], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
        assert p.returncode == 1 and "(check exited with code 127)" in p.stdout + p.stderr, on
    env["COMFY_CMD"] = "false"  # and past the check, ComfyUI's own failure is reported
    for off in ("false", "0", "No", "off"):  # what settings.py reads as false
        env["WANPOD_GPU_CHECK"] = off
        p = subprocess.run(["bash", str(START)], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
        assert f"GPU check skipped (WANPOD_GPU_CHECK={off})" in p.stdout, p.stdout
        assert "ComfyUI exited with code 1 before it was ready" in p.stdout + p.stderr


def fake_hf_cache(root, files):
    """RunPod's cached-model layout: blobs, refs/main and a snapshot of symlinks into blobs."""
    by_repo: dict[str, list] = {}
    for f in files:
        by_repo.setdefault(f.repo, []).append(f)
    for repo, fs in by_repo.items():
        d = root / "huggingface-cache" / "hub" / ("models--" + repo.replace("/", "--"))
        rev = hashlib.sha1(repo.encode()).hexdigest()
        (d / "refs").mkdir(parents=True)
        (d / "refs" / "main").write_text(rev)
        for i, f in enumerate(fs):
            blob = d / "blobs" / f"{i:064x}"
            blob.parent.mkdir(exist_ok=True)
            blob.write_bytes(b"")
            link = d / "snapshots" / rev / f.path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(blob)
    return root


def test_start_sh_loads_wan_files_from_runpod_cached_models(tmp_path):
    files = load_catalog().files_for(["t2v_14b"], ["turbo"])
    vol = fake_hf_cache(tmp_path / "runpod-volume", files)  # no models/ folder at all
    cached = find_cached([str(vol)])
    assert sorted(c.repo for c in cached) == ["Comfy-Org/Wan_2.1_ComfyUI_repackaged",
                                              "Comfy-Org/Wan_2.2_ComfyUI_Repackaged"]  # fmt: skip
    yaml_doc = yaml.safe_load(render_yaml([str(vol)], cached))
    wan22 = next(
        v for k, v in yaml_doc.items() if k.startswith("hf_cache") and "2.2" in v["base_path"]
    )
    assert wan22["base_path"].endswith("/split_files")
    assert {k for k in wan22 if k != "base_path"} == {"diffusion_models", "loras", "vae"}
    code, out = run_start(tmp_path, vol, T2V_JOB)
    assert code == 0, out[-4000:]
    assert "volume: cached model Comfy-Org/Wan_2.2_ComfyUI_Repackaged (revision " in out
    assert "diffusion_models 2, loras 2, vae 1 file(s) from " in out
    assert "volume: cached model Comfy-Org/Wan_2.1_ComfyUI_repackaged" in out
    assert "text_encoders 1 file(s)" in out
    assert "job local_test done: ComfyUI_00001_.mp4 (video/mp4" in out


def test_a_corrupted_cached_model_ref_is_read_all_the_same(tmp_path):
    files = load_catalog().files_for(["t2v_14b"], ["turbo"])
    vol = fake_hf_cache(tmp_path / "runpod-volume", files)
    for ref in vol.glob("huggingface-cache/hub/*/refs/main"):
        ref.write_bytes(b"\xff\xfe not a revision")  # every snapshot is looked at instead
    assert len(find_cached([str(vol)])) == 2


def test_start_sh_gives_comfyui_the_shipped_yaml_when_the_volume_scan_fails(tmp_path):
    """ComfyUI stops on an empty extra_model_paths.yaml: a scan that fails (a bug, a volume
    that errors) leaves it the shipped one for the default roots, and the worker starts."""
    python = tmp_path / "python"  # the scan fails; everything else is Python as usual
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2" = "-m worker.volume" ]; then echo "Traceback: boom" >&2; exit 1; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    inventory = {"input": {"inventory": True}}  # needs no model
    code, out = run_start(tmp_path, fake_volume(tmp_path / "volume"), inventory,
                          WANPOD_PYTHON=str(python))  # fmt: skip
    assert code == 0, out[-4000:]
    assert "WARNING: the volume scan failed; ComfyUI gets worker/extra_model_paths.yaml" in out
    (used,) = tmp_path.glob("extra_model_paths-*.yaml")
    assert used.read_text() == (REPO / "worker" / "extra_model_paths.yaml").read_text()
    assert "ComfyUI is ready on" in out and "worker exited with code 0" in out
