"""Emulator video bench: what drawing and encoding an emulated Wan video costs (issue 14).

For an 81-frame video (the 14B's 5 s at 16 fps) asked at 832x480 and 640x640 and scaled down to
the emulator's default `video_max_side` (320), it times the frames drawn by scene.py (text-to-
video, image-to-video, first-last-frame, and the plain colour frames of unsampled images) and
their H.264 encoding (media.encode_mp4), exactly what SaveVideo does. Prints wall and CPU time,
median of the runs. Target: well under a second per video (one CPU).

Usage: .venvs/worker/bin/python bench/emulator_video.py [--runs 5] [--frames 81]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from emulators.comfyui import media, scene  # noqa: E402
from emulators.comfyui.values import Images, Look  # noqa: E402

PROMPT = "a paper boat drifting down a calm river at sunset, slow dolly shot, golden light"
MAX_SIDE = 320


def looks() -> dict[str, Look | None]:
    start = Image.radial_gradient("L").resize((832, 480)).convert("RGB")
    end = Image.linear_gradient("L").resize((832, 480)).convert("RGB")
    return {
        "t2v": Look(PROMPT, 1),
        "i2v": Look(PROMPT, 1, start=start),
        "flf2v": Look(PROMPT, 1, start=start, end=end),
        "plain": None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--frames", type=int, default=81)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wanpod-bench-video-") as tmp:
        run(args.runs, args.frames, Path(tmp) / "v.mp4")


def run(runs: int, frames: int, out: Path) -> None:
    """Print the table: each look at each size, `runs` times each, encoded to `out`."""
    print(f"emulator video bench: {frames} frames, median of {runs} runs")
    print(f"{'job':<7} {'asked':>8} {'shown':>8} {'wall ms':>8} {'cpu ms':>7} {'bytes':>7}")
    for size in ((832, 480), (640, 640)):
        shown = media.fit(*size, MAX_SIDE)
        for name, look in looks().items():
            images = Images(*size, frames, [0x336699], look=look)
            wall, cpu = [], []
            for _ in range(runs):
                t, c = time.perf_counter(), time.process_time()
                media.encode_mp4(out, *size, scene.frames(images, *shown), 16.0)
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            asked, seen = "x".join(map(str, size)), "x".join(map(str, shown))
            print(
                f"{name:<7} {asked:>8} {seen:>8} "
                f"{statistics.median(wall) * 1000:8.0f} {statistics.median(cpu) * 1000:7.0f} "
                f"{out.stat().st_size:7d}"
            )


if __name__ == "__main__":
    main()
