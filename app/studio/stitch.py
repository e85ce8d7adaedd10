"""Video frames and seams for chains (PyAV): the last frame of a segment, one stitched video.

- `last_frame(video)` / `first_frame(video)`: a frame decoded at the stream's full size as an RGB
  Pillow image (saved as PNG by the caller: lossless, so the next segment starts on exactly what
  was decoded).
- `stitch(videos, out)`: the segments joined into one mp4, each segment after the first WITHOUT
  its first frame (it repeats the previous segment's last frame: the chain started it there).
  When every later segment's second packet is a keyframe and the streams agree (codec, size,
  pixel format, time base), the packets are copied as they are (no re-encoding, no quality loss;
  all-intra streams allow this). Otherwise the frames are decoded and encoded ONCE with libx264
  (CRF `REENCODE_CRF`): an H.264 segment's second frame is predicted from its first, so the
  first cannot be dropped from the compressed stream.
- `colour_match(image, reference)`: the per-channel histogram of `image` mapped onto the
  reference's (NumPy CDF matching), for the chains' optional colour/brightness match.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

REENCODE_CRF = "18"  # visually lossless for H.264: the one re-encode a chain's video gets
REENCODE_PRESET = "veryfast"  # a chain's video is encoded once, on the studio's CPU


@dataclass(frozen=True)
class Stitched:
    path: Path
    frames: int
    remuxed: bool  # True: packets copied as they were (no re-encoding)


def _frames(video: Path) -> list[av.VideoFrame]:
    with av.open(str(video)) as c:
        return list(c.decode(video=0))


def first_frame(video: Path) -> Image.Image:
    with av.open(str(video)) as c:
        for frame in c.decode(video=0):
            return frame.to_image()
    raise ValueError(f"{Path(video).name} has no video frame")


def last_frame(video: Path) -> Image.Image:
    """The last decoded frame at full size (every frame is decoded: H.264 has no other way)."""
    last = None
    with av.open(str(video)) as c:
        for frame in c.decode(video=0):
            last = frame
    if last is None:
        raise ValueError(f"{Path(video).name} has no video frame")
    return last.to_image()


def frame_count(video: Path) -> int:
    with av.open(str(video)) as c:
        return sum(1 for _ in c.decode(video=0))


def _shape(video: Path) -> tuple[object, ...]:
    with av.open(str(video)) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        return (cc.name, cc.width, cc.height, cc.pix_fmt, s.time_base)


def _packets(video: Path) -> list[av.Packet]:
    with av.open(str(video)) as c:
        return [p for p in c.demux(video=0) if p.size]


def can_remux(videos: Sequence[Path]) -> bool:
    """Whether the seams can be cut without re-encoding (see the module docstring)."""
    if len({_shape(v) for v in videos}) != 1:
        return False
    for video in videos[1:]:
        packets = _packets(video)
        if len(packets) < 2 or not packets[1].is_keyframe:
            return False
    return True


def stitch(videos: Sequence[Path], out: Path) -> Stitched:
    """One video of the segments, the repeated first frame of each later one left out."""
    videos = [Path(v) for v in videos]
    if not videos:
        raise ValueError("no segment to stitch")
    out.parent.mkdir(parents=True, exist_ok=True)
    if len(videos) == 1:
        shutil.copyfile(videos[0], out)
        return Stitched(out, frame_count(out), True)
    if can_remux(videos):
        return _remux(videos, out)
    return _reencode(videos, out)


def _remux(videos: Sequence[Path], out: Path) -> Stitched:
    count = 0
    with av.open(str(videos[0])) as first, av.open(str(out), "w", format="mp4") as dst:
        stream = dst.add_stream_from_template(first.streams.video[0])
        next_pts = 0
        for k, video in enumerate(videos):
            packets = _packets(video)[(1 if k else 0) :]
            shift = next_pts - min(p.pts for p in packets)
            for p in packets:
                duration = p.duration or 1
                p.pts += shift
                p.dts = (p.dts if p.dts is not None else p.pts - shift) + shift
                p.stream = stream
                next_pts = max(next_pts, p.pts + duration)
                dst.mux(p)
                count += 1
    return Stitched(out, count, True)


def _reencode(videos: Sequence[Path], out: Path) -> Stitched:
    with av.open(str(videos[0])) as c:
        s = c.streams.video[0]
        rate = s.average_rate or s.guessed_rate or Fraction(16)
        width, height = s.codec_context.width, s.codec_context.height
    count = 0
    rate = Fraction(rate).limit_denominator(1001)
    with av.open(str(out), "w", format="mp4") as dst:
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": REENCODE_CRF, "preset": REENCODE_PRESET}
        for k, video in enumerate(videos):
            for i, frame in enumerate(_frames(video)):
                if k and i == 0:
                    continue  # the seam: the previous segment's last frame, already written
                picture = frame.reformat(width=width, height=height, format="yuv420p")
                picture.pts, picture.time_base = count, 1 / rate  # one frame period apart
                for packet in stream.encode(picture):
                    dst.mux(packet)
                count += 1
        for packet in stream.encode():
            dst.mux(packet)
    return Stitched(out, count, False)


def colour_match(image: Image.Image, reference: Image.Image) -> Image.Image:
    """`image` with each RGB channel's histogram mapped onto `reference`'s (CDF matching)."""
    src = np.asarray(image.convert("RGB"))
    ref = np.asarray(reference.convert("RGB"))
    out = np.empty_like(src)
    for ch in range(3):
        s_hist = np.bincount(src[..., ch].ravel(), minlength=256).astype(np.float64)
        r_hist = np.bincount(ref[..., ch].ravel(), minlength=256).astype(np.float64)
        s_cdf = np.cumsum(s_hist) / s_hist.sum()
        r_cdf = np.cumsum(r_hist) / r_hist.sum()
        lut = np.interp(s_cdf, r_cdf, np.arange(256)).round().clip(0, 255).astype(np.uint8)
        out[..., ch] = lut[src[..., ch]]
    return Image.fromarray(out, "RGB")
