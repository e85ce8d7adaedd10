"""Spend guardrails and request limits: pure arithmetic, no I/O beyond reading the config once.

`Guardrails.from_env(env)` reads app/studio/checks/guardrails.yaml (or the file named by
WANPOD_GUARDRAILS) and lets single environment variables override single keys (see the YAML for the
names); a bad value is a ConfigError naming the variable or key, the value and what is allowed.

Before a job is sent:
- `spend(rows, since=..., user=...)` adds up the dollars of ledger rows created since a moment:
  a finished job counts its actual cost (`row.cost.dollars`, else its billed executionTime at
  the quoted price), a job still live counts its quote (reserved until it ends).
- `check(job, guardrails, spent_today, spent_by_user)` returns one `Refusal` per broken limit
  (size, frames, steps, one job's quote, its quoted seconds against the timeout ceiling, daily
  budget, per-user budget); each names the limit, the
  value and what is allowed. `enforce(...)` raises `GuardrailError` carrying them all.
- `execution_timeout_ms(quote_s, cold_start_s, guardrails)` is the `policy.executionTimeout` sent
  with the job: factor x (quoted execution + cold start), at least the floor, at most the ceiling,
  and always inside RunPod's 5 s .. 7 days. `policy(...)` wraps it as the /run policy object.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from app.endpoint import EXECUTION_TIMEOUT_ABOVE_MS, EXECUTION_TIMEOUT_MAX_MS
from app.endpoint.states import JobState
from app.errors import ConfigError, GuardrailError
from app.studio.ledger import JobRow

DEFAULTS_PATH = Path(__file__).with_name("guardrails.yaml")
RUNPOD_TIMEOUT_MIN_MS = EXECUTION_TIMEOUT_ABOVE_MS + 1  # the smallest RunPod accepts
RUNPOD_TIMEOUT_MAX_MS = EXECUTION_TIMEOUT_MAX_MS
_OFF = ("off", "none", "null", "unlimited")

# (yaml section, key, env var, type, lower bound, may be None)
_FIELDS: tuple[tuple[str, str, str, type, float, bool], ...] = (
    ("budget", "daily_usd", "WANPOD_BUDGET_DAILY_USD", float, 0.0, True),
    ("budget", "user_daily_usd", "WANPOD_BUDGET_USER_DAILY_USD", float, 0.0, True),
    ("budget", "job_usd", "WANPOD_MAX_JOB_USD", float, 0.0, True),
    ("limits", "max_width", "WANPOD_MAX_WIDTH", int, 16, True),
    ("limits", "max_height", "WANPOD_MAX_HEIGHT", int, 16, True),
    ("limits", "max_frames", "WANPOD_MAX_FRAMES", int, 1, True),
    ("limits", "max_steps", "WANPOD_MAX_STEPS", int, 1, True),
    ("timeout", "factor", "WANPOD_TIMEOUT_FACTOR", float, 1.0, False),
    ("timeout", "floor_s", "WANPOD_TIMEOUT_FLOOR_S", float, 5.0, False),
    ("timeout", "ceiling_s", "WANPOD_TIMEOUT_CEILING_S", float, 5.0, False),
)
ENV_VARS = ("WANPOD_GUARDRAILS", *(f[2] for f in _FIELDS))


@dataclass(frozen=True)
class Guardrails:
    """The limits in force. None = no limit."""

    daily_usd: float | None = 25.0
    user_daily_usd: float | None = 5.0
    job_usd: float | None = 2.0
    max_width: int | None = 1280
    max_height: int | None = 1280
    max_frames: int | None = 241
    max_steps: int | None = 60
    factor: float = 3.0
    floor_s: float = 300.0
    ceiling_s: float = 7200.0
    source: str = "defaults"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Guardrails:
        raw_path = (env.get("WANPOD_GUARDRAILS") or "").strip()
        path = Path(raw_path) if raw_path else DEFAULTS_PATH
        if not path.is_file():
            raise ConfigError(f"WANPOD_GUARDRAILS={raw_path!r} is not a file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected sections budget/limits/timeout")
        values: dict[str, Any] = {}
        for section, key, var, kind, lo, nullable in _FIELDS:
            part = data.get(section) or {}
            if not isinstance(part, Mapping):
                raise ConfigError(f"{path}: {section} must be a mapping of keys")
            if key in part:
                values[key] = _value(f"{path.name}: {section}.{key}", part[key], kind, lo, nullable)
            text = env.get(var)
            if text is not None and text.strip() != "":
                values[key] = _value(var, text.strip(), kind, lo, nullable)
        known = {(s, k) for s, k, *_ in _FIELDS}
        for section, part in data.items():
            keys = part if isinstance(part, Mapping) else {None: None}
            for key in keys:
                if (section, key) not in known:
                    allowed = ", ".join(f"{s}.{k}" for s, k in sorted(known))
                    raise ConfigError(f"{path}: unknown key {section}.{key}; allowed: {allowed}")
        out = cls(**values, source=str(path) if raw_path else "defaults")
        if out.ceiling_s < out.floor_s:
            raise ConfigError(
                f"timeout.ceiling_s={out.ceiling_s:g} is below timeout.floor_s={out.floor_s:g}"
            )
        return out


def _value(name: str, raw: object, kind: type, lo: float, nullable: bool) -> Any:
    if raw is None or raw is False or (isinstance(raw, str) and raw.lower() in _OFF):
        if nullable:
            return None
        raise ConfigError(f"{name} needs a value; allowed: a number >= {lo:g}")
    what = "a whole number" if kind is int else "a number"
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = kind(raw) if kind is float else int(str(raw))
    except (TypeError, ValueError):
        off = " or off" if nullable else ""
        raise ConfigError(f"{name}={raw!r} is not {what}; allowed: >= {lo:g}{off}") from None
    if not math.isfinite(value) or value < lo:
        raise ConfigError(f"{name}={raw!r} is out of range; allowed: {what} >= {lo:g}")
    return value


# -- spend ---------------------------------------------------------------------------------------
def day_start(now: float | None = None) -> float:
    """The epoch second of the start of the current UTC day."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def row_user(row: JobRow) -> str | None:
    """Who submitted a ledger row (the signed-in user), None when anonymous."""
    user = row.user if row.user is not None else (row.params or {}).get("user")
    return str(user) if user else None


def row_dollars(row: JobRow) -> float:
    """What one ledger row costs or may still cost: actual when final, the quote while live or
    LOST (the studio stopped while /run answered, or the endpoint forgot it: it may have run)."""
    if row.cost is not None:
        return row.cost.dollars
    if row.quote is None:
        return 0.0
    if row.live or (row.state is JobState.LOST and not row.execution_ms):
        return row.quote.dollars  # LOST: it may have run and may cost (no timing came back)
    if row.execution_ms:
        return math.ceil(row.execution_ms / 1000) * row.quote.per_s
    return 0.0


def spend(rows: Iterable[JobRow], *, since: float, user: str | None = None) -> float:
    """Dollars of the rows created at or after `since` (only `user`'s rows when given)."""
    total = 0.0
    for row in rows:
        if row.created_at < since:
            continue
        if user is not None and row_user(row) != user:
            continue
        total += row_dollars(row)
    return total


# -- checks --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobShape:
    """What the limits look at: the job's size, length, steps and quoted dollars."""

    width: int
    height: int
    frames: int
    steps: int
    dollars: float
    user: str | None = None
    seconds: float = 0.0  # quoted warm execution seconds


@dataclass(frozen=True)
class Refusal:
    limit: str  # "width" | "height" | "frames" | "steps" | "job cost" | "daily budget" | ...
    value: str
    allowed: str
    setting: str  # the env var that changes it

    def __str__(self) -> str:
        return f"{self.limit}: {self.value}; allowed: {self.allowed} (set by {self.setting})"


def usd(x: float) -> str:
    """Dollars as refusals and the spend line say them: cents from $1, else four decimals."""
    return f"${x:.2f}" if x >= 1 or x == 0 else f"${x:.4f}"


def check(
    job: JobShape,
    g: Guardrails,
    spent_today: float = 0.0,
    spent_by_user: float = 0.0,
    whose: str = "this job's",
) -> list[Refusal]:
    """Every limit `job` would break, given what was spent today (all users / this user).
    `whose` names what the budget lines add (e.g. "this batch's (3 jobs)")."""
    out: list[Refusal] = []
    for limit, value, cap, var in (
        ("width", job.width, g.max_width, "WANPOD_MAX_WIDTH"),
        ("height", job.height, g.max_height, "WANPOD_MAX_HEIGHT"),
        ("frames", job.frames, g.max_frames, "WANPOD_MAX_FRAMES"),
        ("steps", job.steps, g.max_steps, "WANPOD_MAX_STEPS"),
    ):
        if cap is not None and value > cap:
            unit = " px" if limit in ("width", "height") else ""
            out.append(Refusal(limit, f"{value}{unit}", f"at most {cap}{unit}", var))
    if g.job_usd is not None and job.dollars > g.job_usd:
        out.append(
            Refusal(
                "job cost",
                f"this job is quoted {usd(job.dollars)}",
                f"at most {usd(g.job_usd)} per job",
                "WANPOD_MAX_JOB_USD",
            )
        )
    if job.seconds > g.ceiling_s:
        out.append(
            Refusal(
                "execution time",
                f"this job is quoted {math.ceil(job.seconds)} s of GPU time",
                f"at most {g.ceiling_s:g} s (the execution timeout ceiling)",
                "WANPOD_TIMEOUT_CEILING_S",
            )
        )
    for limit, spent, cap, var, who in (
        ("daily budget", spent_today, g.daily_usd, "WANPOD_BUDGET_DAILY_USD", "all users"),
        (
            "your daily budget",
            spent_by_user,
            g.user_daily_usd if job.user else None,
            "WANPOD_BUDGET_USER_DAILY_USD",
            f"user {job.user}",
        ),
    ):
        if cap is not None and spent + job.dollars > cap + 1e-9:
            left = max(cap - spent, 0.0)
            out.append(
                Refusal(
                    limit,
                    f"{usd(spent)} spent today ({who}) + {whose} {usd(job.dollars)} = "
                    f"{usd(spent + job.dollars)}",
                    f"{usd(cap)} per UTC day ({usd(left)} left; resets at 00:00 UTC)",
                    var,
                )
            )
    return out


def enforce(
    job: JobShape, g: Guardrails, spent_today: float = 0.0, spent_by_user: float = 0.0
) -> None:
    refusals = check(job, g, spent_today, spent_by_user)
    if refusals:
        raise GuardrailError(refusals)


def check_rows(
    job: JobShape,
    g: Guardrails,
    rows: Iterable[JobRow],
    now: float | None = None,
    whose: str = "this job's",
) -> list[Refusal]:
    """`check` with today's spend computed from ledger rows (all users, and job.user's)."""
    rows = list(rows)
    since = day_start(now)
    today = spend(rows, since=since)
    mine = spend(rows, since=since, user=job.user) if job.user else 0.0
    return check(job, g, today, mine, whose)


# -- execution timeout ---------------------------------------------------------------------------
def execution_timeout_ms(quote_s: float, cold_start_s: float, g: Guardrails) -> int:
    """policy.executionTimeout for a job quoted `quote_s` warm seconds (+ a possible cold start)."""
    seconds = g.factor * (max(quote_s, 0.0) + max(cold_start_s, 0.0))
    seconds = min(max(seconds, g.floor_s), g.ceiling_s)
    return int(min(max(round(seconds * 1000), RUNPOD_TIMEOUT_MIN_MS), RUNPOD_TIMEOUT_MAX_MS))


def policy(quote_s: float, cold_start_s: float, g: Guardrails) -> dict[str, int]:
    """The /run `policy` object carrying the execution timeout."""
    return {"executionTimeout": execution_timeout_ms(quote_s, cold_start_s, g)}
