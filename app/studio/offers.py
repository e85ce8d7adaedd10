"""What the endpoint offers beyond the catalog: the user's LoRAs, upscale models, smooth motion.

Read from the endpoint's inventory (app/studio/checks/preflight.py's `Inventory`, the cached answer
of the `{"inventory": true}` job). Pure:
- `offers(inventory)` -> `Offers`: the LoRA files paired by name (`workflows.loras.pair_loras`:
  pairs, singles, lone halves), the `upscale_models` files (the catalog's default first), and
  whether the smooth-motion node is there (`workflows.poststeps.unavailable`: what to install when
  it is not). Without an inventory (not fetched yet, pre-flight off) nothing is listed and
  `known` is False: the form says so, and the API still takes any file name (pre-flight or the
  worker judges it).
- The `loras` form field is fill's own `loras` parameter as JSON text (a list of `{"file"}` or
  `{"high", "low"}` objects with strengths): `parse_field(text)` reads it (InputError naming the
  field), `field_text(uses)` writes it. The page's picker rows map to it through `key_of` (one
  string per file set) and `Pick`; a name typed into a row is a single file (`files_of`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from app.errors import InputError
from workflows.loras import MAX_STACK, LoraOption, LoraUse, pair_loras
from workflows.poststeps import post_steps, unavailable

KINDS = {  # how the picker names an option's kind
    "pair": "pair, high + low noise",
    "single": "single file",
    "high": "high-noise expert only",
    "low": "low-noise expert only",
}
LORAS_FIELD = "loras"
FILE_KEYS = ("file", "high", "low")  # what an option's key holds


@dataclass(frozen=True)
class Offers:
    known: bool = False  # an inventory was had
    loras: tuple[LoraOption, ...] = ()
    upscale_models: tuple[str, ...] = ()
    interpolation: str = ""  # "" when the node is there (or unknown), else what to install
    fetched_at: float = 0.0  # when the inventory was had (epoch seconds)


def offers(inventory: Any | None) -> Offers:
    """What `inventory` (an Inventory, or None when none was had) lets the form offer."""
    if inventory is None:
        return Offers()
    default = post_steps().upscale.default_model
    ups = tuple(inventory.models.get("upscale_models", ()))
    ups = tuple(sorted(ups, key=lambda f: (f != default, f.casefold())))
    why = unavailable(inventory.nodes).get("interpolate", "")
    loras = pair_loras(inventory.models.get("loras", ()))
    return Offers(True, loras, ups, why, fetched_at=inventory.fetched_at)


def files_of(key: str | None) -> dict[str, str]:
    """The files a picker value names ({} for none): an option's key ({"file"} or {"high", "low"}
    or a half), else a name typed into the picker, a single file as the API's `{"file": name}`
    (a file on the volume the last inventory does not list: fill judges the name, pre-flight
    whether the endpoint has it; a typed name dropped here ran the job without it)."""
    text = (key or "").strip()
    if not text:
        return {}
    try:
        files = json.loads(text)
    except ValueError:
        files = None
    if _is_key(files):
        return dict(files)
    return {"file": text}


def _is_key(value: object) -> TypeGuard[dict[str, str]]:
    return (
        isinstance(value, dict)
        and bool(value)
        and set(value) <= set(FILE_KEYS)
        and all(isinstance(v, str) and v for v in value.values())
    )


def is_pair(key: str | None) -> bool:
    files = files_of(key)
    return bool(files.get("high") and files.get("low"))


def key_of(item: LoraOption | LoraUse | dict[str, Any]) -> str:
    """One string per set of files (the picker's value): the same for an option and a use of it."""
    get = item.get if isinstance(item, dict) else lambda k: getattr(item, k, None)
    return json.dumps({k: get(k) for k in FILE_KEYS if get(k)}, sort_keys=True)


def labels(options: Sequence[LoraOption]) -> list[str]:
    """The picker's words for each option: its name (with its folder) and kind, and its files
    where two options would read the same."""
    short = [f"{o.label} · {KINDS[o.kind]}" for o in options]
    out = []
    for o, text in zip(options, short, strict=True):
        if short.count(text) > 1:
            text += f" ({' + '.join(o.files)})"
        out.append(text)
    return out


@dataclass(frozen=True)
class Pick:
    """One picker row: the option's key or a typed file name ("" = none), its strength, and for
    a pair the low-noise expert's own strength (None: the same as `strength`)."""

    key: str = ""
    strength: float = 1.0
    strength_low: float | None = None

    def use(self) -> LoraUse | None:
        files = files_of(self.key)
        if not files:
            return None
        own_low = self.strength_low is not None and self.strength_low != self.strength
        if is_pair(self.key) and own_low:
            return LoraUse(**files, strength_high=self.strength, strength_low=self.strength_low)
        return LoraUse(**files, strength=self.strength)


def field_text(uses: Iterable[LoraUse]) -> str:
    """The `loras` field's text for a stack ("" for none)."""
    items = [u.to_json() for u in uses]
    return json.dumps(items) if items else ""


def picks_text(picks: Sequence[Pick]) -> str:
    """The `loras` field's text for the picker's rows (empty rows skipped)."""
    return field_text(u for u in (p.use() for p in picks) if u is not None)


def parse_field(text: str | None) -> list[dict[str, Any]]:
    """The `loras` field as fill's parameter: a JSON list (fill checks each item and says which
    one is wrong). An InputError names the field when the text is not such a list."""
    if text is None or not text.strip():
        return []
    allowed = (
        f'a JSON list of up to {MAX_STACK} LoRAs, each {{"file": name, "strength": s}} or '
        '{"high": name, "low": name, "strength": s} (strength_high / strength_low per expert)'
    )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"is not JSON ({e.msg} at column {e.colno}); allowed: {allowed}"
        raise InputError(LORAS_FIELD, msg) from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InputError(LORAS_FIELD, f"{text[:80]!r} is not allowed; allowed: {allowed}")
    return value


def _use_of(item: Mapping[str, Any]) -> LoraUse:
    """A `loras` item as a LoraUse for showing it (unknown keys dropped; fill judges values)."""
    return LoraUse(**{k: v for k, v in item.items() if k in LoraUse.__dataclass_fields__})


def picks_of(text: str | None, rows: int) -> list[Pick]:
    """The picker rows showing the `loras` field's stack (what Reuse puts back); a stack the
    field cannot hold as rows (bad JSON) shows as empty rows: the quote line says why."""
    try:
        items = parse_field(text)
    except InputError:
        items = []
    out = []
    for item in items[:rows]:
        use = _use_of(item)
        high = use.strength_high if use.strength_high is not None else use.strength
        low = use.strength_low
        try:
            out.append(Pick(key_of(use), float(high), None if low is None else float(low)))
        except (TypeError, ValueError):  # a strength that is not a number: fill says which
            out.append(Pick(key_of(use)))
    return out + [Pick()] * (rows - len(out))


def stack_words(items: Sequence[Any]) -> str:
    """A recipe's `loras` in words: "a.safetensors (0.8) + b.safetensors (0.6) · c (1)"."""
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        use = _use_of(item)
        experts = ("high", "low") if not use.file else ("model",)
        placed = [use.on(e) for e in experts]
        out.append(" + ".join(f"{name} ({strength:g})" for name, strength in filter(None, placed)))
    return " · ".join(out)


def adds_words(params: Mapping[str, Any], output: Any | None) -> str:
    """What a filled job adds to its pipeline, for the quote line: the LoRAs with their strengths,
    the post-steps, and the video they make ("" when none)."""
    parts = []
    if params.get("loras"):
        parts.append("LoRAs " + stack_words(params["loras"]))
    if params.get("upscale"):
        parts.append(f"upscale ×2 with {params.get('upscale_model')}")
    if params.get("interpolate"):
        parts.append(f"smooth motion ×2 ({params.get('interpolate_model')})")
    if parts and output is not None and (params.get("upscale") or params.get("interpolate")):
        video = f"{output.width}x{output.height}, {output.frames} frames at {output.fps:g} fps"
        parts.append("→ " + video)
    return " · ".join(parts)
