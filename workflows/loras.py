"""Users' own LoRAs: pair the endpoint's files by name, and check a stack of them for a template.

Wan 2.2 14B LoRAs come as pairs, one file for each expert (high-noise, low-noise); some are single
files meant for both; the 5B has one model, so it takes single files only. Pure functions:

- `pair_loras(files) -> tuple[LoraOption, ...]`: the endpoint's `loras` files (the inventory's
  list, nested ones as `sub/file`) grouped by name. A file is one half of a pair when its name
  carries a high/low marker (`high_noise`, `HighNoise`, `HIGH`, `HN`, `_H`, `hi`, `high`, ...; or a
  parent folder named so) and the other half has the same name without its marker; when nothing
  matches exactly, halves in one folder whose names differ only in digits and punctuation (epoch,
  rank, version) pair too, with a note. A half without a partner is offered for its expert alone
  when its marker is unambiguous (it says "noise", is upper case, or is HN/LN); a weak marker
  (`_H`, `lo`, `High`) alone is no evidence, so that file is a single.
- `parse_loras(value, experts, reserved) -> tuple[LoraUse, ...]`: a fill parameter (a list of
  `{"file"|"high"|"low", "strength"|"strength_high"|"strength_low"}` objects or LoraUse values)
  checked: at most MAX_STACK, strengths within range and step, safe relative file names, no file
  twice on one expert, no pair or one-expert half on a one-model template, no re-use of the
  template's own turbo LoRA. Every refusal is a ParamError naming `loras[i].field`.
- `LoraUse.on(expert)`: the (file, strength) that goes on an expert's model path, if any.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from workflows.errors import ParamError

MAX_STACK = 4  # up to 4 LoRAs (a pair counts once): the limit; more rarely helps
# Strength: ComfyUI allows -100..100; beyond +-2 LoRAs burn the picture, so a bigger value is far
# more likely a typo than a wish. Negative values are real use (slider LoRAs). Step: ComfyUI's.
STRENGTH_MIN, STRENGTH_MAX, STRENGTH_STEP = -2.0, 2.0, 0.01
EXPERTS_14B = ("high", "low")  # the 14B's two experts, in sampling order
ONE_MODEL = ("model",)  # the 5B's single model
LORA_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pt2", ".bin", ".pth", ".pkl", ".sft")
FIELDS = ("file", "high", "low", "strength", "strength_high", "strength_low")

_SEP = r"[\s_.\-()\[\]]"
# (pattern, strong) per level, strongest level first; the marker's side is group 1.
_MARKERS: tuple[tuple[re.Pattern[str], bool], ...] = (
    (re.compile(r"(?i)(high|low)[\s_.\-]*noise"), True),  # high_noise, HighNoise, HIGH Noise
    (re.compile(r"(?<![A-Za-z])(HIGH|LOW)(?![A-Za-z])"), True),  # lora_HIGH_fp16, -LOW 14B
    (re.compile(r"(?<![A-Za-z0-9])(HN|LN|hn|ln)(?![A-Za-z0-9])"), True),  # _HN, W22_LN_i2v
    (re.compile(r"(?<![A-Za-z])(high|low|High|Low)(?![a-z])"), False),  # wan_high_e10, -low-
    (re.compile(r"(?<=[a-z0-9])(High|Low)(?=[A-Z0-9]|$)"), False),  # BounceHighWan2_2
    (re.compile(r"(?<![A-Za-z0-9])(H|L|h|l|hi|lo|Hi|Lo|HI|LO)(?![A-Za-z0-9])"), False),  # _H, -lo
)


@dataclass(frozen=True)
class LoraOption:
    """One entry of the endpoint's LoRA list, as the studio offers it."""

    label: str  # the name without folder extension and high/low marker
    kind: str  # "pair" | "single" | "high" | "low" (a half offered for its expert alone)
    high: str | None = None  # file for the high-noise expert (pair, high)
    low: str | None = None  # file for the low-noise expert (pair, low)
    file: str | None = None  # single: the same file on every expert
    note: str = ""  # how it was paired, or why a half stands alone

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f for f in (self.file, self.high, self.low) if f)

    def use(
        self,
        strength: float = 1.0,
        strength_high: float | None = None,
        strength_low: float | None = None,
    ) -> LoraUse:
        return LoraUse(self.file, self.high, self.low, strength, strength_high, strength_low)


@dataclass(frozen=True)
class LoraUse:
    """One LoRA of a job's stack: a single `file` (every expert) or a `high`/`low` pair (or half),
    with a strength (per expert for a pair when strength_high/strength_low are given)."""

    file: str | None = None
    high: str | None = None
    low: str | None = None
    strength: float = 1.0
    strength_high: float | None = None
    strength_low: float | None = None

    @property
    def kind(self) -> str:
        if self.file:
            return "single"
        return "pair" if self.high and self.low else ("high" if self.high else "low")

    def on(self, expert: str) -> tuple[str, float] | None:
        """(file, strength) on `expert` ("high", "low" or "model" for the 5B), or None."""
        own = {"high": self.strength_high, "low": self.strength_low}.get(expert)
        strength = self.strength if own is None else own
        if self.file:
            return self.file, strength
        name = {"high": self.high, "low": self.low}.get(expert)
        return (name, strength) if name else None

    def to_json(self) -> dict[str, Any]:
        """The recipe form: only the fields that are set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


# -- pairing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Named:
    path: str
    folder: str  # the folder pairs must share ("" at the top)
    side: str | None  # "high" | "low" | None
    strong: bool
    key: str  # the name without marker, folded: what both halves of a pair share
    label: str


def _stem(name: str) -> str:
    lower = name.lower()
    for ext in LORA_EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def _marker(text: str) -> tuple[str, bool, int, int] | None:
    """(side, strong, start, end) of the strongest, then last, high/low marker in `text`."""
    best: tuple[tuple[int, int, int], tuple[str, bool, int, int]] | None = None
    for level, (pattern, strong) in enumerate(_MARKERS):
        for m in pattern.finditer(text):
            side = "high" if m.group(1).lower().startswith("h") else "low"
            rank = (int(strong), -level, m.start())
            if best is None or rank > best[0]:
                best = (rank, (side, strong, m.start(), m.end()))
    return best[1] if best else None


def _without(text: str, start: int, end: int) -> str:
    """`text` with [start:end) removed and the separators around the gap tidied."""
    out = text[:start] + "\x00" + text[end:]
    out = re.sub(rf"{_SEP}*\x00{_SEP}*", lambda m: _join(m.group(0)), out)
    out = re.sub(r"\(\s*\)|\[\s*\]", "", out)  # "Model (HIGH Noise)" -> "Model"
    return out.strip(" _.-")


def _join(gap: str) -> str:
    left, _, right = gap.partition("\x00")
    seps = [c for c in left + right if c not in "()[]"]
    return (seps[0] if seps else "") + "".join(c for c in left + right if c in "()[]")


def _fold(text: str) -> str:
    return re.sub(rf"{_SEP}+", " ", text).strip().casefold()


def _named(path: str) -> _Named:
    folder, _, base = path.rpartition("/")
    stem = _stem(base)
    found = _marker(stem)
    if found is not None:
        side, strong, start, end = found
        rest = _without(stem, start, end)
        label = f"{folder}/{rest}" if folder else rest
        return _Named(path, folder, side, strong, _fold(rest), label or path)
    parent, _, leaf = folder.rpartition("/")
    found = _marker(leaf) if leaf else None
    if found is not None and found[2] == 0 and found[3] == len(leaf):  # folder "high_noise/"
        side, strong = found[0], found[1]
        label = f"{parent}/{stem}" if parent else stem
        return _Named(path, parent, side, strong, _fold(stem), label)
    label = f"{folder}/{stem}" if folder else stem
    return _Named(path, folder, None, False, _fold(stem), label)


def pair_loras(files: Iterable[str]) -> tuple[LoraOption, ...]:
    """The endpoint's LoRA files as pairs, singles and lone halves, sorted by label."""
    named = [_named(str(f)) for f in dict.fromkeys(files)]
    halves = [n for n in named if n.side]
    out = [LoraOption(n.label, "single", file=n.path) for n in named if not n.side]
    paired: set[str] = set()

    def pair_by(key_of, note_of) -> None:
        groups: dict[tuple[str, str], dict[str, list[_Named]]] = {}
        for n in halves:
            if n.path not in paired:
                sides = groups.setdefault((n.folder, key_of(n)), {"high": [], "low": []})
                sides[str(n.side)].append(n)
        for sides in groups.values():
            if len(sides["high"]) == 1 and len(sides["low"]) == 1:
                hi, lo = sides["high"][0], sides["low"][0]
                out.append(LoraOption(hi.label, "pair", hi.path, lo.path, note=note_of(hi, lo)))
                paired.update((hi.path, lo.path))

    pair_by(lambda n: n.key, lambda hi, lo: "")
    pair_by(
        lambda n: re.sub(r"[^a-z]", "", n.key),
        lambda hi, lo: f"paired by name apart from digits and punctuation: {hi.path} + {lo.path}",
    )
    for n in halves:
        if n.path in paired:
            continue
        other = "low" if n.side == "high" else "high"
        if n.strong:
            note = f"no {other}-noise file matches: offered for the {n.side}-noise expert only"
            kw = {str(n.side): n.path}
            out.append(LoraOption(n.label, str(n.side), note=note, **kw))
        else:
            out.append(LoraOption(_stem(n.path), "single", file=n.path))
    return tuple(sorted(out, key=lambda o: (o.label.casefold(), o.kind, o.files)))


# -- a job's stack --------------------------------------------------------------------------------


def parse_loras(
    value: object, experts: Sequence[str], reserved: Mapping[str, str] | None = None
) -> tuple[LoraUse, ...]:
    """Check the `loras` fill parameter for a template with `experts` (EXPERTS_14B or ONE_MODEL).

    `reserved` maps files the template already applies (turbo's 4-step LoRA) to the parameter
    that sets their strength. Raises ParamError naming `loras` or `loras[i].field`."""
    if (
        isinstance(value, LoraUse | Mapping)
        or not isinstance(value, Sequence)
        or isinstance(value, str | bytes)
    ):
        raise ParamError(
            "loras", value, f"a list of up to {MAX_STACK} LoRAs, each {{file}} or {{high, low}}"
        )
    if len(value) > MAX_STACK:
        raise ParamError(
            "loras",
            f"{len(value)} LoRAs",
            f"at most {MAX_STACK} stacked (a high/low pair counts once)",
        )
    uses = tuple(_use(f"loras[{i}]", item, experts) for i, item in enumerate(value))
    own = dict(reserved or {})
    seen: dict[tuple[str, str], str] = {}
    for i, use in enumerate(uses):
        for expert in experts:
            placed = use.on(expert)
            if placed is None:
                continue
            name = placed[0]
            if name in own:
                raise ParamError(
                    f"loras[{i}]",
                    name,
                    f"another LoRA: this file is the template's own 4-step LoRA in this mode "
                    f"(set its strength with {own[name]})",
                )
            if (expert, name) in seen:
                raise ParamError(
                    f"loras[{i}]", name, f"each file once per expert (already {seen[expert, name]})"
                )
            seen[expert, name] = f"loras[{i}]"
    return uses


def _use(where: str, item: object, experts: Sequence[str]) -> LoraUse:
    if isinstance(item, LoraUse):
        item = item.to_json()
    if not isinstance(item, Mapping):
        raise ParamError(where, item, '{"file": name} or {"high": name, "low": name}')
    unknown = [k for k in item if k not in FIELDS]
    if unknown:
        raise ParamError(f"{where}.{unknown[0]}", item[unknown[0]], "fields " + ", ".join(FIELDS))
    given = {k: v for k, v in item.items() if v is not None}
    if "file" in given and ("high" in given or "low" in given):
        raise ParamError(where, dict(item), "either file (a single) or high/low (a pair), not both")
    if not {"file", "high", "low"} & set(given):
        raise ParamError(where, dict(item), '{"file": name} or {"high": name, "low": name}')
    one_model = len(experts) == 1
    if one_model and ("high" in given or "low" in given):
        raise ParamError(
            where,
            dict(item),
            "a single LoRA file: this template's model is the Wan 2.2 5B, one model, so a "
            "high/low pair (made for the 14B's two experts) has nowhere to go",
        )
    for name in ("strength_high", "strength_low"):
        if one_model and name in given:
            raise ParamError(f"{where}.{name}", given[name], "strength (the 5B has one model)")
    files = {k: _file(f"{where}.{k}", given[k]) for k in ("file", "high", "low") if k in given}
    strengths = {
        k: _strength(f"{where}.{k}", given[k])
        for k in ("strength", "strength_high", "strength_low")
        if k in given
    }
    return LoraUse(**files, **strengths)


def _file(where: str, value: object) -> str:
    ok = (
        isinstance(value, str)
        and 0 < len(value) <= 255
        and value.lower().endswith(LORA_EXTENSIONS)
        and not value.startswith("/")
        and "\\" not in value
        and not any(ord(c) < 32 for c in value)
        and ".." not in value.split("/")
        and "" not in value.split("/")
    )
    if not ok:
        raise ParamError(
            where,
            value,
            "a file of the endpoint's loras folder, nested ones as sub/file ("
            + " ".join(LORA_EXTENSIONS)
            + ")",
        )
    return str(value)


def _strength(where: str, value: object) -> float:
    allowed = f"{STRENGTH_MIN:g} to {STRENGTH_MAX:g} in steps of {STRENGTH_STEP:g}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ParamError(where, value, "a number, " + allowed)
    k = (value - STRENGTH_MIN) / STRENGTH_STEP
    if not STRENGTH_MIN <= value <= STRENGTH_MAX or abs(k - round(k)) > 1e-6:
        raise ParamError(where, value, allowed)
    return float(value)
