"""A start image given as an https:// URL: checked here, downloaded by the worker (not the studio).

The worker (worker/fetch.py) fetches `images[].image` URLs with its size and time caps, its content
checks and its address checks (loopback, private, link-local and metadata addresses refused after
every redirect and at connect time, unless its operator allows private ranges). The studio only
refuses what can never work before a paid run: not https, user info in the URL, no host, too long.
It never downloads the URL, so its size and aspect ratio are not known before the run: ComfyUI's
Wan image nodes fit the image to the video size (centre crop, resize).

The upload name's extension must match the content (the worker's rule for every image): it is
taken from the URL's path (.png, .jpg/.jpeg, .webp), .png when the path has none of them.
`shown(url)` is the only form of the URL a message or the page's details show: a query string
often carries a signature, so it is never shown.
"""

from __future__ import annotations

import urllib.parse

from app.errors import ImageError
from app.studio import fetch

MAX_URL_CHARS = 2048  # what browsers and most servers accept in a request line
EXTENSIONS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
ALLOWED = "an https:// URL of a PNG, JPEG or WebP image, without user info"


def check_url(url: str, field: str = "start image URL") -> str:
    """`url` stripped, or an ImageError naming the field and what is allowed."""
    url = url.strip()
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise ImageError(field, f"is not a URL; allowed: {ALLOWED}") from None
    if len(url) > MAX_URL_CHARS:
        raise ImageError(field, f"is {len(url)} characters long; allowed: at most {MAX_URL_CHARS}")
    if parts.scheme.lower() != "https":
        scheme = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ImageError(field, f"{shown(url)} uses {scheme}; allowed: {ALLOWED}")
    if parts.username or parts.password:
        raise ImageError(field, f"{shown(url)} carries user info; allowed: {ALLOWED}")
    if not parts.hostname:
        raise ImageError(field, f"{shown(url)} has no host; allowed: {ALLOWED}")
    return url


def upload_name(url: str, stem: str) -> str:
    """The name the worker saves the download as: `stem` + the URL path's image extension."""
    path = urllib.parse.urlsplit(url).path.lower()
    ext = next((e for suffix, e in EXTENSIONS.items() if path.endswith(suffix)), "png")
    return f"{stem}.{ext}"


def shown(url: str) -> str:
    """The URL without query, fragment and user info (what messages and the page show)."""
    try:
        return fetch.shown(url.strip()) + ("?…" if urllib.parse.urlsplit(url).query else "")
    except ValueError:
        return "<unparsable URL>"
