"""The results folder is served in place and is the first static path Gradio checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio import data_classes, utils

from app.ui.static_paths import serve_in_place


@pytest.fixture
def static_paths():
    kept = list(data_classes._StaticFiles.all_paths)
    yield data_classes._StaticFiles.all_paths
    data_classes._StaticFiles.all_paths[:] = kept


def test_results_are_static_and_checked_first(static_paths: list[Path], tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "wp-1").mkdir(parents=True)
    thumb = results / "wp-1" / "thumb.jpg"
    thumb.write_bytes(b"\xff\xd8")
    assert not utils.is_static_file(str(thumb))
    assert len(static_paths) >= 1, "Gradio lists its own icons first: the order matters"

    serve_in_place(results)
    serve_in_place(results)  # once in the list, whatever the calls

    assert static_paths[0] == results.resolve()
    assert static_paths.count(results.resolve()) == 1
    assert utils.is_static_file(str(thumb))
    elsewhere = tmp_path / "elsewhere.jpg"
    elsewhere.write_bytes(b"\xff\xd8")
    assert not utils.is_static_file(str(elsewhere))
