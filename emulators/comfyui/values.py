"""The values simulated nodes pass to each other, the node context, and the node errors.

`Images` (size, frame count, colours), `Latent` (size and frame length from the latent nodes'
width/height/length), `Video` (images + fps), `Audio`, `UpscaleModel` (file and scale factor),
`Conditioning` (the prompt text and the guide images it carries) and `Opaque` (models, CLIP...).
`Look` is what the job's inputs make the frames show (prompt, seed, start/end images): it rides
from the conditioning and the sampler on the latent to the decoded images (scene.py draws it).
Their reprs imitate what ComfyUI puts in `execution_error.current_inputs`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image


class Interrupted(Exception):
    """The interrupt flag was seen (before a node or at a progress step)."""


class NodeFailure(Exception):
    def __init__(self, exception_type: str, message: str, traceback: list[str] | None = None):
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message
        self.traceback = traceback or []


@dataclass(frozen=True)
class Look:
    """What a sampled video shows: the prompt (caption), the seed (motion), the guide images."""

    caption: str = ""
    seed: int = 0
    start: Image.Image | None = None  # WanImageToVideo / Wan22ImageToVideoLatent start_image
    end: Image.Image | None = None  # WanFirstLastFrameToVideo end_image

    def joined(self, other: Look) -> Look:
        """This look with what `other` adds (its caption, its guide images where set)."""
        return Look(
            other.caption or self.caption,
            self.seed,
            self.start if other.start is None else other.start,
            self.end if other.end is None else other.end,
        )


@dataclass
class Images:
    width: int
    height: int
    frames: int
    colors: list[int] = field(default_factory=lambda: [0x808080])
    inverted: bool = False
    look: Look | None = None  # set on frames decoded from a sampled latent
    picture: Image.Image | None = None  # the pixels LoadImage read

    def __repr__(self) -> str:
        return f"tensor(<{self.frames}x{self.height}x{self.width}x3 float32>)"


@dataclass
class Latent:
    width: int
    height: int
    length: int = 1
    batch: int = 1
    look: Look | None = None

    def __repr__(self) -> str:
        return (
            f"{{'samples': tensor(<latent {self.batch}x{self.length}x{self.height}x{self.width}>)}}"
        )


@dataclass
class Video:
    images: Images
    fps: float

    def __repr__(self) -> str:
        return (
            f"<comfy_api.latest._input_impl.video_types.VideoFromComponents object at "
            f"0x{id(self):x}>"
        )


@dataclass
class Audio:
    duration: float
    sample_rate: int = 44100
    channels: int = 2

    def __repr__(self) -> str:
        return (
            f"{{'waveform': tensor(<1x{self.channels}x{int(self.duration * self.sample_rate)}>), "
            f"'sample_rate': {self.sample_rate}}}"
        )


@dataclass
class UpscaleModel:
    """What UpscaleModelLoader passes on: the file and its scale factor (read from the name)."""

    name: str
    scale: int

    def __repr__(self) -> str:
        return (
            f"<spandrel.__helpers.model_descriptor.ImageModelDescriptor object at 0x{id(self):x}>"
        )


@dataclass
class Opaque:
    type: str
    source: str = ""

    def __repr__(self) -> str:
        return f"<{self.type} object at 0x{id(self):x}>"


@dataclass
class Conditioning(Opaque):
    """CLIPTextEncode's output: the prompt text; the Wan image nodes add the guide images."""

    look: Look = field(default_factory=Look)


@dataclass
class NodeContext:
    node_id: str
    class_type: str
    inputs: dict[str, Any]  # links resolved to upstream values
    output_types: list[str]
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    input_directory: Path
    output_directory: Path
    temp_directory: Path
    step_delay: float
    node_delay: float
    video_max_side: int
    output_bytes: int | None
    progress: Callable[[int, int, Any], Awaitable[None]]  # (value, max, latent to preview|None)
    encode_delay: float = 0.0


def first_of(ctx: NodeContext, kind: type) -> Any:
    for v in ctx.inputs.values():
        if isinstance(v, kind):
            return v
    return None


def int_input(ctx: NodeContext, name: str, default: int) -> int:
    try:
        return int(ctx.inputs.get(name, default))
    except (TypeError, ValueError):
        return default
