"""Every environment variable the worker reads is documented in README.md's worker section."""

from __future__ import annotations

import re

from tests.helpers import REPO

README = (REPO / "README.md").read_text()
SECTION = README[README.index("<!-- worker:begin -->") : README.index("<!-- worker:end -->")]
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


def test_every_env_var_is_documented_in_the_readme():
    missing = sorted(n for n in env_names_in_settings() | env_names_elsewhere()
                     if f"`{n}`" not in SECTION)  # fmt: skip
    assert not missing, f"document these in README.md's worker section: {missing}"


def test_readme_lists_every_wan_model_file():
    from worker.volume import WAN22_FILES

    assert [n for n in WAN22_FILES if n not in SECTION] == []
