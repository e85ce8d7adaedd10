"""`python -m worker.provision` and the provision job against a local Hub (emulators/hfhub.py),
reached the way huggingface_hub reaches the real one: HF_ENDPOINT."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

from tests.helpers import REPO, ServerProcess, free_port
from worker.errors import InputError, ProvisionError
from worker.provision import ProvisionRequest, choose_volume, make_plan, parse_request, run_plan
from workflows.catalog import load_catalog

TOKEN = "hf_local_token_123456"
T2V_TURBO = load_catalog().files_for(["t2v_14b"], ["turbo"])
VAE = next(f for f in T2V_TURBO if f.folder == "vae")
# huggingface_hub hands the body over in chunks of this size (httpx iter_bytes): a connection
# that drops keeps the whole chunks received, so the VAE is made two chunks and a bit long.
CHUNK = DOWNLOAD_CHUNK_SIZE


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> Path:
    """Every published file as random bytes (the sizes differ, so each file is its own)."""
    root = tmp_path_factory.mktemp("hub")
    for i, f in enumerate(load_catalog().sources.values()):
        p = root / f.repo / f.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(2 * CHUNK + 12_345 if f == VAE else 300_000 + 1000 * i))
    return root


@pytest.fixture(scope="module")
def hub(repos):
    port, cdn = free_port(), free_port()
    argv = [sys.executable, "-m", "emulators.hfhub", "--repos", str(repos), "--port", str(port),
            "--cdn-port", str(cdn), "--token", TOKEN]  # fmt: skip
    with ServerProcess(argv, port, ready_path="/_emulator/requests") as s:
        yield s


@pytest.fixture
def faults(hub):
    def set_(**body):
        requests.post(hub.base_url + "/_emulator/faults", json={"clear_requests": True, **body})

    set_()
    yield set_
    set_()


def asked(hub) -> list[dict]:
    return requests.get(hub.base_url + "/_emulator/requests").json()


def provision(hub, volume, *args, token=TOKEN):
    env = {**os.environ, "HF_ENDPOINT": hub.base_url, "HF_TOKEN": token, "HF_HUB_OFFLINE": "0"}
    p = subprocess.run([sys.executable, "-m", "worker.provision", "--volume", str(volume), *args],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    return p.returncode, p.stdout + p.stderr


def same_bytes(repos, volume, f) -> bool:
    return (volume / "models" / f.folder / f.name).read_bytes() == (
        repos / f.repo / f.path
    ).read_bytes()


def test_dry_run_lists_files_sizes_and_free_space_and_fetches_nothing(hub, faults, tmp_path):
    code, out = provision(hub, tmp_path, "--dry-run", "--pipelines", "t2v_14b", "--modes", "turbo")
    assert code == 0, out
    assert f"volume {tmp_path}: " in out and " free" in out
    assert "pipelines t2v_14b; modes turbo" in out
    for f in T2V_TURBO:
        assert f"fetch    {f.folder}/{f.name}" in out
    assert (
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors" in out
        and "Comfy-Org/Wan_2.1_ComfyUI_repackaged" in out
    )
    assert "to fetch: 6 file(s)" in out and "fits in" in out
    assert not (tmp_path / "models").exists()
    assert {r["method"] for r in asked(hub)} == {"HEAD"}


def test_fetches_into_comfyui_folders_verifies_and_skips_on_rerun(hub, faults, repos, tmp_path):
    code, out = provision(hub, tmp_path, "--pipelines", "t2v_14b", "--modes", "turbo")
    assert code == 0, out
    assert "provision: done; 6 file(s) present and verified" in out
    for f in T2V_TURBO:
        assert same_bytes(repos, tmp_path, f), f
    manifest = json.loads((tmp_path / "models" / ".wanpod-provision.json").read_text())
    vae = manifest["vae/wan_2.1_vae.safetensors"]
    assert (
        vae["sha256"]
        == hashlib.sha256(
            (repos / T2V_TURBO[-1].repo / T2V_TURBO[-1].path).read_bytes()
        ).hexdigest()
    )
    # the token goes to the Hub, never to the CDN it redirects to
    reqs = asked(hub)
    assert all(r["token"] for r in reqs if r["kind"] == "hub")
    assert [r for r in reqs if r["kind"] == "cdn" and r["token"]] == []
    assert len([r for r in reqs if r["kind"] == "cdn"]) == 6
    faults()
    code, out = provision(hub, tmp_path, "--pipelines", "t2v_14b", "--modes", "turbo")
    assert code == 0 and out.count("  present  ") == 6, out
    assert [r for r in asked(hub) if r["kind"] == "cdn"] == []  # nothing downloaded again


def test_one_file_alone_for_an_endpoint_that_caches_the_rest(hub, faults, repos, tmp_path):
    """An endpoint with RunPod's cached Wan 2.2 model lacks only the text encoder (another
    repository): --files fetches that one file onto a small volume, not the pipeline's six."""
    encoder = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
    code, out = provision(hub, tmp_path, "--pipelines", "t2v_14b", "--modes", "turbo",
                          "--files", encoder)  # fmt: skip
    assert code == 0, out
    assert f"; files {encoder}" in out and "provision: done; 1 file(s) present" in out, out
    (text_encoder,) = [f for f in T2V_TURBO if f.name == encoder]
    assert same_bytes(repos, tmp_path, text_encoder)
    assert [p.name for p in (tmp_path / "models").rglob("*.safetensors")] == [encoder]
    with pytest.raises(InputError) as refused:
        parse_request({"pipelines": ["t2v_14b"], "modes": ["turbo"], "files": ["x.safetensors"]})
    assert str(refused.value).startswith(
        "invalid input: provision.files: unknown 'x.safetensors'; allowed: "
    )
    assert encoder in str(refused.value)


def test_without_the_token_the_hub_refuses_and_says_so(hub, faults, tmp_path):
    code, out = provision(hub, tmp_path, "--pipelines", "ti2v_5b", token="hf_not_the_right_one")
    assert code == 1
    assert "provision failed: the Hub refused Comfy-Org/" in out  # it answered: no outage
    assert "(HTTP 401): set HF_TOKEN to a token that may read it" in out, out
    assert "hf_not_the_right_one" not in out


def test_an_interrupted_download_resumes_with_a_range_request(hub, faults, repos, tmp_path):
    faults(drop={VAE.path: [CHUNK + 5000, 1]})  # the connection drops once, past one chunk
    code, out = provision(hub, tmp_path, "--pipelines", "t2v_14b", "--modes", "turbo")
    assert code == 0, out
    assert same_bytes(repos, tmp_path, VAE)
    gets = [r for r in asked(hub) if r["kind"] == "cdn" and VAE.name in r["path"]]
    assert [g["range"] for g in gets] == [None, f"bytes={CHUNK}-"]


def test_a_download_cut_for_good_resumes_in_the_next_run(hub, faults, repos, tmp_path):
    faults(drop={VAE.path: [CHUNK + 5000, 99]})  # every attempt dies there
    code, out = provision(hub, tmp_path, "--pipelines", "t2v_14b", "--modes", "turbo")
    assert code == 1
    assert "provision failed: download of vae/wan_2.1_vae.safetensors stopped" in out
    assert "run provision again to resume" in out
    partial = list((tmp_path / "models" / "vae").glob(".wan_2.1_vae.safetensors.*.partial"))
    assert [p.stat().st_size for p in partial] == [CHUNK]
    faults()
    code, out = provision(hub, tmp_path, "--pipelines", "t2v_14b", "--modes", "turbo")
    assert code == 0, out
    assert "  resume   vae/wan_2.1_vae.safetensors" in out and "(10.5 MB there)" in out
    assert [r["range"] for r in asked(hub) if r["kind"] == "cdn"] == [f"bytes={CHUNK}-"]
    assert same_bytes(repos, tmp_path, VAE)
    assert not list((tmp_path / "models" / "vae").glob("*.partial"))


def test_a_corrupted_file_is_refused_and_not_installed(hub, faults, tmp_path):
    lora = next(f for f in T2V_TURBO if f.folder == "loras")
    faults(corrupt=[lora.path])
    code, out = provision(hub, tmp_path, "--pipelines", "t2v_14b", "--modes", "turbo")
    assert code == 1
    assert f"provision failed: loras/{lora.name} is corrupt: its sha256 " in out
    assert "is not the published" in out and "the download was deleted" in out
    assert not (tmp_path / "models" / "loras" / lora.name).exists()
    assert not list((tmp_path / "models" / "loras").glob("*.partial"))


def test_a_wrong_file_of_the_right_size_is_replaced(hub, faults, repos, tmp_path):
    target = tmp_path / "models" / "vae" / VAE.name
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\0" * (repos / VAE.repo / VAE.path).stat().st_size)
    code, out = provision(hub, tmp_path, "--pipelines", "t2v_14b", "--modes", "turbo")
    assert code == 0, out
    assert f"  check    vae/{VAE.name}" in out
    assert same_bytes(repos, tmp_path, VAE)


def test_refusals_name_what_is_wrong(hub, tmp_path):
    with pytest.raises(InputError, match=r"provision.pipelines: unknown 'x2v'; allowed: t2v_14b"):
        parse_request({"pipelines": ["x2v"]})
    with pytest.raises(InputError) as refused:
        parse_request({"pipelines": ["ti2v_5b"], "modes": ["turbo"]})
    said = str(refused.value)  # one field name, one list of what is allowed
    assert said.endswith("provision.modes: 'turbo' is not allowed; allowed: ti2v_5b offers quality")
    assert said.count("allowed:") == 1 and "modes: modes" not in said
    with pytest.raises(
        InputError, match=r"unknown key\(s\) volume; allowed: pipelines, modes, files"
    ):
        parse_request({"volume": "/etc"})
    with pytest.raises(
        ProvisionError, match=r"no volume is mounted \(looked for /nope/a and /nope/b\)"
    ):
        choose_volume(None, ("/nope/a", "/nope/b"))
    plan = make_plan(ProvisionRequest(("t2v_14b",), ("turbo",)), tmp_path, TOKEN, hub.base_url)
    plan.free = plan.to_fetch - 1  # a volume one byte too small
    with pytest.raises(
        ProvisionError,
        match=rf"not enough free space on .*: 22.5 MB to fetch \({plan.to_fetch} bytes\), "
        rf"22.5 MB free \({plan.to_fetch - 1} bytes\)",
    ):
        run_plan(plan, TOKEN)
    assert not (tmp_path / "models").exists()


def run_handler(job: dict, volume_paths: str, hub) -> dict:
    env = {**os.environ, "HF_ENDPOINT": hub.base_url, "HF_TOKEN": TOKEN,
           "WANPOD_VOLUME_PATHS": volume_paths}  # fmt: skip
    p = subprocess.run([sys.executable, "-m", "worker.handler", "--test_input", json.dumps(job)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    return {"code": p.returncode, "out": p.stdout + p.stderr}


def test_the_provision_job_fills_the_volume_without_comfyui(hub, faults, repos, tmp_path):
    job = {"input": {"provision": {"pipelines": ["ti2v_5b"]}}}
    r = run_handler(job, f"{tmp_path}/absent:{tmp_path}", hub)
    assert r["code"] == 0, r["out"][-3000:]
    assert f"provision: 3 file(s) present and verified on {tmp_path}" in r["out"]
    for f in load_catalog().files_for(["ti2v_5b"], ["quality"]):
        assert same_bytes(repos, tmp_path, f)
    assert "TOKEN" not in r["out"] and TOKEN not in r["out"]


def test_the_provision_job_refuses_when_no_volume_is_mounted(hub, tmp_path):
    r = run_handler({"input": {"provision": {}}}, f"{tmp_path}/absent", hub)
    assert "provision failed: no volume is mounted (looked for " in r["out"], r["out"][-3000:]
    assert "attach a network volume to the endpoint" in r["out"]
    assert "(from the command line: or give --volume PATH)" in r["out"]


RUN_JOB = """
import asyncio, json, os, sys, time
from worker.delivery import Delivery
from worker.handler import run_job
from worker.settings import Settings
settings = Settings.from_env(os.environ)
result = asyncio.run(run_job(json.loads(sys.argv[1]), settings, Delivery(settings)))
print("RETURNED", time.monotonic(), json.dumps(result)[:300])  # one clock for all processes
"""


def test_the_provision_jobs_progress_is_delivered_before_its_result(hub, faults, tmp_path):
    """Its posts go one at a time, in order, and the last one is answered before the handler
    returns (the SDK's progress_update posts from a thread of its own: the last post could
    land after the result and show the job running again, runpod-python #250)."""
    from tests.worker.test_process import Capture

    capture = Capture()
    try:
        env = {**os.environ, "HF_ENDPOINT": hub.base_url, "HF_TOKEN": TOKEN,
               "WANPOD_VOLUME_PATHS": str(tmp_path), "PROGRESS_INTERVAL_S": "0",
               "RUNPOD_WEBHOOK_POST_OUTPUT": capture.url + "/progress/$ID"}  # fmt: skip
        job = {"id": "prov-order", "input": {"provision": {"pipelines": ["ti2v_5b"]}}}
        p = subprocess.run([sys.executable, "-c", RUN_JOB, json.dumps(job)], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        assert p.returncode == 0 and "RETURNED" in p.stdout, (p.stdout + p.stderr)[-3000:]
        returned = float(p.stdout.split("RETURNED ", 1)[1].split()[0])
    finally:
        capture.close()
    posts = [(at, body) for at, path, body in capture.posts if path.startswith("/progress/")]
    assert len(posts) >= 2
    last = posts[-1][1]["output"]
    assert last["files_done"] == last["files_total"] == 3 and last["percent"] == 100.0
    assert [b["output"]["bytes_done"] for _, b in posts] == sorted(
        b["output"]["bytes_done"] for _, b in posts)  # fmt: skip  # in order
    assert max(at for at, _ in posts) < returned


def test_progress_reports_file_and_bytes(hub, faults, tmp_path):
    from worker.provision import provision as run

    seen: list[dict] = []
    report = run(ProvisionRequest(("ti2v_5b",), ("quality",)), tmp_path, TOKEN, seen.append, 0.0,
                 endpoint=hub.base_url)  # fmt: skip
    assert [f["action"] for f in report["files"]] == ["present"] * 3
    last = seen[-1]
    assert last["stage"] == "provisioning" and last["files_done"] == last["files_total"] == 3
    assert last["bytes_done"] == last["bytes_total"] == sum(f["size"] for f in report["files"])
    assert last["percent"] == 100.0
    assert {p["file"] for p in seen} == {f["file"] for f in report["files"]}
    assert any(0 < p["bytes_done"] < last["bytes_total"] for p in seen)
