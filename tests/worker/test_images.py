"""The two images' build files: hadolint clean, a .dockerignore that sends only what they COPY,
and the worker image's CUSTOM_NODES build argument run through its own RUN line."""

from __future__ import annotations

import fnmatch
import re
import subprocess

from tests.helpers import REPO

HADOLINT = REPO / ".venvs" / "worker" / "bin" / "hadolint"
DOCKERFILES = ("Dockerfile.worker", "Dockerfile.app")


def test_both_dockerfiles_are_hadolint_clean():
    p = subprocess.run([str(HADOLINT), *DOCKERFILES], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def ignored(path: str, rules: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parent
    folders decides; `!` lets a path back in; `**/` matches any depth."""
    parts = path.split("/")
    verdict = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        pattern = pattern.rstrip("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            tail = pattern[3:]
            hit = any(fnmatch.fnmatchcase(p, tail) for p in parts)
        else:
            hit = any(fnmatch.fnmatchcase(c, pattern) for c in candidates)
        if hit:
            verdict = not negate
    return verdict


def rules() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def test_dockerignore_sends_what_the_images_copy_and_nothing_heavy():
    r = rules()
    for name in DOCKERFILES:
        text = (REPO / name).read_text()
        for src in re.findall(r"^COPY (?:--\S+ )*(\S+) ", text, re.M):
            assert (REPO / src).exists(), src
            assert not ignored(src.rstrip("/"), r), (
                f"{name} copies {src} but .dockerignore drops it"
            )
            if (REPO / src).is_dir():
                for f in (REPO / src).rglob("*.py"):
                    if "__pycache__" not in f.parts:
                        assert not ignored(str(f.relative_to(REPO)), r), f
    for heavy in (".venvs/worker/bin/python", "tests/fixtures/comfyui/object_info.json",
                  "data/x.db", "bench/worker_overhead.py", "emulators/runpod.py", ".git/HEAD",
                  "worker/__pycache__/handler.cpython-311.pyc", "README.md"):  # fmt: skip
        assert ignored(heavy, r), heavy


def custom_nodes_run_line() -> str:
    text = (REPO / "Dockerfile.worker").read_text().replace("\\\n", "")
    return next(m for m in re.findall(r"^RUN (.*)$", text, re.M) if "CUSTOM_NODES" in m)


def test_custom_nodes_build_arg_installs_each_pack_with_comfy_node_install(tmp_path):
    fake = tmp_path / "comfy-node-install"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/installed\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    line = custom_nodes_run_line()
    packs = "comfyui-videohelpersuite  comfyui-frame-interpolation comfyui-kjnodes"
    for value in ("", "  ", packs):
        subprocess.run(["bash", "-o", "pipefail", "-c", line], env={**env, "CUSTOM_NODES": value},
                       check=True)  # fmt: skip
    calls = (tmp_path / "installed").read_text().splitlines()
    assert calls == ["comfyui-videohelpersuite comfyui-frame-interpolation comfyui-kjnodes"]
