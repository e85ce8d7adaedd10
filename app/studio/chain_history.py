"""History with chains: a chain's segments shown as ONE gallery item (no Gradio).

`fold(rows, chains, titles, results_dir)` gives app/studio/history.py's items for ledger rows
(newest first), where every row that is a chain's segment is replaced by one item for its chain,
at the place of its newest segment: the stitched video's first frame (or the placeholder of its
state), and a caption with the chain's state, segment count, frames, cost and prompts. The item's
id is the chain id (`ch-...`), which the History panel opens as the chain: `describe(chains,
chain)` is what a page shows for one (state, each segment, its video, quote, note).
An Extend's parent job stays an item of its own as well: it is a job in its own right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.endpoint.states import JobState
from app.studio import history as hist
from app.studio.chain_store import CANCELLED, CHAIN_PREFIX, RUNNING, ChainRow
from app.studio.ledger import JobRow
from app.studio.owners import ANYONE

_PLACEHOLDER_STATE = {RUNNING: JobState.IN_PROGRESS}  # a running chain looks like a live job


@dataclass(frozen=True)
class ChainView:
    cid: str
    state: str
    line: str  # markdown: the chain and each segment
    video: str | None
    final: bool
    segments: tuple[str, ...]


def is_chain(item_id: str | None) -> bool:
    return bool(item_id) and str(item_id).startswith(CHAIN_PREFIX)


def caption(chain: ChainRow, segs: Sequence[JobRow], title: str | None) -> str:
    spent = sum(s.cost.dollars for s in segs if s.cost is not None)
    state = chain.state if chain.finished_at is not None else RUNNING
    head = [state, f"chain of {len(segs)}/{chain.total} segments", title or "?"]
    if chain.frames:
        head.append(f"{chain.frames} frames")
    head.append(f"${spent:.4f}")
    prompts = " / ".join(str((s.params or {}).get("prompt", "")) for s in segs)
    if len(prompts) > 120:
        prompts = prompts[:119] + "…"
    return " · ".join(head) + (f" — {prompts}" if prompts else "")


def chain_item(chains: Any, chain: ChainRow, titles: Mapping[str, str], results: Path) -> Any:
    segs = chains.segments(chain)
    video = Path(chain.result_path) if chain.result_path else None
    thumb = hist.thumbnail(video) if video is not None and video.is_file() else None
    state = chain.state if chain.finished_at is not None else RUNNING
    image = thumb or hist.placeholder(results, _PLACEHOLDER_STATE.get(state, state))
    title = titles.get(segs[0].template) if segs else None
    return hist.HistoryItem(chain.id, str(image), caption(chain, segs, title), thumb is not None)


def fold(
    rows: Sequence[JobRow],
    chains: Any,
    titles: Mapping[str, str],
    results: Path,
    local: Any = None,
) -> list[Any]:
    items: list[Any] = []
    seen: set[str] = set()
    for row in rows:
        cid = str((row.chain or {}).get("id") or "")
        chain = chains.store.get(cid) if cid and chains is not None else None
        if chain is None:
            items += hist.gallery_items([row], titles, results, local)
        elif cid not in seen:
            seen.add(cid)
            items.append(chain_item(chains, chain, titles, results))
    return items


def describe(chains: Any, chain: ChainRow) -> ChainView:
    """The chain's panel: its state, each segment (a live one with its progress line), its
    video (how it was joined), the quote and any note."""
    segs = chains.segments(chain)
    final = chain.finished_at is not None
    what = "Storyboard" if chain.kind == "storyboard" else f"Extend of {chain.parent}"
    head = f"**Chain** `{chain.id}` · {what} · **{chain.state if final else RUNNING}**"
    if not final and chain.state == CANCELLED:
        head += " (cancelling)"
    lines = [head + f" · {len(segs)} of {chain.total} segments"]
    for k, seg in enumerate(segs, 1):
        view = chains.studio.view(seg.id, ANYONE)  # a segment of a chain the caller may see
        status = view.progress.head if view is not None and seg.live else str(seg.state)
        prompt = str((seg.params or {}).get("prompt", ""))[:60]
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
        lines.append(f"**Note:** {chain.error}")
    video = chain.result_path
    if video and not Path(video).is_file():
        video = None
    rids = tuple(s.id for s in segs)
    return ChainView(chain.id, chain.state, "\n\n".join(lines), video, final, rids)
