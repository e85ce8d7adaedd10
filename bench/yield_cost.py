"""What one progress yield of a streamed job costs the studio's process, by how it is written.

    .venvs/app/bin/python bench/yield_cost.py [--yields 300]

A job's page follows /generate, a generator with six outputs (status HTML, video, details
Markdown, job id Textbox, job id BrowserState, result JSON: app/ui/page.py's `watch_out`). A
progress yield changes the status only. This drives Gradio's own `Blocks.process_api` the way
its queue does (one call per yield, the same session and event id, so later yields are sent as
diffs) and prints the CPU per yield for:
- `skip`: gr.skip() for the five unchanged outputs (each builds a new component server-side);
- `values`: the unchanged values again (the diff to the client is empty), as
  app/ui/callbacks.py's `watch` yields;
- `status only`: an event with the one output (the floor for a streamed status).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr
from gradio.state_holder import SessionState

RESULT = {"job_id": "wp-0123456789ab", "state": "IN_PROGRESS", "final": False, "seed": 42}


def status(i: int, n: int) -> str:
    f = i / n
    return (
        f'<div id="wp-status" data-state="IN_PROGRESS" data-fraction="{f:.4f}">'
        f'<progress value="{f:.4f}" max="1"></progress><div class="wp-line">step {i}</div></div>'
    )


def measure(mode: str, yields: int) -> float:
    """CPU seconds per yield of `mode`'s generator through Blocks.process_api."""

    def stream() -> Iterator[Any]:
        for i in range(yields):
            if mode == "skip":
                yield status(i, yields), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            elif mode == "values":
                rid = RESULT["job_id"]
                yield status(i, yields), None, "**Job** wp-0123456789ab", rid, rid, RESULT
            else:
                yield status(i, yields)

    with gr.Blocks() as blocks:
        outputs: list[Any] = [gr.HTML()]
        if mode != "status only":
            outputs += [gr.Video(), gr.Markdown(), gr.Textbox(), gr.BrowserState(), gr.JSON()]
        gr.Button().click(stream, None, outputs)
    blocks.queue()

    async def run() -> float:
        fn, state = blocks.fns[0], SessionState(blocks)
        call = {"session_hash": "bench", "event_id": "e1"}
        out = await blocks.process_api(fn, [], state, **call)
        start = time.process_time()
        while out["is_generating"]:
            out = await blocks.process_api(fn, [], state, iterator=out["iterator"], **call)
        return (time.process_time() - start) / yields

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--yields", type=int, default=300)
    args = ap.parse_args()
    print(f"gradio {gr.__version__}, {args.yields} yields each, CPU per progress yield:")
    for mode in ("skip", "values", "status only"):
        print(f"  {mode:12s} {measure(mode, args.yields) * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
