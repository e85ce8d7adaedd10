"""What a job leaves in ComfyUI, removed whatever the job's end (CLEANUP_JOB_FILES).

A job's footprint: the input files it uploaded, and for every prompt it queued (a cached re-run
queues a second one) the output files that prompt created and its history entry. A prompt's
files are the outputs its nodes reported (`executed` messages, and its history entry once it has
ended), less the nodes ComfyUI served from its cache: their files were written by an earlier
prompt. Only files inside COMFY_OUTPUT_DIR / COMFY_INPUT_DIR are ever deleted.

A prompt's history entry is written when the prompt really ends, which can be well after the job
stopped waiting for it: an interrupt lands only at the next node or step, and SaveVideo's encode
cannot be interrupted at all (it runs to the end and the prompt then reports success). So
`Footprint.remove` waits up to END_WAIT_S for each prompt's history entry; a prompt that still
runs then is handed to the worker's `Sweeper` (one per ComfyUI address in the process), which
every later job calls before it queues its own prompt and again when it ends, and which removes
the prompt's files and entry once it has ended. A prompt in neither /history nor /queue is gone
(ComfyUI restarted): forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .comfy import ComfyClient
from .errors import WorkerError
from .monitor import JobEnd
from .outputs import OutputFile, collect
from .settings import Settings

log = logging.getLogger("worker.cleanup")
END_WAIT_S = 2.0  # how long a job waits for its prompt to end before leaving it to the sweeper
POLL_S = 0.05


def created_files(outputs: dict, cached: list[str] | set[str]) -> list[OutputFile]:
    """The output files of nodes that ran in this prompt (not served from ComfyUI's cache)."""
    skip = {str(n) for n in cached}
    return [f for f in collect(outputs) if f.node_id not in skip and f.type == "output"]


def _cached_of(entry: dict) -> list[str]:
    for mtype, data in (entry.get("status") or {}).get("messages") or []:
        if mtype == "execution_cached" and isinstance(data, dict):
            return [str(n) for n in data.get("nodes") or []]
    return []


@dataclass
class _Prompt:
    prompt_id: str
    seen: JobEnd  # what the websocket reported so far (outputs, cached nodes)
    retire: asyncio.Task | None = None


@dataclass
class Sweeper:
    """Prompts of earlier jobs that had not ended when their job did (one per worker)."""

    pending: dict[str, _Prompt] = field(default_factory=dict)

    async def sweep(self, client: ComfyClient, settings: Settings) -> None:
        for pid, p in list(self.pending.items()):
            files = await _retire(client, p, wait_s=0.0)
            if files is None:
                continue  # still running: next time
            _delete_files(settings.comfy_output_dir, [_rel(f) for f in files])
            self.pending.pop(pid, None)
            log.info("swept prompt %s of an earlier job (%d files)", pid, len(files))


_SWEEPERS: dict[str, Sweeper] = {}


def sweeper_for(settings: Settings) -> Sweeper:
    """The worker process's sweeper for this ComfyUI (shared by every handler built for it)."""
    return _SWEEPERS.setdefault(settings.comfy_host, Sweeper())


class Footprint:
    """One job's uploads and prompts, for `remove` when the job ends."""

    def __init__(self, settings: Settings, client: ComfyClient) -> None:
        self.s = settings
        self.client = client
        self.uploaded: list[str] = []
        self.prompts: list[_Prompt] = []

    def track(self, prompt_id: str, seen: JobEnd) -> None:
        self.prompts.append(_Prompt(prompt_id, seen))

    def retire_soon(self, prompt_id: str) -> None:
        """The prompt has ended: start reading and deleting its history entry now (it runs while
        the outputs are delivered; the files are deleted after delivery)."""
        for p in self.prompts:
            if p.prompt_id == prompt_id and p.retire is None:
                p.retire = asyncio.create_task(_retire(self.client, p, END_WAIT_S))

    async def remove(self, sweeper: Sweeper) -> None:
        _delete_files(self.s.comfy_input_dir, self.uploaded)
        _remove_empty_parents(self.s.comfy_input_dir, self.uploaded)  # the job's upload folder
        for p in self.prompts:
            if p.retire is None:
                p.retire = asyncio.create_task(_retire(self.client, p, END_WAIT_S))
            files: list[OutputFile] | None = None
            with contextlib.suppress(Exception):
                # shielded: a second cancel of the job must not leave the entry half-removed
                files = await asyncio.wait_for(asyncio.shield(p.retire), END_WAIT_S + 5)
            seen = created_files(p.seen.outputs, p.seen.cached)
            _delete_files(self.s.comfy_output_dir, [_rel(f) for f in seen + (files or [])])
            if files is None:
                sweeper.pending[p.prompt_id] = p
                log.info(
                    "prompt %s has not ended yet (ComfyUI finishes the node it runs); its files "
                    "and history entry are removed when it has",
                    p.prompt_id,
                )
        await sweeper.sweep(self.client, self.s)


async def _retire(client: ComfyClient, p: _Prompt, wait_s: float) -> list[OutputFile] | None:
    """Once the prompt has ended: delete its history entry and return the files it created.
    None when it still runs after `wait_s`; [] when ComfyUI no longer knows it."""
    deadline = time.monotonic() + wait_s
    try:
        while True:
            entry = await client.history(p.prompt_id)
            if entry:
                break
            if p.prompt_id not in await client.queue_ids():
                # history is written before a prompt leaves the queue: look once more
                entry = await client.history(p.prompt_id)
                if not entry:
                    return []  # deleted while pending, or ComfyUI restarted
                break
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(POLL_S)
        await client.delete_history(p.prompt_id)
    except (aiohttp.ClientError, OSError, ValueError, RuntimeError, WorkerError):
        return None  # ComfyUI unreachable (or this job's session closed): the sweeper retries
    return created_files(entry.get("outputs") or {}, _cached_of(entry))


def _rel(f: OutputFile) -> str:
    return f"{f.subfolder}/{f.filename}" if f.subfolder else f.filename


def _delete_files(root: str, rel_paths: list[str]) -> None:
    if not root:
        return
    base = Path(root).resolve()
    for rel in dict.fromkeys(rel_paths):
        p = (base / rel).resolve()
        if base not in p.parents:
            continue
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not delete %s: %s", p, e.strerror)


def _remove_empty_parents(root: str, rel_paths: list[str]) -> None:
    """Remove the folders these files were in (the job's own upload folder) once empty."""
    if not root:
        return
    base = Path(root).resolve()
    for rel in rel_paths:
        p = (base / rel).resolve().parent
        while p != base and base in p.parents:
            try:
                p.rmdir()
            except OSError:
                break
            p = p.parent
