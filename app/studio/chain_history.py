"""History with chains: a chain's segments shown as ONE gallery item (no Gradio).

`listing(ledger, chains, filt, caller, limit)` gives the gallery's newest `limit` entries (newest
first) and whether older ones match too: a job row, or a chain in place of its segments, at the
place of its newest segment. A chain is matched as one: by its id, or any segment's prompt or id
(the text), and by ITS state and pipeline (its first segment's), not its segments' (a storyboard
cancelled in its second segment is not Completed, nor Image to video when it began as Text to
video). Rows are read a page (limit + 1) at a time until limit + 1 entries are found, so chains
folded or filtered out never shorten the gallery nor hide that older jobs exist.
`items(entries, titles, results_dir)` gives app/studio/history.py's items for them: a chain's is
the stitched video's first frame (or the placeholder of its state), and a caption with the
chain's state, its segments done of those planned (`progress`), frames, cost and prompts. The
item's id is the chain id (`ch-...`), which the History panel opens as the chain:
`describe(chains, chain)` is what a page shows for one (state, each segment, its video, quote,
note), each prompt and the note as text (app/studio/markup.py: no image, link or HTML from a
prompt), cut to PROMPT_CHARS at a word's end.
An Extend's parent job stays an item of its own as well: it is a job in its own right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.endpoint.states import JobState
from app.studio import history as hist
from app.studio.chain_store import CANCELLED, CHAIN_PREFIX, RUNNING, ChainRow
from app.studio.ledger import JobRow, Ledger
from app.studio.markup import md_short, md_text
from app.studio.owners import ANYONE, Caller

_AS_JOB_STATE = {RUNNING: JobState.IN_PROGRESS}  # a running chain: shown and filtered as live
PROMPT_CHARS = 60  # of each segment's prompt on the chain's panel
MAX_PAGES = 20  # pages of rows read for one gallery at most (then older ones are said to exist)


@dataclass(frozen=True)
class ChainView:
    cid: str
    state: str
    line: str  # markdown: the chain and each segment
    video: str | None
    final: bool
    segments: tuple[str, ...]


@dataclass(frozen=True)
class ChainEntry:
    chain: ChainRow
    segs: list[JobRow]

    @property
    def id(self) -> str:
        return self.chain.id


@dataclass(frozen=True)
class Listing:
    entries: list[JobRow | ChainEntry] = field(default_factory=list)
    more: bool = False  # older entries match the filters too


def is_chain(item_id: str | None) -> bool:
    return bool(item_id) and str(item_id).startswith(CHAIN_PREFIX)


def shown_state(chain: ChainRow) -> str:
    """The chain's state as shown: RUNNING until its end is written (a cancel included)."""
    return chain.state if chain.finished_at is not None else RUNNING


def as_job_state(chain: ChainRow) -> str:
    """The job state a chain shows and filters as (its placeholder, History's status groups)."""
    state = shown_state(chain)
    return _AS_JOB_STATE.get(state, state)


def pipeline_of(segs: Sequence[JobRow]) -> str | None:
    """A chain's pipeline: its first segment's (the later ones continue from a frame)."""
    return segs[0].template if segs else None


def listing(
    ledger: Ledger, chains: Any, filt: hist.HistoryFilter, caller: Caller, limit: int
) -> Listing:
    entries: list[JobRow | ChainEntry] = []
    met: dict[str, ChainRow | None] = {}  # the chains met so far (None: not in the store)
    before = None
    for _ in range(MAX_PAGES):
        rows = hist.listing(ledger, filt, caller, limit + 1, before)
        for row in rows:
            entry = _entry(row, chains, filt, met)
            if entry is None:
                continue
            if len(entries) == limit:
                return Listing(entries, more=True)
            entries.append(entry)
        if len(rows) <= limit:  # the last page
            return Listing(entries)
        before = (rows[-1].created_at, rows[-1].id)
    return Listing(entries, more=True)


def _entry(
    row: JobRow, chains: Any, filt: hist.HistoryFilter, met: dict[str, ChainRow | None]
) -> JobRow | ChainEntry | None:
    """The row's entry: the row, its chain where it is a segment (once: at its newest), or
    None where that is listed already or does not match `filt`."""
    cid = str((row.chain or {}).get("id") or "")
    if cid and chains is not None:
        if cid in met:
            if met[cid] is not None:
                return None  # listed (or left out) at its newest segment
        else:
            chain = met[cid] = chains.store.get(cid)
            if chain is not None:
                if not filt.admits_state(as_job_state(chain)):
                    return None
                segs = chains.segments(chain)
                return ChainEntry(chain, segs) if filt.admits_template(pipeline_of(segs)) else None
    # a job; or a segment whose chain is not in the store, shown as a job (the ledger left
    # its state and pipeline to this check)
    return row if filt.admits_state(row.state) and filt.admits_template(row.template) else None


def items(
    entries: Sequence[JobRow | ChainEntry],
    titles: Mapping[str, str],
    results: Path,
    local: Any = None,
) -> list[hist.HistoryItem]:
    out: list[hist.HistoryItem] = []
    for entry in entries:
        if isinstance(entry, ChainEntry):
            out.append(chain_item(entry.chain, entry.segs, titles, results))
        else:
            out += hist.gallery_items([entry], titles, results, local)
    return out


def progress(chain: ChainRow, segs: Sequence[JobRow]) -> str:
    """How far the chain got: its segments finished (a sent one may still run, or have been
    cancelled or failed) of those it plans, e.g. "2 of 3 segments done"."""
    done = sum(1 for s in segs if s.state is JobState.COMPLETED)
    return f"{done} of {chain.total} segments done"


def caption(chain: ChainRow, segs: Sequence[JobRow], title: str | None) -> str:
    spent = sum(s.cost.dollars for s in segs if s.cost is not None)
    head = [shown_state(chain), f"chain, {progress(chain, segs)}", title or "?"]
    if chain.frames:
        head.append(f"{chain.frames} frames")
    head.append(f"${spent:.4f}")
    prompts = " / ".join(str((s.params or {}).get("prompt", "")) for s in segs)
    if len(prompts) > 120:
        prompts = prompts[:119] + "…"
    return " · ".join(head) + (f" — {prompts}" if prompts else "")


def chain_item(
    chain: ChainRow, segs: Sequence[JobRow], titles: Mapping[str, str], results: Path
) -> hist.HistoryItem:
    video = Path(chain.result_path) if chain.result_path else None
    thumb = hist.thumbnail(video) if video is not None and video.is_file() else None
    image = thumb or hist.placeholder(results, as_job_state(chain))
    title = titles.get(pipeline_of(segs) or "")
    return hist.HistoryItem(chain.id, str(image), caption(chain, segs, title), thumb is not None)


def describe(chains: Any, chain: ChainRow) -> ChainView:
    """The chain's panel: its state, each segment (a live one with its progress line), its
    video (how it was joined), the quote and any note."""
    segs = chains.segments(chain)
    final = chain.finished_at is not None
    what = "Storyboard" if chain.kind == "storyboard" else f"Extend of {chain.parent}"
    head = f"**Chain** `{chain.id}` · {what} · **{shown_state(chain)}**"
    if not final and chain.state == CANCELLED:
        head += " (cancelling)"
    lines = [head + f" · {progress(chain, segs)}"]
    for k, seg in enumerate(segs, 1):
        view = chains.studio.view(seg.id, ANYONE)  # a segment of a chain the caller may see
        status = view.progress.head if view is not None and seg.live else str(seg.state)
        prompt = md_short((seg.params or {}).get("prompt", ""), PROMPT_CHARS)  # as text
        lines.append(f"{k}. `{seg.id}` · {status} · {prompt}")
    if chain.result_path:
        how = "copied without re-encoding" if chain.remuxed else "re-encoded once"
        lines.append(f"**Video:** {chain.frames} frames ({how})")
    if chain.quote:
        q = chain.quote
        lines.append(
            f"**Quoted:** ${q.get('dollars', 0):.4f} for the chain ({q.get('gpu_s')} GPU s"
            f" on {q.get('gpu')}; {q.get('frames')} frames ≈ {q.get('seconds', 0):.1f} s)"
        )
    if chain.error:
        lines.append(f"**Note:** {md_text(chain.error)}")  # may quote a prompt
    video = chain.result_path
    if video and not Path(video).is_file():
        video = None
    rids = tuple(s.id for s in segs)
    return ChainView(chain.id, chain.state, "\n\n".join(lines), video, final, rids)
