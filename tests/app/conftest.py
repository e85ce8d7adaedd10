"""Studio fixtures: one local stack per session (ComfyUI emulator + local RunPod control plane +
real worker processes), studio processes (`python -m app`) pointed at it as if it were RunPod, and
one headless Chromium per session for the browser tier."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators.stack import LocalStack, StackConfig
from tests.helpers import REPO, ServerProcess, free_port, png_bytes, wait_for

S3_SECRET = "s3SECRETdoNotLeak0123456789abcdefABCDEF"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    folder = tmp_path_factory.mktemp("stack")
    with LocalStack(StackConfig(workers=3, step_delay=0.1, work_dir=folder)) as s:
        yield s


def studio_env(stack: LocalStack, data_dir: Path, port: int) -> dict[str, str]:
    return {
        "RUNPOD_API_KEY": stack.api_key,
        "RUNPOD_ENDPOINT_ID": stack.endpoint_id,
        "RUNPOD_API_BASE": stack.api_base,
        "WANPOD_DATA_DIR": str(data_dir),
        "GRADIO_SERVER_PORT": str(port),
        "WANPOD_POLL_S": "0.2",
        "BUCKET_SECRET_ACCESS_KEY": S3_SECRET,
        "GRADIO_ANALYTICS_ENABLED": "False",
    }


def start_studio(
    stack: LocalStack, data_dir: Path, port: int | None = None, **env: str
) -> ServerProcess:
    port = port or free_port()
    proc = ServerProcess(
        [sys.executable, "-m", "app"],
        port=port,
        ready_path="/gradio_api/info",
        env={**studio_env(stack, data_dir, port), **env},
        deadline_s=120,  # a deadline, not a wait: a loaded 2-core CI box once took over 60 s
    )
    return proc.start()


@pytest.fixture(scope="session")
def studio(stack, tmp_path_factory) -> Iterator[ServerProcess]:
    proc = start_studio(stack, tmp_path_factory.mktemp("studio"))
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def client(studio):
    from gradio_client import Client

    return Client(studio.base_url + "/", verbose=False)


@pytest.fixture
def png_file(tmp_path) -> Path:
    path = tmp_path / "start.png"
    path.write_bytes(png_bytes(300, 200, (20, 120, 200)))
    return path


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def context(browser):
    """A fresh browser context; an exception no script of its pages caught fails the test (the
    page's own scripts, e.g. its live stream, fail silently otherwise: the test would only time
    out waiting for what they no longer do)."""
    ctx = browser.new_context()
    uncaught: list[str] = []
    ctx.on("weberror", lambda e: uncaught.append(f"{e.page.url if e.page else '?'}: {e.error}"))
    yield ctx
    ctx.close()
    assert not uncaught, f"uncaught errors in the page's scripts: {uncaught}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One throwaway PostgreSQL cluster per test session (tests/postgres.py)."""
    from tests.postgres import NOT_INSTALLED, PostgresCluster, bindir

    found = bindir()
    if found is None:
        pytest.skip(NOT_INSTALLED)
    with PostgresCluster(found) as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path) -> str:
    """The same ledger tests on a SQLite file and on a fresh database of a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    return request.getfixturevalue("postgres").new_database()


# -- an endpoint with the user's models: LoRAs, upscale models, the smooth-motion node ------------
USER_LORAS = {
    "loras": [
        "style/my_style_high_noise.safetensors",
        "style/my_style_low_noise.safetensors",
        "detail.safetensors",
    ],
    "upscale_models": ["RealESRGAN_x2plus.pth", "4x-UltraSharp.pth"],
}


@pytest.fixture(scope="session")
def image_host(tmp_path_factory) -> Iterator[Any]:
    """An https server of test images on 127.0.0.1 with a throwaway certificate (run with the
    worker's venv: it has cryptography): `.url(path)`, `.ca` (the PEM the workers trust)."""
    from emulators.runpod import default_worker_python

    root = tmp_path_factory.mktemp("image-host")
    (root / "files").mkdir()
    (root / "files" / "start.png").write_bytes(png_bytes(300, 200, (200, 60, 20)))
    cmd = [default_worker_python(), "-m", "tests.worker.urlserver", str(root)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, cwd=REPO)
    try:
        wait_for(lambda: (root / "port").exists() or proc.poll() is not None, 60, "image host")
        assert proc.poll() is None, "the image server exited"
        port = int((root / "port").read_text())
        yield types.SimpleNamespace(
            url=lambda path: f"https://localhost:{port}{path}", ca=root / "test-ca.pem"
        )
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=20)


@pytest.fixture(scope="session")
def volume_stack(tmp_path_factory, image_host) -> Iterator[LocalStack]:
    """A stack whose ComfyUI reads a volume with every catalog model and USER_LORAS, has the RIFE
    node, writes videos at their real size, and whose workers trust the image host."""
    from emulators.volume import RIFE_SCHEMA, write_volume

    root = tmp_path_factory.mktemp("volume")
    paths = write_volume(root / "volume", USER_LORAS)
    comfy = ("--extra-model-paths-config", str(paths), "--extra-schema", str(RIFE_SCHEMA),
             "--video-max-side", "0")  # fmt: skip
    env = {"IMAGE_URL_ALLOW_PRIVATE": "true", "IMAGE_URL_CA_BUNDLE": str(image_host.ca)}
    cfg = StackConfig(workers=2, step_delay=0.02, work_dir=root, comfy_args=comfy, worker_env=env)
    with LocalStack(cfg) as s:
        yield s


@pytest.fixture(scope="session")
def volume_studio(volume_stack, tmp_path_factory) -> Iterator[ServerProcess]:
    proc = start_studio(volume_stack, tmp_path_factory.mktemp("volume-studio"))
    yield proc
    proc.stop()
