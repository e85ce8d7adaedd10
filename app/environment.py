"""Reading the process environment's values: the one set of parsers every settings object uses.

Each parser takes the environment mapping and a variable name, returns the typed value (the default
when the variable is unset or blank) and refuses a bad one with a `ConfigError` that names the
variable, the value and what is allowed. `Secret` wraps a value that must never be shown (repr/str
masked). Only the entry points hand `os.environ` in (tests/app/test_settings_docs.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from app.errors import ConfigError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


class Secret:
    """A string that never shows itself in repr/str/f-strings. Use `.value` deliberately."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @property
    def value(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _raw(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return None if raw is None or raw.strip() == "" else raw.strip()


def env_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """An integer in lo..hi."""
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer; allowed: {lo}..{hi}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is out of range; allowed: {lo}..{hi}")
    return value


def env_float(
    env: Mapping[str, str], name: str, default: float, lo: float, hi: float, unit: str = ""
) -> float:
    """A finite number in lo..hi (`unit`, e.g. "seconds", is named in the refusal)."""
    raw = _raw(env, name)
    if raw is None:
        return default
    what = f"a number of {unit}" if unit else "a number"
    allowed = f"{lo:g}..{hi:g}" + (f" {unit}" if unit else "")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {what}; allowed: {allowed}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(f"{name}={value:g} is out of range; allowed: {allowed}")
    return value


def env_bool(env: Mapping[str, str], name: str) -> bool:
    """true/false (also 1/0, yes/no, on/off); unset is false."""
    raw = env.get(name)
    text = (raw or "").strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not true/false; allowed: true, false, 1, 0, yes, no")
