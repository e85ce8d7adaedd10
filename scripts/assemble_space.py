#!/usr/bin/env python3
"""Assemble a Hugging Face Space repository (Docker SDK) for the WanPod studio into a folder.

    python scripts/assemble_space.py OUT [--title T] [--emoji E] [--force]

The Space gets exactly what Dockerfile.app builds from: a root file named `Dockerfile` (a copy of
Dockerfile.app), `requirements/app.txt`, the committed files of `app/` and `workflows/` (as of
HEAD: a change not committed is left out, and named on stderr), and a
README.md whose YAML front matter says `sdk: docker` and `app_port` (the GRADIO_SERVER_PORT the
Dockerfile sets). Nothing else: no worker, no
emulators, no tests, no virtual environments, no data folder, no generated stubs (*.pyi), no
caches. OUT may be empty, missing, or a clone of the Space (its .git is kept and everything else
replaced); anything else needs --force. Before finishing, every written file is searched for the
values of the secret variables set in this environment (RUNPOD_API_KEY, APP_AUTH, the worker's
and the studio's S3 keys, the ledger database's password, HF tokens); a hit removes nothing but
fails with the file name (exit 3). Prints the Space secrets to
set. Standard library only. Exit codes: 0 ok, 2 usage/refused folder, 3 secret found.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from app.studio.db import url_secrets  # noqa: E402  (standard library only, as this script)

SOURCES = ("app", "workflows")
FILES = {"requirements/app.txt": "requirements/app.txt", "Dockerfile.app": "Dockerfile"}
SKIP_SUFFIXES = (".pyi", ".pyc", ".sqlite3", ".log")
SKIP_PARTS = ("__pycache__", ".pytest_cache", ".ruff_cache")
SECRET_VARS = (
    "RUNPOD_API_KEY",
    "APP_AUTH",
    "BUCKET_ACCESS_KEY_ID",
    "BUCKET_SECRET_ACCESS_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "WANPOD_S3_ACCESS_KEY_ID",  # the studio's own result store
    "WANPOD_S3_SECRET_ACCESS_KEY",
    "WANPOD_DATABASE_URL",  # its password (a shared PostgreSQL ledger)
)
SPACE_SECRETS = (
    ("RUNPOD_API_KEY", "secret", "a RunPod API key with access to the endpoint"),
    ("RUNPOD_ENDPOINT_ID", "secret", "the serverless endpoint running the WanPod worker"),
    ("APP_AUTH", "secret", "user:password[,user2:password2]: the studio's logins"),
)
SPACE_VARIABLES = (
    ("WANPOD_GPU_TYPE", "the endpoint's GPU type, a key of app/studio/prices.yaml (quotes)"),
    ("WANPOD_BUDGET_DAILY_USD", "daily budget in dollars (see app/studio/checks/guardrails.yaml)"),
    ("WANPOD_BUDGET_USER_DAILY_USD", "per-user daily budget in dollars"),
    ("WANPOD_DATA_DIR", "/data with the Space's persistent storage (else history is lost)"),
    ("APP_ALLOW_PUBLIC_WITHOUT_AUTH", "true only for a private Space without APP_AUTH"),
)


class Refused(Exception):
    pass


class SecretFound(Refused):
    pass


def dockerfile_port(dockerfile: str) -> int:
    """The port the image serves on (its GRADIO_SERVER_PORT), which app_port must name."""
    match = re.search(r"GRADIO_SERVER_PORT=(\d+)", dockerfile)
    if not match:
        raise Refused("Dockerfile.app sets no GRADIO_SERVER_PORT; the Space needs app_port")
    return int(match.group(1))


def _git(repo: Path, *args: str) -> bytes | None:
    """`git args` in `repo`: its output, None when `repo` is no git checkout (or git is absent)."""
    try:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def source_files(repo: Path = REPO) -> list[Path]:
    """Committed files of app/ and workflows/ (relative, as of HEAD), without generated or
    cached ones; outside a git checkout, the folders' files."""
    out = _git(repo, "ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *SOURCES)
    if out is not None:
        names = [n for n in out.decode().split("\0") if n]
    else:
        names = [str(p.relative_to(repo)) for s in SOURCES for p in (repo / s).rglob("*")]
        names = [n for n in names if (repo / n).is_file()]
    keep = []
    for name in names:
        path = Path(name)
        if any(part in SKIP_PARTS for part in path.parts) or path.suffix in SKIP_SUFFIXES:
            continue
        keep.append(path)
    return sorted(keep)


def read_source(repo: Path, rel: Path | str) -> bytes:
    """A file as committed (HEAD's copy, whatever the working tree holds); outside a git
    checkout, the file itself."""
    committed = _git(repo, "show", f"HEAD:{Path(rel).as_posix()}")
    return committed if committed is not None else (repo / rel).read_bytes()


def uncommitted(repo: Path = REPO) -> list[str]:
    """The Space's source paths with changes not committed (edited, added or untracked): what
    the Space leaves out until they are committed."""
    out = _git(repo, "status", "--porcelain", "-z", "--", *SOURCES, *FILES)
    return sorted({entry[3:] for entry in (out or b"").decode().split("\0") if len(entry) > 3})


def front_matter(title: str, emoji: str, port: int) -> str:
    # Plain scalars only: the values are checked, so no YAML quoting surprises.
    for name, value in (("title", title), ("emoji", emoji)):
        if not value or any(c in value for c in ":#\n'\"{}[]") or value != value.strip():
            raise Refused(f"--{name} {value!r}: use plain text without : # quotes or brackets")
    return (
        "---\n"
        f"title: {title}\n"
        f"emoji: {emoji}\n"
        "colorFrom: indigo\n"
        "colorTo: purple\n"
        "sdk: docker\n"
        f"app_port: {port}\n"
        "pinned: false\n"
        "short_description: Wan 2.2 video generation on RunPod serverless GPUs\n"
        "---\n"
    )


def readme(title: str, emoji: str, port: int) -> str:
    secrets = "\n".join(f"- `{n}` ({kind}): {what}" for n, kind, what in SPACE_SECRETS)
    variables = "\n".join(f"- `{n}`: {what}" for n, what in SPACE_VARIABLES)
    return (
        front_matter(title, emoji, port) + f"\n# {title}\n\n"
        "The WanPod studio: write a prompt, see the quote, generate a Wan 2.2 video on a RunPod "
        "serverless endpoint, watch its progress and play the result.\n\n"
        "## Settings\n\n"
        "Set these in the Space's *Settings → Variables and secrets* (never in files):\n\n"
        f"{secrets}\n\n"
        "Optional variables:\n\n"
        f"{variables}\n\n"
        "Without APP_AUTH a public Space refuses to start (it would let anyone spend the "
        "endpoint's credit); a private Space may set APP_ALLOW_PUBLIC_WITHOUT_AUTH=true instead.\n"
    )


def prepare_folder(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise Refused(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    entries = [p for p in out.iterdir() if p.name != ".git"]
    if entries and not (out / ".git").exists() and not force:
        raise Refused(f"{out} is not empty and not a Space clone (no .git); use --force")
    for p in entries:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def secret_values(env: dict[str, str]) -> list[tuple[str, str]]:
    out = []
    for name in SECRET_VARS:
        value = (env.get(name) or "").strip()
        if not value:
            continue
        parts = [value]
        if name == "APP_AUTH":  # each password on its own
            parts += [p.partition(":")[2] for p in value.split(",") if ":" in p]
        if name == "WANPOD_DATABASE_URL":  # the password in it, as the studio scrubs it
            parts += list(url_secrets(value))
        out += [(name, p) for p in parts if len(p) >= 6]
    return out


def find_secrets(out: Path, env: dict[str, str]) -> list[str]:
    hits = []
    values = secret_values(env)
    for path in sorted(out.rglob("*")):
        if ".git" in path.relative_to(out).parts or not path.is_file():
            continue
        data = path.read_bytes()
        for name, value in values:
            if value.encode() in data:
                hits.append(f"{path.relative_to(out)} contains the value of {name}")
    return hits


def assemble(
    out: Path,
    *,
    title: str = "WanPod Studio",
    emoji: str = "🎬",
    force: bool = False,
    env: dict[str, str] | None = None,
    repo: Path = REPO,
) -> list[Path]:
    """Write the Space into `out`; returns the written files (relative). Raises Refused."""
    env = dict(os.environ if env is None else env)
    text = readme(title, emoji, dockerfile_port(read_source(repo, "Dockerfile.app").decode()))
    prepare_folder(out, force)
    written = []
    for src, dst in [*FILES.items(), *((rel, rel) for rel in source_files(repo))]:
        (out / dst).parent.mkdir(parents=True, exist_ok=True)
        (out / dst).write_bytes(read_source(repo, src))
        written.append(Path(dst))
    (out / "README.md").write_text(text, encoding="utf-8")
    written.append(Path("README.md"))
    hits = find_secrets(out, env)
    if hits:
        raise SecretFound("; ".join(hits))
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the Space repository folder to (re)write")
    ap.add_argument("--title", default="WanPod Studio")
    ap.add_argument("--emoji", default="🎬")
    ap.add_argument("--force", action="store_true", help="replace a non-empty folder")
    args = ap.parse_args(argv)
    try:
        written = assemble(args.out, title=args.title, emoji=args.emoji, force=args.force)
    except SecretFound as exc:
        print(f"assemble_space: secret value found, do not push: {exc}", file=sys.stderr)
        return 3
    except Refused as exc:
        print(f"assemble_space: {exc}", file=sys.stderr)
        return 2
    print(f"Space assembled in {args.out} ({len(written)} files, as committed).")
    left = uncommitted()
    if left:
        print(
            f"assemble_space: not in the Space until committed: {', '.join(left[:10])}"
            + (f" and {len(left) - 10} more" if len(left) > 10 else ""),
            file=sys.stderr,
        )
    print("Set these Space secrets (Settings -> Variables and secrets -> New secret):")
    for name, _, what in SPACE_SECRETS:
        print(f"  {name}: {what}")
    print("Optional variables: " + ", ".join(n for n, _ in SPACE_VARIABLES))
    print(f"Then: cd {args.out} && git add -A && git commit -m 'WanPod studio' && git push")
    return 0


if __name__ == "__main__":
    sys.exit(main())
