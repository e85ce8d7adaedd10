"""ComfyUI's PromptQueue: pending heap (lowest `number` first), the running item, history.

`put`/`get`/`task_done` each broadcast a `status` message with `queue_remaining` = pending +
running, as ComfyUI's `queue_updated` does. History keeps at most 10000 prompts and drops
`api_key_comfy_org`/`auth_token_comfy_org` from `extra_data`; `/queue` shows them unredacted.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
from dataclasses import dataclass, field
from typing import Any

from .hub import Hub

SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
MAXIMUM_HISTORY_SIZE = 10000


@dataclass(order=True)
class QueueItem:
    number: float
    prompt_id: str = field(compare=False)
    prompt: dict[str, Any] = field(compare=False)
    extra_data: dict[str, Any] = field(compare=False)
    outputs: list[str] = field(compare=False)

    def as_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pending: list[QueueItem] = []
        self.running: dict[int, QueueItem] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.task_counter = 0
        self._wake = asyncio.Event()

    def remaining(self) -> int:
        return len(self.pending) + len(self.running)

    def status(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.remaining()}}

    def queue_updated(self) -> None:
        self.hub.send("status", {"status": self.status()})

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self.pending, item)
        self.queue_updated()
        self._wake.set()

    async def get(self) -> tuple[QueueItem, int]:
        while not self.pending:
            self._wake.clear()
            await self._wake.wait()
        item = heapq.heappop(self.pending)
        i = self.task_counter
        self.running[i] = copy.deepcopy(item)
        self.task_counter += 1
        self.queue_updated()
        return item, i

    def task_done(self, i: int, result: dict[str, Any], status: dict[str, Any]) -> None:
        item = self.running.pop(i)
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        for k in SENSITIVE_EXTRA_DATA_KEYS:
            item.extra_data.pop(k, None)
        self.history[item.prompt_id] = {
            "prompt": item.as_list(),
            "outputs": {},
            "status": status,
            **result,
        }
        self.queue_updated()

    def queue_lists(self) -> tuple[list[Any], list[Any]]:
        return [x.as_list() for x in self.running.values()], [x.as_list() for x in self.pending]

    def delete_pending(self, prompt_id: str) -> bool:
        for x in self.pending:
            if x.prompt_id == prompt_id:
                self.pending.remove(x)
                heapq.heapify(self.pending)
                self.queue_updated()
                return True
        return False

    def wipe(self) -> None:
        self.pending = []
        self.queue_updated()

    def running_ids(self) -> list[str]:
        return [x.prompt_id for x in self.running.values()]
