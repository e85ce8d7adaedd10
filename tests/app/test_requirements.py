"""The studio image installs requirements/app.txt only (Dockerfile.app): every third-party module
that app/ or workflows/ imports (at module level or inside a function) must come from a
distribution listed there, and the runpod SDK must not."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions

from tests.helpers import REPO

FIRST_PARTY = {"app", "workflows"}  # what Dockerfile.app copies
OPTIONAL = {"emulators"}  # demo mode only, behind importlib.util.find_spec (see app/__main__.py)


def imported_modules() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in FIRST_PARTY:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def required() -> set[str]:
    text = (REPO / "requirements" / "app.txt").read_text()
    names = set()
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[=<>!~\[; ]", line)[0].lower().replace("_", "-"))
    return names


def test_every_third_party_import_is_in_the_image_requirements():
    dists = packages_distributions()
    reqs = required()
    missing = []
    for module, where in sorted(imported_modules().items()):
        if module in sys.stdlib_module_names or module in FIRST_PARTY | OPTIONAL:
            continue
        owners = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        assert owners, f"{module} (imported in {where}) is not installed in the app venv"
        if not owners & reqs:
            missing.append(f"{module} ({'/'.join(sorted(owners))}, imported in {where})")
    assert not missing, f"not in requirements/app.txt: {missing}"


def test_the_image_has_no_runpod_sdk():
    assert "runpod" not in required()
    assert "runpod" not in imported_modules()
