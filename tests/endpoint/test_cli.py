"""`python -m app.cli run` as a user runs it: with no credentials it starts the local stack;
with RUNPOD_API_KEY/RUNPOD_ENDPOINT_ID (+ RUNPOD_API_BASE) it talks to that endpoint; with only
one of them it refuses (so does the studio); a file that is not JSON is named with the place."""

from __future__ import annotations

import os
import subprocess

import pytest

from app.__main__ import main as studio_main
from app.cli import main as cli_main
from emulators.stack import LocalStack, StackConfig
from tests.endpoint.conftest import PYTHON, WORKER_PYTHON
from tests.helpers import REPO

pytestmark = pytest.mark.slow


def cli(tmp_path, *args, env=None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    base["WANPOD_WORKER_PYTHON"] = WORKER_PYTHON
    return subprocess.run(
        [
            PYTHON,
            "-m",
            "app.cli",
            "run",
            str(REPO / "test_input.json"),
            "--out",
            str(tmp_path / "out"),
            "--poll",
            "0.2",
            "--step-delay",
            "0.02",
            *args,
        ],
        cwd=REPO,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_without_credentials_runs_the_local_stack(tmp_path):
    r = cli(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "starting the local stack" in r.stderr and "COMPLETED: queue/cold start" in r.stdout
    video = tmp_path / "out" / "ComfyUI_00001_.mp4"
    assert video.read_bytes()[4:8] == b"ftyp"


def test_cli_with_credentials_uses_that_endpoint_and_reports_bad_keys(tmp_path):
    with LocalStack(StackConfig(step_delay=0.02, worker_python=WORKER_PYTHON)) as s:
        r = cli(tmp_path, env=s.env())
        assert r.returncode == 0, r.stderr
        assert "local stack" not in r.stderr and "saved" in r.stdout
        bad = cli(tmp_path, env={**s.env(), "RUNPOD_API_KEY": "sk-wrong-key-123"})
        assert bad.returncode == 2 and "refused the API key" in bad.stderr
        assert "sk-wrong-key-123" not in bad.stderr + bad.stdout


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"RUNPOD_API_KEY": "rpa_SECRET0123"}, "RUNPOD_ENDPOINT_ID"),
        ({"RUNPOD_ENDPOINT_ID": "abc123"}, "RUNPOD_API_KEY"),
    ],
)
def test_half_the_credentials_is_refused_not_a_silent_demo(tmp_path, capsys, env, missing):
    assert cli_main(["run", str(REPO / "test_input.json"), "--out", str(tmp_path)], env) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing} is not set; set both RUNPOD_API_KEY and ")
    assert "local stack" not in err and "rpa_SECRET0123" not in err
    # the studio's start-up applies the same rule (app.settings.runpod_credentials)
    assert studio_main(env=env) == 2
    assert f"{missing} is not set" in capsys.readouterr().err


def test_a_file_that_is_not_json_is_named_with_the_place(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "input": {\n    workflow: {}\n  }\n}\n')
    assert cli_main(["run", str(bad)], {}) == 2
    assert capsys.readouterr().err == (
        f"error: {bad} is not valid JSON: Expecting property name enclosed in double quotes "
        "at line 3, column 5\n"
    )
