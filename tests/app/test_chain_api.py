"""Chains through the studio's API, and a studio process killed in the middle of a chain: the
control plane (the session's local stack) outlives it, and the next studio finishes the chain."""

from __future__ import annotations

from pathlib import Path

from gradio_client import Client, handle_file

from app.studio import stitch
from app.studio.chain_store import ChainStore
from app.studio.ledger import Ledger
from tests.app.conftest import start_studio
from tests.app.test_api import args
from tests.app.test_browser import slow_stack  # noqa: F401  (a fixture: slower sampler steps)
from tests.helpers import free_port, wait_for

PROMPTS = "a kite rises\nthe kite loops\nthe kite lands"


def test_storyboard_and_its_quote_through_the_api(client):
    a = args(prompt="api kite", seconds=1.0, seed=11)
    quote = client.predict(*a, PROMPTS, False, api_name="/storyboard_quote")
    assert "3 new segments → one video of 49 frames" in quote, quote
    status, video, cid = client.predict(*a, PROMPTS, False, api_name="/storyboard")
    assert cid.startswith("ch-") and "COMPLETED" in status and "3 of 3 segments done" in status
    assert stitch.frame_count(Path(video)) == 3 * 17 - 2
    values = client.predict(cid, api_name="/reuse_chain")
    assert values[2] == "a kite rises" and values[-1] == PROMPTS  # the first segment's prompt


def test_a_storyboard_without_its_image_is_priced_and_refused(client, png_file):
    # its first segment sends the form's start image: a missing one is said under the price
    form = args("i2v_14b", resolution="480p landscape", seconds=1.0)
    missing = client.predict(*form, PROMPTS, False, api_name="/storyboard_quote")
    price, refusal = missing.split("\n\n")
    assert "3 new segments" in price and "GPU s" in price, missing
    assert refusal.startswith("⚠️ start image\\: Image to video"), missing
    given = args("i2v_14b", resolution="480p landscape", seconds=1.0,
                 start=handle_file(str(png_file)))  # fmt: skip
    assert client.predict(*given, PROMPTS, False, api_name="/storyboard_quote") == price


def test_a_killed_studio_leaves_the_chain_to_the_next_one(stack, slow_stack, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    port = free_port()
    app = start_studio(stack, data, port)
    try:
        Client(app.base_url + "/", verbose=False).submit(
            *args(prompt="restart kite", seconds=1.0, seed=12), PROMPTS, False,
            api_name="/storyboard",
        )  # fmt: skip
        store = ChainStore(Ledger(data / "ledger.sqlite3"))
        wait_for(lambda: store.recent(), 60, "the chain written")
        cid = store.recent()[0].id
        ledger = Ledger(data / "ledger.sqlite3")

        def second_sent() -> bool:  # taken by the endpoint (a row killed before /run answered
            ids = store.segment_ids(cid)  # is LOST: no studio can follow that job)
            return len(ids) == 2 and ledger.get(ids[1]).job_id is not None

        wait_for(second_sent, 120, "segment 2 taken by the endpoint")
        app.proc.kill()  # no clean shutdown: the ledger alone must carry the chain
        app.proc.wait(10)
        assert store.get(cid).finished_at is None
        app = start_studio(stack, data, port)
        wait_for(lambda: store.get(cid).finished_at is not None, 120, "the chain finished")
        chain = store.get(cid)
        assert chain.state == "COMPLETED", chain
        assert len(store.segment_ids(cid)) == 3
        assert stitch.frame_count(Path(chain.result_path)) == 3 * 17 - 2
    finally:
        app.stop()
