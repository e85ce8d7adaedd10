"""The history gallery's logic, without Gradio: filters, gallery items, thumbnails, the recipe.

- `HistoryFilter.from_ui(text, pipeline, status)` turns the page's filter fields into a ledger
  query (`Ledger.search`): text in the prompt (or the job or chain id), one pipeline, one status
  group (`STATUS_GROUPS`: "Live" is every queued/running state).
- `listing(ledger, filt, caller, limit, before)`: the rows the caller may see (their own; an
  admin's: everyone's), filtered, newest first, a page at a time (a chain's segments by the text
  alone: app/studio/chain_history.py filters and folds them into their chain).
- `gallery_items(rows, titles, results_dir)` -> one `HistoryItem` per ledger row, newest first:
  its thumbnail (or a placeholder image for jobs without a video: failed, cancelled, lost, live,
  or completed with its video file gone since: `video_gone`),
  a caption with status, pipeline, mode, size, seed, cost and prompt, and the row id.
- `thumbnail(video)`: the first frame of a stored mp4 decoded with PyAV, scaled to THUMB_W wide
  and cached as a JPEG next to the video (`<name>.thumb.jpg`); None when it cannot be decoded.
  Still images in the gallery, not videos: one small JPEG per job loads fast for 48 jobs, where
  48 `<video>` elements would each fetch their mp4. A placeholder PNG per status is drawn once
  in `<results>/_placeholders/` (inside the folder the studio already serves).
- `restore_input(kept, out)`: a job's kept input image (base64) back as a file, for reuse.
- `opened_markdown(row, video)`: the opened job's panel: its details (its state named, live or
  not), a missing video said, and `recipe_markdown(row)`: the recipe (template, version hash,
  seed, ComfyUI version, rerun of), the times and the user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.endpoint.states import JobState
from app.studio.files import replacing
from app.studio.ledger import LIVE_STATES, JobRow, Ledger
from app.studio.markup import md_text
from app.studio.owners import Caller
from app.studio.records import details
from app.studio.store import in_object_storage
from workflows.catalog import frames_for

log = logging.getLogger("wanpod.history")

THUMB_SUFFIX = ".thumb.jpg"  # a video's thumbnail: <video name> + this, beside it
THUMB_W = 320
ALL = "All"
STATUS_GROUPS: dict[str, tuple[str, ...]] = {
    "Completed": (JobState.COMPLETED,),
    "Failed": (JobState.FAILED,),
    "Cancelled": (JobState.CANCELLED,),
    "Timed out": (JobState.TIMED_OUT,),
    "Lost": (JobState.LOST,),
    "Live (queued or running)": LIVE_STATES,
}
_COLOURS = {  # placeholder background per state
    JobState.FAILED: (150, 40, 40),
    JobState.CANCELLED: (110, 110, 110),
    JobState.TIMED_OUT: (150, 90, 20),
    JobState.LOST: (90, 60, 120),
}
_LIVE_COLOUR = (30, 90, 160)


@dataclass(frozen=True)
class HistoryFilter:
    text: str = ""
    template: str | None = None
    states: tuple[str, ...] | None = None

    @classmethod
    def from_ui(cls, text: str | None, pipeline: str | None, status: str | None) -> HistoryFilter:
        """The page's fields; "All" (or empty) means no filter on that field. An unknown status
        group is a ValueError naming the allowed ones."""
        states = None
        if status and status != ALL:
            if status not in STATUS_GROUPS:
                allowed = ", ".join([ALL, *STATUS_GROUPS])
                raise ValueError(f"status: {status!r} is not a filter; allowed: {allowed}")
            states = STATUS_GROUPS[status]
        template = pipeline if pipeline and pipeline != ALL else None
        return cls((text or "").strip(), template, states)

    @property
    def active(self) -> bool:
        return bool(self.text or self.template or self.states is not None)

    def admits_state(self, state: str) -> bool:
        return self.states is None or state in self.states

    def admits_template(self, template: str | None) -> bool:
        return self.template is None or template == self.template


def listing(
    ledger: Ledger,
    filt: HistoryFilter,
    caller: Caller,
    limit: int,
    before: tuple[float, str] | None = None,
) -> list[JobRow]:
    """The caller's jobs (an admin's: everyone's) matching `filt`, newest first, without their
    filled workflows (the gallery is refreshed at each job's end; opening a job reads it);
    `before`: the page after that row's (created_at, id). A chain's segments are matched by
    the text alone: their chain's state and pipeline are its own (app/studio/chain_history.py)."""
    return ledger.search(
        filt.text, filt.template, filt.states, limit, user=caller.scope, workflow=False,
        before=before, whole_chains=True,
    )  # fmt: skip


@dataclass(frozen=True)
class HistoryItem:
    rid: str
    image: str  # thumbnail or placeholder path
    caption: str
    has_video: bool


def size_of(row: JobRow) -> str:
    p = row.params or {}
    if p.get("width") and p.get("height"):
        return f"{p['width']}×{p['height']}"
    return str(p.get("resolution") or "?")


def cost_of(row: JobRow) -> str:
    """Actual billed dollars when known (partial for a cancelled job), else the quote."""
    if row.cost is not None:
        return f"${row.cost.dollars:.4f}"
    dollars = row.quote.dollars if row.quote else None
    return f"≈${float(dollars):.4f} quoted" if dollars is not None else "-"


def caption(row: JobRow, title: str | None = None, prompt_chars: int = 90) -> str:
    p = row.params or {}
    prompt = " ".join(str(p.get("prompt") or "").split())
    if len(prompt) > prompt_chars:
        prompt = prompt[: prompt_chars - 1] + "…"
    seed = (row.recipe or {}).get("seed", p.get("seed"))
    head = " · ".join(
        [
            row.state,
            title or row.template,
            row.mode,
            size_of(row),
            f"seed {seed if seed is not None else '?'}",
            cost_of(row),
        ]
    )
    return f"{head} — {prompt}" if prompt else head


def video_of(row: JobRow, local: Callable[[str | None], Path | None] | None = None) -> Path | None:
    """The stored video of a COMPLETED row as a local file (`local`: the result store's, which
    fetches it from object storage; default: the path as stored)."""
    if row.state is not JobState.COMPLETED or not row.result_path:
        return None
    if local is not None:
        return local(row.result_path)
    path = Path(row.result_path)
    return path if path.is_file() else None


def video_gone(row: JobRow) -> bool:
    """True when a COMPLETED row's video was kept in the results folder and is not there any
    more (one stat). A video in object storage (`s3://...`, app/studio/store.py) is not
    looked for here: fetching it is opening the job (`video_of`)."""
    where = row.result_path
    if row.state is not JobState.COMPLETED or not where:
        return False
    return not in_object_storage(where) and not Path(where).is_file()


def thumbnail_of(
    row: JobRow, local: Callable[[str | None], Path | None] | None = None
) -> Path | None:
    """A COMPLETED row's thumbnail: the one kept beside its video (`local`: the result store's,
    which fetches it from object storage), else made from the video; none once the video is
    gone (`video_gone`: its placeholder says so)."""
    if row.state is not JobState.COMPLETED or not row.result_path or video_gone(row):
        return None
    if local is not None:
        kept = local(row.result_path + THUMB_SUFFIX)
        if kept is not None:
            return kept
    video = video_of(row, local)
    return thumbnail(video) if video is not None else None


def thumbnail(video: Path, width: int = THUMB_W) -> Path | None:
    """The first frame as a JPEG next to the video, made once (remade if the video is newer)."""
    video = Path(video)
    thumb = video.with_name(video.name + THUMB_SUFFIX)
    try:
        if thumb.is_file() and thumb.stat().st_mtime >= video.stat().st_mtime:
            return thumb
        import av

        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            # one thread: frame threading spawns decoder threads and decodes several frames
            # ahead before the first comes out (twice the CPU for a first frame)
            stream.thread_type, stream.thread_count = "NONE", 1
            frame = next(container.decode(stream), None)
            if frame is None:
                return None
            image = frame.to_image()
        w, h = image.size
        if w > width:
            image = image.resize((width, max(1, round(h * width / w))))
        with replacing(thumb) as tmp:
            image.convert("RGB").save(tmp, format="JPEG", quality=80)
        return thumb
    except Exception as exc:  # a broken or foreign file gets the placeholder, not an error
        log.warning("history: no thumbnail for %s (%s)", video.name, type(exc).__name__)
        return None


def placeholder(results_dir: Path, state: str) -> Path:
    """A 320x180 PNG naming the job's state, drawn once per state."""
    from PIL import Image, ImageDraw, ImageFont

    if state in LIVE_STATES:
        name = "LIVE"
    else:
        name = state if state in _COLOURS or state == "COMPLETED" else "OTHER"
    path = Path(results_dir) / "_placeholders" / f"{name}.png"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = _LIVE_COLOUR if name == "LIVE" else _COLOURS.get(name, (70, 70, 70))
    image = Image.new("RGB", (THUMB_W, 180), colour)
    draw = ImageDraw.Draw(image)
    label = {"LIVE": "queued / running", "COMPLETED": "no video file"}.get(name, name.lower())
    font = ImageFont.load_default(size=26)
    box = draw.textbbox((0, 0), label, font=font)
    xy = ((THUMB_W - (box[2] - box[0])) / 2, (180 - (box[3] - box[1])) / 2)
    draw.text(xy, label, fill=(255, 255, 255), font=font)
    with replacing(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def gallery_items(
    rows: Sequence[JobRow],
    titles: Mapping[str, str],
    results_dir: Path,
    local: Callable[[str | None], Path | None] | None = None,
) -> list[HistoryItem]:
    """One item per row, in the rows' order (the ledger gives newest first)."""
    items = []
    for row in rows:
        thumb = thumbnail_of(row, local)
        image = thumb or placeholder(results_dir, row.state)
        items.append(
            HistoryItem(
                row.id, str(image), caption(row, titles.get(row.template)), thumb is not None
            )
        )
    return items


def form_seconds(
    seconds: float, frames: int | None, spec: tuple[float, float, float, float], fps: int
) -> float:
    """The duration slider's value for a past job: on the slider's grid (`spec` = lo, hi, step,
    default) and giving the job's frame count (4k+1 at `fps`, the catalog's rule) when one does;
    else the grid value nearest to the job's resolved seconds (stored as frames / fps)."""
    lo, hi, step, _ = spec
    if step <= 0:
        return min(max(seconds, lo), hi)
    grid = [round(lo + k * step, 6) for k in range(round((hi - lo) / step) + 1)]
    same = [g for g in grid if frames is not None and frames_for(g, fps) == frames]
    return min(same or grid, key=lambda g: abs(g - seconds))


def restore_input(kept: Path, out: Path) -> Path | None:
    """A job's kept input image (`Studio.kept_input`: base64 as sent to the worker) as an image
    file at `out`, for "Reuse settings"; None when it was not kept."""
    import base64
    import binascii

    if out.is_file():
        return out
    try:
        data = base64.b64decode(Path(kept).read_text(), validate=True)
    except (OSError, ValueError, binascii.Error):
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as tmp:
        tmp.write_bytes(data)
    return out


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def no_video(row: JobRow) -> str:
    """Why a COMPLETED row has no video to play here (its result store did not give it)."""
    if in_object_storage(row.result_path):
        return "it could not be fetched from the result store; open the job again later"
    return "its file is gone from the results folder"


def opened_markdown(row: JobRow, video: Path | None) -> str:
    """The opened job's panel: its details with its state named (live or not: nothing keeps
    this panel current, so a live one says so), a COMPLETED job's missing video, the recipe."""
    parts = [details(row, state=True)]
    if row.live:
        parts.append(
            f"**Live:** {row.state} when opened; this panel does not follow it: press Follow"
            " live to watch it in the status panel (or open it again)."
        )
    if row.state is JobState.COMPLETED and video is None:
        parts.append(f"**Video:** none to play: {no_video(row)}.")
    parts.append(recipe_markdown(row))
    return "\n\n".join(parts)


def recipe_markdown(row: JobRow) -> str:
    """The recipe and the times of one job (the rest comes from `app.studio.records.details`)."""
    r = row.recipe or {}
    seed = r.get("seed", (row.params or {}).get("seed"))
    parts = [
        f"template `{r.get('template') or row.template}`",
        f"version `{r.get('template_version') or '?'}`",
        f"mode {row.mode}",
        f"seed **{seed if seed is not None else '?'}**",
        f"ComfyUI {r.get('comfyui_version') or '? (not reported yet)'}",
    ]
    if r.get("rerun_of"):
        parts.append(f"rerun of `{r['rerun_of']}`")
    lines = ["**Recipe:** " + " · ".join(parts)]
    when = f"**Times:** created {_when(row.created_at)} · finished {_when(row.finished_at)}"
    if row.finished_at and (row.submitted_at or row.created_at):
        when += f" ({row.finished_at - (row.submitted_at or row.created_at):.1f} s after sending)"
    lines.append(when)
    if row.user:
        lines.append(f"**User:** {md_text(row.user)}")
    return "\n\n".join(lines)
