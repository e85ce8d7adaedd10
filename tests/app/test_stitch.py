"""Seams without re-encoding where the streams allow it, else one re-encode; the colour match."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

from app.studio import stitch

W, H = 64, 48


def segment(path: Path, colours: list[tuple[int, int, int]], gop: int) -> Path:
    """An H.264 mp4 of flat frames; `gop` 1 makes every frame a keyframe (all-intra)."""
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=16)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"g": str(gop), "bf": "0", "crf": "10", "preset": "ultrafast"}
        for colour in colours:
            frame = np.zeros((H, W, 3), np.uint8)
            frame[:] = colour
            for packet in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def reds(n: int) -> list[tuple[int, int, int]]:
    return [(40 + 20 * i, 0, 0) for i in range(n)]


def greens(first: tuple[int, int, int], n: int) -> list[tuple[int, int, int]]:
    return [first] + [(0, 40 + 20 * i, 0) for i in range(1, n)]


def colours(video: Path) -> list[tuple[int, ...]]:
    with av.open(str(video)) as c:
        return [f.to_image().getpixel((W // 2, H // 2)) for f in c.decode(video=0)]


def timing(video: Path) -> tuple[float, int]:
    """The video's duration in seconds and how many distinct presentation times its frames
    have (a player shows each frame at its own)."""
    with av.open(str(video)) as c:
        times = {f.pts for f in c.decode(video=0)}
        return c.duration / av.time_base, len(times)


def near(a, b, tol: int = 6) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def test_all_intra_segments_are_joined_without_re_encoding(tmp_path):
    a = segment(tmp_path / "a.mp4", reds(5), gop=1)
    b = segment(tmp_path / "b.mp4", greens((120, 0, 0), 5), gop=1)
    made = stitch.stitch([a, b], tmp_path / "out.mp4")
    assert made.remuxed and made.frames == 9 == stitch.frame_count(made.path)
    duration, times = timing(made.path)
    assert times == 9 and abs(duration - 9 / 16) < 0.02, duration  # 16 fps, as its segments
    got = colours(made.path)
    assert near(got[4], (120, 0, 0)) and near(got[5], (0, 60, 0))  # b's first frame left out
    with av.open(str(a)) as src, av.open(str(made.path)) as out:  # the same compressed bytes
        assert bytes(next(p for p in src.demux(video=0) if p.size)) == bytes(
            next(p for p in out.demux(video=0) if p.size)
        )


def test_predicted_segments_are_re_encoded_once_without_the_seam_frame(tmp_path):
    a = segment(tmp_path / "a.mp4", reds(5), gop=250)
    b = segment(tmp_path / "b.mp4", greens((120, 0, 0), 5), gop=250)
    c = segment(tmp_path / "c.mp4", greens((0, 120, 0), 3), gop=250)
    assert not stitch.can_remux([a, b, c])
    made = stitch.stitch([a, b, c], tmp_path / "out.mp4")
    assert not made.remuxed and made.frames == 5 + 5 + 3 - 2 == stitch.frame_count(made.path)
    duration, times = timing(made.path)
    assert times == 11 and abs(duration - 11 / 16) < 0.02, duration  # 16 fps, as its segments
    got = colours(made.path)
    assert near(got[4], (120, 0, 0)) and near(got[5], (0, 60, 0))
    assert near(got[8], (0, 120, 0)) and near(got[9], (0, 60, 0))
    assert near(colours(made.path)[-1], colours(c)[-1])


def test_the_last_frame_is_decoded_at_full_size(tmp_path):
    a = segment(tmp_path / "a.mp4", reds(5), gop=250)
    last = stitch.last_frame(a)
    assert last.size == (W, H) and near(last.getpixel((5, 5)), (120, 0, 0))
    assert near(stitch.first_frame(a).getpixel((5, 5)), (40, 0, 0))


def test_colour_match_pulls_a_drifted_frame_back_to_the_reference():
    rng = np.random.default_rng(1)
    ref = rng.integers(30, 180, (48, 64, 3)).astype(np.uint8)
    drifted = np.clip(ref.astype(int) * 1.1 + np.array([20, 10, -25]), 0, 255).astype(np.uint8)
    matched = np.asarray(stitch.colour_match(Image.fromarray(drifted), Image.fromarray(ref)))
    before = np.abs(drifted.astype(int) - ref).mean(axis=(0, 1))
    after = np.abs(matched.astype(int) - ref).mean(axis=(0, 1))
    assert (before > 8).all() and (after < 2).all(), (before, after)
