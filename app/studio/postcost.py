"""Expected seconds of the optional post-steps (upscale, smooth motion) on the reference GPU. Pure.

ESTIMATES, not measurements: nothing in this repository has timed these nodes on a GPU. The
constants below are derived from published figures, each named next to it, and converted to the
cost model's reference GPU (H100, app/studio/cost.py) with an assumption stated here once:
  small convolutional networks (RIFE, Real-ESRGAN) run about 2x as fast on an H100 as on an
  RTX 3090 and 3x as fast as on an RTX 4060 (an assumption, deliberately low: sampling gets 6x
  over the 3090 in cost.GPU_SPEED, but these nets are small and ComfyUI feeds them frame by
  frame, so they use far less of a big GPU).
cost.py multiplies these reference seconds by GPU_SPEED like sampling's, so a slower GPU's post-step
quote is on the high side of what it will take; finished jobs calibrate them (cost.calibrate).
"""

from __future__ import annotations

H100_OVER_3090 = 2.0  # assumption (see above)
H100_OVER_4060 = 3.0  # assumption (see above)

# RIFE v4.4 on an RTX 3090 at 1920x1088: 53.62 fps fp16 through onnxruntime-CUDA, one stream
# (vs-mlrt wiki, AmusementClub/vs-mlrt, "RIFE" page, vs-mlrt v12), read here as network passes
# (new frames) per second. ComfyUI-Frame-Interpolation runs RIFE in PyTorch (fp32 by default,
# frames moved to and from the GPU one pair at a time): assumed 3x slower than that, which also
# covers the figure counting every output frame (half of them copies) rather than passes.
RIFE_3090_ORT_PX_S = 53.62 * 1920 * 1088  # new-frame pixels per second, published
RIFE_PYTORCH_SLOWDOWN = 3.0  # estimate (conservative)
RIFE_REF_PX_S = RIFE_3090_ORT_PX_S / RIFE_PYTORCH_SLOWDOWN * H100_OVER_3090  # ≈ 74 Mpx/s

# Real-ESRGAN x4plus (RRDBNet, 23 blocks) on an RTX 4060: ~13 fps on 180x320 input (a published
# proof of concept: 0.44x of 30 fps real time), i.e. ≈ 0.76 Mpx/s of input. x2plus runs the same
# RRDB body on pixel-unshuffled input (a quarter of the positions): about 1/4 of the work per
# input pixel; a 1x model unshuffles by 4 (1/16). ComfyUI tiles frames at 512 px with 32 px of
# overlap (ImageUpscaleWithModel): about 15 % more pixels go through the model.
X4PLUS_4060_PX_S = 0.44 * 30 * 180 * 320  # input pixels per second, published
UPSCALE_REF_PX_S = X4PLUS_4060_PX_S * H100_OVER_4060  # ≈ 2.3 Mpx/s for a 4x RRDB model
TILE_OVERHEAD = 1.15  # estimate: (512 / (512 - 32))^2 ≈ 1.14
LOAD_S = 1.5  # estimate: moving a small model to the GPU, per step and job


def upscale_s(pixels: int, frames: int, native: int) -> float:
    """Reference seconds to run an upscale model of factor `native` over `frames` frames of
    `pixels` pixels each (the work per input pixel grows with (native / 4)^2, as above)."""
    work = (max(native, 1) / 4) ** 2
    return LOAD_S + pixels * frames * work * TILE_OVERHEAD / UPSCALE_REF_PX_S


def interpolate_s(pixels: int, frames: int, multiplier: int) -> float:
    """Reference seconds for RIFE to make `multiplier - 1` new frames between each two of
    `frames` frames of `pixels` pixels (one network pass per new frame)."""
    new = max(frames - 1, 0) * max(multiplier - 1, 0)
    return LOAD_S + new * pixels / RIFE_REF_PX_S
