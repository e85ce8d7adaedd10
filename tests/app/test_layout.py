"""The studio's layers, read from the code's own imports (every `import` and `from ... import`,
also the ones inside functions): app/ui calls app/studio, never the reverse; app/studio never
imports Gradio; app/endpoint imports neither; nothing in app/ imports worker/ or the runpod SDK."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

APP = REPO / "app"
GRADIO = ("gradio", "gradio_client")

# (package whose files are checked, the modules they must never import, why)
RULES = [
    ("app.studio", ("app.ui", *GRADIO), "the service knows no page: app/ui calls it"),
    ("app.endpoint", ("app.studio", "app.ui", *GRADIO), "the RunPod client knows no studio"),
    ("app", ("worker", "runpod"), "the app reaches workers only over RunPod's HTTP API"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: str | None = None) -> set[str]:
    """Every module `path` imports, absolute (`from . import x` resolved against its package)."""
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def app_files() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def test_the_layers_are_packages():
    for package in ("app/endpoint", "app/studio", "app/studio/checks", "app/ui"):
        assert (REPO / package / "__init__.py").is_file(), package
    # only the entry points, settings (+ environment parsers, access), demo and the error tree
    top = {p.name for p in APP.glob("*.py")}
    assert top <= {
        "__init__.py",
        "__main__.py",
        "cli.py",
        "settings.py",
        "access.py",
        "demo.py",
        "environment.py",
        "errors.py",
        "doctor.py",
    }, top


@pytest.mark.parametrize("package,forbidden,why", RULES, ids=[r[0] for r in RULES])
def test_import_rule(package, forbidden, why):
    broken = []
    for path in app_files():
        if not within(module_name(path), package):
            continue
        for imported in sorted(imports(path)):
            if any(within(imported, f) for f in forbidden):
                broken.append(f"{path.relative_to(REPO)} imports {imported}")
    assert not broken, f"{package} must not import {forbidden} ({why}): {broken}"


def test_the_rule_reader_sees_lazy_and_relative_imports(tmp_path):
    """The checker itself: an import inside a function and a relative one are both found."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import gradio\n    from ..ui import page\n")
    found = imports(probe, package="app.studio")
    assert "gradio" in found and "app.ui.page" in found
