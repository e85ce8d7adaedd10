"""Every environment variable the worker reads is documented in docs/worker.md."""

from __future__ import annotations

import re

from tests.helpers import REPO

SECTION = (REPO / "docs" / "worker.md").read_text()
NOT_ENV = {"DEBUG", "INFO", "WARNING", "ERROR", "WARN", "TRACE", "NOTSET"}


def env_names_in_settings() -> set[str]:
    text = (REPO / "worker" / "settings.py").read_text()
    names = set(re.findall(r'"([A-Z][A-Z0-9]*_[A-Z0-9_]+|[A-Z]{4,})"', text))
    return names - NOT_ENV


def env_names_elsewhere() -> set[str]:
    names: set[str] = set()
    for py in (REPO / "worker").glob("*.py"):
        names |= set(re.findall(r'env\.get\("([A-Z][A-Z0-9_]+)"\)', py.read_text()))
    start = (REPO / "worker" / "start.sh").read_text()
    names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", start)) - {"START_TIMEOUT"}
    return names


def test_settings_reads_the_variables_we_expect():
    names = env_names_in_settings()
    assert {"COMFY_HOST", "BUCKET_ENDPOINT_URL", "REFRESH_WORKER", "JOB_TIMEOUT_S"} <= names
    assert len(names) >= 30


def test_every_env_var_is_documented_in_the_worker_docs():
    missing = sorted(n for n in env_names_in_settings() | env_names_elsewhere()
                     if f"`{n}`" not in SECTION)  # fmt: skip
    assert not missing, f"document these in docs/worker.md: {missing}"


def test_worker_docs_list_every_wan_model_file():
    from worker.volume import WAN22_FILES

    assert [n for n in WAN22_FILES if n not in SECTION] == []


def anchors(md: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes."""
    heads = re.findall(r"^#{1,6} (.+)$", re.sub(r"^```.*?^```", "", md, flags=re.M | re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in heads}


def test_links_between_readme_and_docs_resolve():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert {p.name for p in pages} >= {"deploy.md", "worker.md", "workflows.md", "endpoint.md",
                                       "studio.md", "operating.md", "emulators.md",
                                       "development.md"}  # fmt: skip
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name}: {target}"
            if anchor and dest.suffix == ".md":
                assert anchor in anchors(dest.read_text()), f"{page.name}: {target}"
