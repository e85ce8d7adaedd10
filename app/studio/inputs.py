"""What the quote line says about a job's inputs before Generate (pure but for reading image
headers): a required image that is missing, an image too small to use (refused, with the
minimum), and what fitting each image to the chosen size does (crop, scale), with the size preset
that matches the image's aspect ratio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.errors import InputError
from app.studio.forms import FormValues, PipelineForm
from app.studio.image_urls import check_url, shown, upload_name
from app.studio.images import (
    PreparedImage,
    check_size,
    closest_aspect,
    fit_note,
    image_size,
    prepare_image,
)


@dataclass(frozen=True)
class ImageFit:
    field: str  # "start image" | "end image"
    size: tuple[int, int] | None  # None: given by URL, not read before the run
    note: str  # what fitting does, e.g. "centre-cropped to 480x480 (...), upscaled ×1.00 ..."
    matching: str  # the preset whose aspect ratio is nearest the image's ("" when none)


@dataclass(frozen=True)
class JobImages:
    """A job's images as it sends them: uploaded files (prepared: fitted, re-encoded) by fill
    parameter, and URLs the worker downloads (param -> (upload name, URL))."""

    files: Mapping[str, PreparedImage]
    urls: Mapping[str, tuple[str, str]]

    @property
    def names(self) -> dict[str, str]:
        """param -> upload name, what `fill` puts in the LoadImage nodes."""
        return {p: img.name for p, img in self.files.items()} | {
            p: name for p, (name, _) in self.urls.items()
        }

    def uploads(self, filled: Mapping[str, str]) -> list[dict[str, str]]:
        """worker-comfyui's `images` for the names fill used (`filled`: name -> param)."""
        out = []
        for name, param in filled.items():
            if param in self.files:  # fill may rename the upload; the bytes are ours
                out.append({"name": str(name), "image": self.files[param].b64})
            elif param in self.urls:  # the worker downloads it (worker/fetch.py)
                out.append({"name": str(name), "image": self.urls[param][1]})
        return out


def job_images(
    form: PipelineForm, values: FormValues, size: tuple[int, int], tag: str
) -> JobImages:
    """The images a job sends (`tag` makes their names unique); an ImageError or InputError
    names the field of a missing, unreadable or refused one."""
    files, urls = {}, {}
    wanted = [("start_image", "start image", values.start_image, form.needs_start)]
    wanted.append(("end_image", "end image", values.end_image, form.needs_end))
    for param, label, path, used in wanted:
        if not used:
            continue
        url = start_url(values) if param == "start_image" else None
        if url:
            urls[param] = (upload_name(url, f"wanpod_{tag}_{param}"), url)
        elif path is not None:
            name = f"wanpod_{tag}_{param}"
            files[param] = prepare_image(path, *size, field=label, name=name)
        elif not (param == "start_image" and form.start_optional):
            raise InputError(label, f"{form.title} needs a {label}; upload one")
    return JobImages(files, urls)


def start_url(values: FormValues) -> str | None:
    """The start image's https:// URL, checked (app/studio/image_urls.py); None when the form
    has none. A URL beside an uploaded start image is refused: which one was meant is unclear."""
    url = (values.start_image_url or "").strip()
    if not url:
        return None
    if values.start_image:
        raise InputError(
            "start image URL",
            "is given beside an uploaded start image; allowed: one of them (clear the other)",
        )
    return check_url(url)


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
        url = start_url(values) if label == "start image" else None
        if url:
            note = f"ComfyUI fits it to {size[0]}x{size[1]} (centre crop, resize)"
            fits.append(ImageFit(f"{label} from {shown(url)}", None, note, ""))
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
        if fit.size is None:
            parts.append(f"{fit.field}: downloaded by the worker when the job runs; {fit.note}")
            continue
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
