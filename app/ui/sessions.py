"""A browser session's copy of the page config, built when Gradio reads it, not all at once.

Gradio makes, for every new session (every page load or API client), a SessionState whose
`config_values` holds the config of EVERY component of the page (this page: ~110), computed on
the server's event loop while the session's first request waits: 10-30 ms of CPU per session,
one after another, and most of it never read (Gradio reads a component's entry when an event
updates it, and all of them only for a deep link). `lazy(blocks)` makes the sessions of `blocks`
compute each entry on first read instead; what Gradio reads is the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gradio.state_holder import SessionState, StateHolder


class LazyConfig(dict):
    """`{block id: config}` for the ids of the page, each computed when first read; iterated in
    the page's order, as Gradio's own dict is."""

    def __init__(self, blocks_config: Any, ids: list[int]) -> None:
        super().__init__()
        self._config = blocks_config
        self._ids = ids
        self._known = set(ids)

    def __missing__(self, key: int) -> dict:
        if key not in self._known:
            raise KeyError(key)
        value = self._config.config_for_block(key, [], self._config.blocks[key])
        self[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._known or dict.__contains__(self, key)

    def keys(self) -> list[int]:  # type: ignore[override]
        return self._ids + [k for k in dict.keys(self) if k not in self._known]

    def items(self) -> list[tuple[int, dict]]:  # type: ignore[override]
        return [(k, self[k]) for k in self.keys()]

    def values(self) -> list[dict]:  # type: ignore[override]
        return [self[k] for k in self.keys()]

    def __iter__(self) -> Iterator[int]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


class _NoComponents:
    """`blocks` as Gradio's SessionState.__init__ reads it, minus the components to copy."""

    def __init__(self, blocks: Any) -> None:
        self.default_config = blocks.default_config
        self.blocks: dict = {}


class LazySessionState(SessionState):
    def __init__(self, blocks: Any) -> None:
        super().__init__(_NoComponents(blocks))  # Gradio's own attributes, no config computed
        ids = [k for k in self.blocks_config.blocks if k in blocks.blocks]
        self.config_values = LazyConfig(self.blocks_config, ids)


class LazyStateHolder(StateHolder):
    def __getitem__(self, session_id: str) -> SessionState:
        if session_id not in self.session_data:
            self.session_data[session_id] = LazySessionState(self.blocks)
        return super().__getitem__(session_id)


def lazy(blocks: Any) -> None:
    """Make the sessions of launched `blocks` build their component configs lazily."""
    holder = blocks.state_holder
    if type(holder) is not StateHolder:
        raise RuntimeError("Gradio's StateHolder changed: see app/ui/sessions.py")
    holder.__class__ = LazyStateHolder
