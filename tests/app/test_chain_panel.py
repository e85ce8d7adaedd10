"""A chain's panel and its History caption (app/studio/chain_history.py) from ledger rows as a
chain's segments leave them: each prompt shown as text, and the segments counted as they are."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from app.endpoint.states import JobState
from app.studio.chain_history import caption, describe
from app.studio.chains import Chains
from app.studio.ledger import Ledger

EVIL = '![x](http://127.0.0.1:9/probe.png) and <img src="http://127.0.0.1:9/html.png"> then'


@pytest.fixture
def chains(tmp_path) -> Chains:
    """The chain service over a ledger of its own (no endpoint: these chains are rows only)."""
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    return Chains(SimpleNamespace(ledger=ledger, view=lambda rid, caller: None))


def chain_of(chains: Chains, prompts: list[str], states: list[JobState], **end) -> str:
    """A storyboard of `prompts` whose first segments ended in `states`; `end`: its end
    (`ChainStore.finish`'s fields), none while it runs."""
    ledger = chains.studio.ledger
    cid = chains.store.create("storyboard", {"values": {}, "prompts": prompts}, None, None)
    for k, state in enumerate(states):
        rid = ledger.create(
            template="t2v_14b", mode="turbo", params={"prompt": prompts[k]}, workflow={},
            quote=None, gpu="H100 PRO", chain={"id": cid, "index": k, "parent": None},
        )  # fmt: skip
        ledger.update(rid, state=state)
    if end:
        chains.store.finish(cid, **end)
    return cid


def test_a_segments_prompt_is_shown_as_text_and_cut_at_a_word(chains):
    cid = chain_of(chains, [EVIL, "a heron"], [JobState.COMPLETED, JobState.IN_PROGRESS])
    line = describe(chains, chains.store.get(cid)).line
    first = next(x for x in line.split("\n\n") if x.startswith("1. "))
    text = first.split(" · ", 2)[2]
    # every markup character escaped: no image, link or tag a browser would act on
    assert re.findall(r"(?<!\\)[!\[\]()<>:]", text.replace("\\\\", "")) == [], text
    shown = text.replace("\\", "")  # as the page renders it
    assert shown.endswith("…") and len(shown) <= 60, shown
    assert EVIL.startswith(shown[:-1] + " "), shown  # whole words, then the mark of the cut
    assert "a heron" in line and "…" not in line.split("\n\n")[2]  # short: whole, no mark


def test_a_chain_counts_the_segments_done_of_those_planned(chains):
    """Cancelled while its third segment ran: two done of three, in its panel and its History
    caption (not the three sent); a running chain counts its live segment as not done."""
    done, live = JobState.COMPLETED, JobState.IN_PROGRESS
    prompts = ["a kite rises", "the kite loops", "the kite lands"]
    cid = chain_of(chains, prompts, [done, done, JobState.CANCELLED], state="CANCELLED", frames=33)
    chain = chains.store.get(cid)
    head = describe(chains, chain).line.split("\n\n")[0]
    assert head.endswith("**CANCELLED** · 2 of 3 segments done"), head
    said = caption(chain, chains.segments(chain), "Text to video")
    assert said.startswith("CANCELLED · chain, 2 of 3 segments done · Text to video · 33 frames")
    running = chains.store.get(chain_of(chains, prompts, [done, live]))
    assert describe(chains, running).line.split("\n\n")[0].endswith("1 of 3 segments done")
