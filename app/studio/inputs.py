"""What the quote line says about a job's inputs before Generate (pure but for reading image
headers): a required image that is missing, an image too small to use (refused, with the
minimum), and what fitting each image to the chosen size does (crop, scale), with the size preset
that matches the image's aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import InputError
from app.studio.forms import FormValues, PipelineForm
from app.studio.images import check_size, closest_aspect, fit_note, image_size


@dataclass(frozen=True)
class ImageFit:
    field: str  # "start image" | "end image"
    size: tuple[int, int]
    note: str  # what fitting does, e.g. "centre-cropped to 480x480 (...), upscaled ×1.00 ..."
    matching: str  # the preset whose aspect ratio is nearest the image's ("" when none)


def image_fits(form: PipelineForm, values: FormValues, size: tuple[int, int]) -> list[ImageFit]:
    """Each image the job uses, checked and described; an InputError for a missing required image
    or one too small (naming the field, the size and the minimum)."""
    wanted = [("start image", values.start_image, form.needs_start, form.start_optional)]
    wanted.append(("end image", values.end_image, form.needs_end, False))
    fits = []
    presets = {p.label: (p.width, p.height) for p in form.presets}
    for label, path, used, optional in wanted:
        if not used:
            continue
        if not path:
            if optional:
                continue
            raise InputError(label, f"{form.title} needs a {label}; allowed: a PNG, JPEG or WebP")
        w0, h0 = image_size(path, label)
        check_size(w0, h0, label)
        matching = closest_aspect(w0, h0, presets) if presets else ""
        fits.append(ImageFit(label, (w0, h0), fit_note(w0, h0, *size), matching))
    return fits


def describe(fits: list[ImageFit], resolution: str) -> str:
    """The quote line's words for the images: what happens to each, and a better preset."""
    parts = []
    for fit in fits:
        w, h = fit.size
        line = f"{fit.field} {w}x{h}: {fit.note}"
        if fit.matching and fit.matching != resolution:
            line += f"; “{fit.matching}” would match its aspect ratio"
        elif fit.matching:
            line += f" (“{fit.matching}” matches its aspect ratio)"
        parts.append(line)
    return " · ".join(parts)


def matching_preset(form: PipelineForm, path: str | None) -> str:
    """The form's preset nearest the image's aspect ratio ("" without presets or an image)."""
    if not path or not form.presets:
        return ""
    w0, h0 = image_size(path, "start image")
    return closest_aspect(w0, h0, {p.label: (p.width, p.height) for p in form.presets})
