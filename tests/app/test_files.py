"""Files written whole (app/studio/files.py): many writers of one file at once, as 64 pages
asking for the same History placeholder do, all succeed and leave one whole file."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from PIL import Image

from app.studio.files import replacing
from app.studio.history import placeholder
from tests.helpers import in_threads


def test_writers_of_one_file_at_once_all_succeed_and_leave_one_whole_file(tmp_path: Path):
    target = tmp_path / "thumb.bin"
    numbers = itertools.count()

    def write() -> None:
        mark = next(numbers) % 256
        with replacing(target) as tmp:
            tmp.write_bytes(bytes([mark]) * 200_000)

    assert in_threads(write, 16) == []
    data = target.read_bytes()
    assert len(data) == 200_000 and len(set(data)) == 1  # one writer's file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["thumb.bin"]  # no temporary left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "cache.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["cache.json"]


def test_pages_drawing_the_same_placeholder_at_once_all_get_it(tmp_path: Path):
    drawn: list[Path] = []
    assert in_threads(lambda: drawn.append(placeholder(tmp_path, "IN_PROGRESS")), 16) == []
    assert len(set(drawn)) == 1 and Image.open(drawn[0]).size == (320, 180)
    assert [p.name for p in drawn[0].parent.iterdir()] == ["LIVE.png"]
