"""The results folder as a Gradio static path, and the first one Gradio checks.

Results are served from where the studio stored them (`gr.set_static_paths`, public API):
Gradio would otherwise hash every video and thumbnail it sends (SHA-256 of the whole file, at
every answer showing it) and copy each into its cache. The file route stays behind FileGuard.

Every file an answer carries (a job's end sends its video, this session's strip and up to
GALLERY_LIMIT thumbnails) is then checked against each static path in turn, both paths resolved
on disk each time, until one holds it. Gradio lists two of its own icons before anything the
app adds (at import), so each result file cost three such checks, about a fifth of the studio's
CPU at 64 users (bench/studio_concurrency.py --mode protocol --profile). `serve_in_place(path)`
puts the results folder first: one check per result file. The list is Gradio's internal
`_StaticFiles.all_paths`, checked against the Gradio named in app/ui/gradio_internals.py (a
test fails on any other); without it this raises rather than silently losing the order.
"""

from __future__ import annotations

from pathlib import Path


def serve_in_place(path: str | Path) -> None:
    """Serve files under `path` in place, checked before every other static path."""
    import gradio as gr
    from gradio import data_classes

    holder = getattr(data_classes, "_StaticFiles", None)
    if not isinstance(getattr(holder, "all_paths", None), list):
        raise RuntimeError("Gradio's static paths moved: see app/ui/static_paths.py")
    gr.set_static_paths([path])
    paths = holder.all_paths
    mine = Path(path).resolve()
    paths[:] = [mine, *(p for p in paths if p != mine)]
