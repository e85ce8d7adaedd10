"""History with chains: a chain's segments shown as ONE gallery item (no Gradio).

`fold(rows, chains, titles, results_dir)` gives app/studio/history.py's items for ledger rows
(newest first), where every row that is a chain's segment is replaced by one item for its chain,
at the place of its newest segment: the stitched video's first frame (or the placeholder of its
state), and a caption with the chain's state, segment count, frames, cost and prompts. The item's
id is the chain id (`ch-...`), which the History panel opens as the chain (`describe`).
An Extend's parent job stays an item of its own as well: it is a job in its own right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.endpoint.states import JobState
from app.studio import history as hist
from app.studio.chain_store import CHAIN_PREFIX, RUNNING, ChainRow
from app.studio.ledger import JobRow

_PLACEHOLDER_STATE = {RUNNING: JobState.IN_PROGRESS}  # a running chain looks like a live job


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
    rows: Sequence[JobRow], chains: Any, titles: Mapping[str, str], results: Path
) -> list[Any]:
    items: list[Any] = []
    seen: set[str] = set()
    for row in rows:
        cid = str((row.chain or {}).get("id") or "")
        chain = chains.store.get(cid) if cid and chains is not None else None
        if chain is None:
            items += hist.gallery_items([row], titles, results)
        elif cid not in seen:
            seen.add(cid)
            items.append(chain_item(chains, chain, titles, results))
    return items
