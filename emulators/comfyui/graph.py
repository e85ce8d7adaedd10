"""Which node runs next: ComfyUI's execution order, reimplemented.

ComfyUI (comfy_execution/graph.py) adds each output node and, depth first with a stack, every
uncached node it links to; `pending` keeps insertion order. Of the nodes whose inputs are all done
it runs, in this priority: an output node; a node that directly blocks an output node; one that
blocks a node that blocks an output node; else the first in `pending` order. That is why
`video_success` runs its three EmptyImage nodes as 3, 2, 1. Cached nodes are not added (except
the requested outputs themselves, which are then reported from the cache).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def is_link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)


class ExecutionList:
    def __init__(
        self,
        prompt: dict[str, Any],
        is_output: Callable[[str], bool],
        is_cached: Callable[[str], bool],
    ) -> None:
        self.prompt = prompt
        self._is_output_class = is_output
        self.is_cached = is_cached
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, dict[int, bool]]] = {}

    def is_output(self, node_id: str) -> bool:
        return self._is_output_class(self.prompt[node_id]["class_type"])

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, int, str]] = []
        while stack:
            uid = stack.pop()
            if uid in self.pending:
                continue
            self.pending[uid] = True
            self.block_count[uid] = 0
            self.blocking[uid] = {}
            for value in self.prompt[uid].get("inputs", {}).values():
                if is_link(value) and not self.is_cached(value[0]):
                    stack.append(value[0])
                    links.append((value[0], value[1], uid))
        for from_id, socket, to_id in links:
            self._add_strong_link(from_id, socket, to_id)

    def _add_strong_link(self, from_id: str, socket: int, to_id: str) -> None:
        if self.is_cached(from_id):
            return
        self.add_node(from_id)
        if to_id not in self.blocking[from_id]:
            self.blocking[from_id][to_id] = {}
            self.block_count[to_id] += 1
        self.blocking[from_id][to_id][socket] = True

    def add_outputs(self, outputs: Iterable[str]) -> None:
        for o in outputs:
            self.add_node(o)

    def is_empty(self) -> bool:
        return not self.pending

    def next_node(self) -> str | None:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            return None  # a cycle: ComfyUI reports a DependencyCycleError
        for n in ready:
            if self.is_output(n):
                return n
        for n in ready:
            if any(self.is_output(b) for b in self.blocking[n]):
                return n
        for n in ready:
            for b in self.blocking[n]:
                if any(self.is_output(b1) for b1 in self.blocking[b]):
                    return n
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for blocked in self.blocking[node_id]:
            self.block_count[blocked] -= 1
        del self.blocking[node_id]

    def cycle_nodes(self) -> list[str]:
        return list(self.pending)
