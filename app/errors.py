"""The studio's ONE exception tree, and the one place that turns an exception into user words.

StudioError                  str() is a sentence a user can act on, never a secret
├── ConfigError              a setting is wrong (names the variable, the value, what is allowed)
│   └── AccessError          the launch would expose the studio without a login
├── InputError               a form value is refused (names the field, the value, what is allowed)
│   └── ImageError           an uploaded image cannot be used
├── SubmitError              the endpoint refused or could not take the job
├── SegmentSent              a chain's segment was sent already (by another replica)
├── GuardrailError           the job breaks the operator's limits (one line per limit)
├── PreflightError           the endpoint lacks a model file or node the workflow needs
├── InventoryUnavailable     the endpoint's model inventory could not be had
│   └── InventoryPending     ... it is still being fetched
└── EndpointError            RunPod's HTTP API failed (`status`: the HTTP status, if any)
    ├── AuthError, UnknownEndpoint, JobNotFound, PayloadTooLarge, RateLimited, BadRequest,
    ├── ServerError          ... JobMayExist: /run reached RunPod, its answer was lost
    └── EndpointUnreachable

`ALL_ERRORS` lists every class (a test walks it); the endpoint's messages are built here by the
small constructors below (`auth_error(status)`, ...). `user_message(exc, secrets)` is the line a
page, the API or a log shows for ANY exception: a StudioError or the workflows' ParamError as
itself, anything else as "internal error (TypeName)"; every secret value is replaced by ***.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Protocol

from workflows.errors import ParamError


class StudioError(Exception):
    """Base of every studio error; str() is a readable, secret-free message."""


class ConfigError(StudioError):
    """A setting in the environment (or a config file) is wrong; names the variable."""


class AccessError(ConfigError):
    """The launch settings would expose the studio without a login; names what to change."""


class InputError(StudioError):
    """A form value is refused: names the field, the value and what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message  # what is wrong with it, without the field's name
        super().__init__(f"{field}: {message}")


class ImageError(InputError):
    """An uploaded image cannot be used (unreadable, too large, wrong kind)."""


class UnknownValue(InputError):
    """A workflow value known only when the job runs (a link to a computing node): it can be
    neither quoted nor limit-checked, so the job is refused (app/studio/graph.py)."""


class FetchRefused(StudioError):
    """A result the studio will not download (scheme, address, size, time): says what was wrong
    and what is allowed (app/studio/fetch.py)."""


class DiskFull(StudioError):
    """The data folder cannot be written (disk full, read-only): jobs are refused, results wait."""


class LedgerDamaged(ConfigError):
    """The ledger file is damaged or empty: names the file, what is wrong and what to do."""


class LedgerUnreachable(ConfigError):
    """The ledger's PostgreSQL server took no new connection (at start: a wrong URL; later: the
    server restarting): names the database, its password hidden."""


class SubmitError(StudioError):
    """The endpoint refused or could not take the job (or a cancel). `rid`: the ledger row it
    left LOST when /run reached RunPod and its answer was lost (the job may run and cost: the
    page follows that row, not a failure)."""

    def __init__(self, message: str, rid: str | None = None) -> None:
        self.rid = rid
        super().__init__(message)


class SegmentSent(StudioError):
    """A chain's next segment has a ledger row already: another replica sent it (nothing sent)."""


class GuardrailError(StudioError):
    """A request breaks one or more limits; str() has one line per broken limit."""

    def __init__(self, refusals: Sequence[object]) -> None:
        self.refusals = tuple(refusals)
        super().__init__("refused by the studio's limits:\n" + "\n".join(map(str, refusals)))


class _Missing(Protocol):
    def message(self) -> str: ...


class PreflightError(StudioError):
    """The endpoint lacks what the workflow needs; str() lists each file (with its folder)."""

    def __init__(self, missing: _Missing, endpoint_note: str = "") -> None:
        self.missing = missing
        super().__init__(missing.message() + (f" {endpoint_note}" if endpoint_note else ""))


class InventoryUnavailable(StudioError):
    """The endpoint's inventory could not be had (old worker, failed or slow job)."""


class InventoryPending(InventoryUnavailable):
    """The inventory job is still queued or running (e.g. a cold start); polled again later."""


class EndpointError(StudioError):
    """Something went wrong talking to the RunPod endpoint."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(EndpointError):
    """401/403: the API key was refused."""


class UnknownEndpoint(EndpointError):
    """404 on an endpoint route: the endpoint id does not exist (for this key)."""


class JobNotFound(EndpointError):
    """404 on a job route: unknown job id, or its result expired."""


JobExpired = JobNotFound


class PayloadTooLarge(EndpointError):
    """The request is bigger than RunPod accepts (10 MB /run, 20 MB /runsync)."""


class RateLimited(EndpointError):
    """429 after the client's retries."""


class BadRequest(EndpointError):
    """400: RunPod refused the request (the server's reason is in the message)."""


class ServerError(EndpointError):
    """5xx after the client's retries, or a /run whose fate is unknown."""


class JobMayExist(ServerError):
    """/run (or /retry) reached RunPod and its answer was lost: a job may have been created."""


class EndpointUnreachable(EndpointError):
    """No connection to the endpoint after the client's retries."""


MB = 1_000_000  # RunPod's "10 MB" / "20 MB" limits are read as decimal megabytes


def auth_error(status: int) -> AuthError:
    return AuthError(
        f"RunPod refused the API key (HTTP {status}). Check RUNPOD_API_KEY: it must be a key "
        "with access to this endpoint.",
        status,
    )


def unknown_endpoint(base_url: str) -> UnknownEndpoint:
    return UnknownEndpoint(
        f"The endpoint at {base_url} does not exist. Check RUNPOD_ENDPOINT_ID.", 404
    )


def job_not_found(job_id: str) -> JobNotFound:
    return JobNotFound(
        f"Job {job_id} is unknown or its result has expired (RunPod keeps a /run result for "
        "30 minutes after it finishes). Submit the job again.",
        404,
    )


def payload_too_large(size: int | None, limit: int, op: str, status: int | None) -> PayloadTooLarge:
    got = f"The request is {size / MB:.1f} MB" if size is not None else "The request is too large"
    return PayloadTooLarge(
        f"{got}; RunPod accepts at most {limit // MB} MB on /{op}. Use smaller input images "
        "or pass them as URLs.",
        status,
    )


def _tries(n: int) -> str:
    return f"{n} {'try' if n == 1 else 'tries'}"


def rate_limited(tries: int) -> RateLimited:
    return RateLimited(
        f"RunPod is rate-limiting this endpoint (HTTP 429, {_tries(tries)}). Wait a little and "
        "try again.",
        429,
    )


def bad_request(op: str, reason: str) -> BadRequest:
    return BadRequest(f"RunPod refused /{op}: {reason}", 400)


def server_error(op: str, status: int, tries: int) -> ServerError:
    return ServerError(
        f"RunPod answered HTTP {status} to /{op} ({_tries(tries)}). This is on RunPod's side; "
        "try again later.",
        status,
    )


def run_unknown(status: int | None, detail: str) -> JobMayExist:
    return JobMayExist(
        f"Submitting the job failed ({detail}) after the request reached RunPod, so a job may "
        "or may not have been created; it was not resubmitted to avoid a duplicate. Check the "
        "endpoint's requests in the RunPod console before trying again.",
        status,
    )


def unreachable(base_url: str, tries: int, detail: str) -> EndpointUnreachable:
    return EndpointUnreachable(
        f"Cannot reach the endpoint at {base_url} ({_tries(tries)}): {detail}. Check the "
        "network connection and the endpoint URL.",
    )


def no_answer(base_url: str, tries: int, seconds: float) -> EndpointUnreachable:
    """Connected, but no answer in time: RunPod's API slow or stuck, or a proxy holding on."""
    return EndpointUnreachable(
        f"The endpoint at {base_url} took the connection but did not answer within "
        f"{seconds:g} s ({_tries(tries)}). RunPod's API may be slow or down, or a proxy in "
        "between stuck; try again later.",
    )


ALL_ERRORS: tuple[type[StudioError], ...] = (
    StudioError,
    ConfigError,
    AccessError,
    InputError,
    ImageError,
    UnknownValue,
    FetchRefused,
    DiskFull,
    LedgerDamaged,
    LedgerUnreachable,
    SubmitError,
    SegmentSent,
    GuardrailError,
    PreflightError,
    InventoryUnavailable,
    InventoryPending,
    EndpointError,
    AuthError,
    UnknownEndpoint,
    JobNotFound,
    PayloadTooLarge,
    RateLimited,
    BadRequest,
    ServerError,
    JobMayExist,
    EndpointUnreachable,
)


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` with every secret value replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def user_message(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """The line shown to the operator for `exc`, with any secret value scrubbed."""
    known = isinstance(exc, StudioError | ParamError)
    if not known and isinstance(exc, sqlite3.DatabaseError):  # the ledger, mid-run
        return scrub(_ledger_failure(exc), secrets)
    return scrub(str(exc) if known else f"internal error ({type(exc).__name__})", secrets)


def _ledger_failure(exc: sqlite3.DatabaseError) -> str:
    text = str(exc).lower()
    if "full" in text or "i/o" in text or "readonly" in text:
        return (
            "disk full: the studio's data folder cannot be written (the ledger could not be "
            "updated); free space there, then try again"
        )
    return (
        f"the job ledger failed ({type(exc).__name__}: {exc}); if the file is damaged, restart "
        "the studio: its start-up check names the file and how to restore or replace it"
    )
