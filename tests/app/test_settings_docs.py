"""The settings registry against the docs: every environment variable the studio's code names is
documented in README.md or docs/, only the entry points read the process environment (everything
else gets the typed Settings), and Settings reads the operator variables in its one pass."""

from __future__ import annotations

import ast
import re

import pytest

from app import access
from app.errors import ConfigError
from app.settings import Settings
from app.studio.checks import guardrails, preflight
from tests.helpers import REPO

APP = REPO / "app"
NAME = re.compile(r"^(WANPOD|RUNPOD|APP|GRADIO|BUCKET|AWS|HF)_[A-Z0-9_]+$")
ENTRY_POINTS = {"__main__.py", "cli.py"}  # they hand os.environ to Settings.from_env


def constants(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and NAME.match(n.value)
    }


def variables() -> set[str]:
    found: set[str] = set()
    for path in sorted(APP.rglob("*.py")):
        found |= constants(path)
    return found


def test_the_scan_finds_the_known_variables():
    names = variables()
    for known in ("RUNPOD_API_KEY", "WANPOD_DATA_DIR", "APP_AUTH", "WANPOD_BUDGET_DAILY_USD"):
        assert known in names
    assert set(guardrails.ENV_VARS) | set(access.ENV_VARS) | set(preflight.ENV_VARS) <= names


def test_every_variable_is_documented_in_the_docs():
    docs = "".join(
        p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    )
    missing = sorted(n for n in variables() if f"`{n}`" not in docs)
    assert not missing, (
        f"variables read by app/ but not in README.md or docs/ (as `NAME`): {missing}"
    )


def test_only_entry_points_read_the_process_environment():
    offenders = []
    for path in sorted(APP.rglob("*.py")):
        if path.relative_to(APP).as_posix() in ENTRY_POINTS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("environ", "getenv")
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                offenders.append(f"{path.relative_to(APP)}:{node.lineno}")
    assert not offenders, f"read Settings instead of os.environ: {offenders}"


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        *((n, "not-a-number") for n in guardrails.ENV_VARS if n != "WANPOD_GUARDRAILS"),
        ("WANPOD_GUARDRAILS", "/no/such.yaml"),
        ("APP_AUTH", "no-colon"),
        ("APP_ALLOW_PUBLIC_WITHOUT_AUTH", "perhaps"),
        ("GRADIO_SHARE", "perhaps"),
        ("GRADIO_ROOT_PATH", "no-slash"),
        ("WANPOD_PREFLIGHT", "sometimes"),
        ("WANPOD_INVENTORY_MAX_AGE_S", "soon"),
        ("WANPOD_INVENTORY_TIMEOUT_S", "soon"),
    ],
)
def test_settings_reads_each_operator_variable_once_and_names_it(name, bad):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: bad})
    assert name in str(info.value)
