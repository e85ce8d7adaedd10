"""A browser session's copy of the page config, built when Gradio reads it, not at every event.

Gradio keeps, for every session (every page load or API client), a SessionState whose
`config_values` holds the config of EVERY component of the page (this page: ~110): all computed
when the session starts (10-30 ms of CPU on the server's event loop), and one recomputed at
every event for each input (its value noted) and each output, twice for an output answered with
`gr.skip()` (a new component is built and its config computed: ~1-2 ms per skipped output per
yield; /generate yields five of them at every progress step). Gradio reads those configs only
to rebuild a whole page for a deep link (`SessionState.components`).

`lazy(blocks)` makes the sessions of `blocks` note what changed instead (which block, which
value) and compute a component's config when it is read: what Gradio reads is the same (the
block the eager code would have used, then the last value noted), tested side by side in
tests/app/test_sessions.py.

This reaches into Gradio's internals (`gradio.state_holder`: SessionState.__init__/__setitem__/
_update_config/_update_value_in_config, StateHolder.__getitem__, BlocksConfig.config_for_block),
checked against the Gradio named in app/ui/gradio_internals.py (a test fails on any other).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from gradio.state_holder import SessionState, StateHolder

_NOTHING = object()  # no value noted since the config was last computed


class LazyConfig(dict):
    """`{block id: config}` for a session, each entry computed when first read: from the block
    it is due for (`redo`) with the last value noted for it (`note_value`); iterated in the
    page's order, as Gradio's own dict is."""

    def __init__(self, blocks_config: Any, ids: list[int]) -> None:
        super().__init__()
        self._config = blocks_config
        self._order = list(ids)
        blocks = blocks_config.blocks
        self._due: dict[int, tuple[Any, Any]] = {k: (blocks[k], _NOTHING) for k in ids}

    def redo(self, key: int, block: Any) -> None:
        """The entry of `key` is now `block`'s config (computed when read)."""
        if key not in self._due and not dict.__contains__(self, key):
            self._order.append(key)
        dict.pop(self, key, None)
        self._due[key] = (block, _NOTHING)

    def note_value(self, key: int, value: Any) -> None:
        """`key`'s config now shows `value` (Gradio's `_update_value_in_config`)."""
        if dict.__contains__(self, key):
            config = dict.__getitem__(self, key)
            if "props" in config:
                config["props"]["value"] = value
            return
        if key not in self._due:
            self.redo(key, self._config.blocks[key])
        self._due[key] = (self._due[key][0], value)

    def __missing__(self, key: int) -> dict:
        if key not in self._due:
            raise KeyError(key)
        block, value = self._due.pop(key)
        config = self._config.config_for_block(key, [], block)
        if value is not _NOTHING and "props" in config:
            config["props"]["value"] = value
        dict.__setitem__(self, key, config)
        return config

    def __setitem__(self, key: int, value: dict) -> None:
        if key not in self._due and not dict.__contains__(self, key):
            self._order.append(key)
        self._due.pop(key, None)
        dict.__setitem__(self, key, value)

    def __contains__(self, key: object) -> bool:
        return key in self._due or dict.__contains__(self, key)

    def keys(self) -> list[int]:  # type: ignore[override]
        return list(self._order)

    def items(self) -> list[tuple[int, dict]]:  # type: ignore[override]
        return [(k, self[k]) for k in self.keys()]

    def values(self) -> list[dict]:  # type: ignore[override]
        return [self[k] for k in self.keys()]

    def __iter__(self) -> Iterator[int]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._order)


class _NoComponents:
    """`blocks` as Gradio's SessionState.__init__ reads it, minus the components to copy."""

    def __init__(self, blocks: Any) -> None:
        self.default_config = blocks.default_config
        self.blocks: dict = {}


class LazySessionState(SessionState):
    """Gradio's SessionState, its `config_values` a LazyConfig (same reads, computed late)."""

    def __init__(self, blocks: Any) -> None:
        super().__init__(_NoComponents(blocks))  # Gradio's own attributes, no config computed
        ids = [k for k in self.blocks_config.blocks if k in blocks.blocks]
        self.config_values = LazyConfig(self.blocks_config, ids)

    def __setitem__(self, key: int, value: Any) -> None:
        # Gradio's SessionState.__setitem__, the config entry marked instead of computed
        from gradio.components import State

        block = self.blocks_config.blocks.get(key)
        if isinstance(block, State):
            self._state_ttl[key] = (block.time_to_live, datetime.datetime.now())
            self.state_data[key] = value
        else:
            self.blocks_config.blocks[key] = value
        if block:
            self.config_values.redo(key, block)  # Gradio's: the block found before the update

    def _update_config(self, key: int) -> None:
        if self[key] is not None:
            self.config_values.redo(key, self[key])

    def _update_value_in_config(self, key: int, value: Any) -> None:
        self.config_values.note_value(key, value)


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
