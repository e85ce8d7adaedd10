"""The worker's exception tree and the ONE place that turns an exception into a result.

Every failure the handler can report is a `WorkerError` subclass with a readable message (and,
where useful, `details`: one line per problem). `to_result(exc)` maps any exception to the RunPod
failure shape `{"error": "<one string>", "details": [str, ...]}`; `error` is always a string
(a dict there ends as COMPLETED with no output, runpod-python #299), and it and every details
entry are one line without traceback frames or the server's file paths (`one_line`). Messages
never carry input payloads, base64 data or keys: unexpected exceptions are reported by type and a
scrubbed message.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence


class WorkerError(Exception):
    """Base of every error the worker reports to the caller."""

    prefix = "worker error"

    def __init__(self, message: str, details: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[str] = [str(d) for d in details]

    def __str__(self) -> str:
        return f"{self.prefix}: {self.message}"


class ConfigError(WorkerError):
    """The worker's environment is incomplete or invalid (raised at start)."""

    prefix = "worker configuration error"


class InputError(WorkerError):
    """The job input is invalid: names the field, the bad value and what is allowed."""

    prefix = "invalid input"

    def __init__(self, field: str, problem: str, allowed: str = "", value: object = None) -> None:
        shown = "" if value is None else f" (got {_short(value)})"
        msg = f"{field}: {problem}{shown}"
        if allowed:
            msg += f"; allowed: {allowed}"
        super().__init__(msg)
        self.field = field
        self.allowed = allowed


class ComfyUnavailable(WorkerError):
    """ComfyUI did not become reachable in time, or its process is gone."""

    prefix = "ComfyUI unavailable"


class ComfyDied(WorkerError):
    """The ComfyUI process exited or stopped answering while a job ran."""

    prefix = "ComfyUI stopped during the job"


class ComfyProtocolError(WorkerError):
    """ComfyUI answered something the worker cannot interpret (status, body)."""

    prefix = "unexpected answer from ComfyUI"


class UploadFailed(WorkerError):
    """An input image could not be uploaded to ComfyUI."""

    prefix = "image upload failed"


class WorkflowRejected(WorkerError):
    """ComfyUI refused the workflow (HTTP 400); details has one line per node error."""

    prefix = "workflow rejected by ComfyUI"


class ExecutionFailed(WorkerError):
    """A node raised while ComfyUI executed the workflow (`execution_error`)."""

    prefix = "workflow execution failed"


class UnreadableModel(ExecutionFailed):
    """A loader could not read its model file (empty, truncated or not a model): names the
    file, the input and, once known, the models folder it is in."""

    def __init__(
        self, node: str, class_type: str, input_name: str, filename: str, cause: str
    ) -> None:
        self.node, self.class_type, self.input_name = node, class_type, input_name
        self.filename, self.folder = filename, ""
        super().__init__(self._text(), [cause])

    def _text(self) -> str:
        where = f"models/{self.folder}" if self.folder else f"the folder for {self.input_name}"
        return (
            f"node {self.node} ({self.class_type}): model file {self.filename!r} in {where} is "
            "unreadable (incomplete download?); replace the file and run the job again"
        )

    def locate(self, folder: str) -> None:
        self.folder = folder
        self.message = self._text()


class Interrupted(WorkerError):
    """ComfyUI reported `execution_interrupted` for this prompt (someone interrupted it)."""

    prefix = "workflow interrupted"


class JobTimeout(WorkerError):
    """The handler-side deadline passed; ComfyUI was interrupted."""

    prefix = "job timed out"


class ConnectionLost(WorkerError):
    """The websocket to ComfyUI dropped and could not be re-established."""

    prefix = "lost connection to ComfyUI"


class OutputError(WorkerError):
    """An output ComfyUI reported could not be read."""

    prefix = "could not read output"


class DeliveryError(WorkerError):
    """Outputs could not be delivered (S3 upload failed)."""

    prefix = "delivery failed"


class ResultTooLarge(WorkerError):
    """The base64 result would exceed the platform's limit; S3 is needed."""

    prefix = "result too large"


class ProvisionError(WorkerError):
    """Model files could not be put on the volume (no volume, no room, download or check failed)."""

    prefix = "provision failed"


ALL_ERRORS: tuple[type[WorkerError], ...] = (
    WorkerError,
    ConfigError,
    InputError,
    ComfyUnavailable,
    ComfyDied,
    ComfyProtocolError,
    UploadFailed,
    WorkflowRejected,
    ExecutionFailed,
    UnreadableModel,
    Interrupted,
    JobTimeout,
    ConnectionLost,
    OutputError,
    DeliveryError,
    ResultTooLarge,
    ProvisionError,
)

_B64_RUN = re.compile(r"[A-Za-z0-9+/=_-]{64,}")
# a file path, not data: it starts with "/", and no part between its slashes is longer than a
# folder name (a base64 blob's parts between slashes run ~64 characters on average)
_PATH_LIKE = re.compile(r"(?:/[A-Za-z0-9+=_-]{1,40}){2,}/?")
_TB_NOISE = re.compile(r'^\s*(File "|Traceback \(most recent call last\)|[\^~ ]+$)')
_ABS_PATH = re.compile(r"(?<![\w.:/\\])(?:/[\w.@+-]+){2,}|\b[A-Za-z]:\\[^\s'\"]+")


def one_line(text: str, server_paths: bool = False) -> str:
    """`text` as one line without traceback frames and, unless `server_paths`, without file
    paths (a path becomes its last part: the file name is useful, the server's layout is not)."""
    lines = str(text).splitlines()
    kept: list[str] = []
    skip_code = False
    for line in lines:
        if _TB_NOISE.match(line):
            skip_code = line.lstrip().startswith("File")
            continue
        if skip_code and line.startswith("    "):
            continue  # the source line under a `File "..."` frame
        skip_code = False
        if line.strip():
            kept.append(line.strip())
    joined = " ".join(kept)
    if server_paths:
        return joined
    return _ABS_PATH.sub(lambda m: re.split(r"[/\\]", m.group(0))[-1], joined)


class ScrubbingFormatter(logging.Formatter):
    """Log lines, tracebacks included, with the worker's secret values replaced by ***: an
    exception logged as it was (an unexpected error's traceback) cannot carry one out. The
    secrets are the worker's own and those of the jobs under way (`job_secrets`)."""

    def __init__(self, fmt: str, secrets: Sequence[str]) -> None:
        super().__init__(fmt)
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return _without_secrets(super().format(record), self.secrets + tuple(_JOB_SECRETS))


_JOB_SECRETS: list[str] = []  # the secrets jobs under way brought (their Comfy.org API keys)


@contextlib.contextmanager
def job_secrets(*secrets: str) -> Iterator[None]:
    """While the block runs, log lines are scrubbed of `secrets` too: a job's own key (its
    `comfy_org_api_key`) stays out of the operator's log as the worker's keys do."""
    added = [s for s in secrets if s]
    _JOB_SECRETS.extend(added)
    try:
        yield
    finally:
        for s in added:
            _JOB_SECRETS.remove(s)


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove known secret values and long base64-looking runs from a message."""
    return _without_blobs(_without_secrets(text, secrets))


def _without_secrets(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def _without_blobs(text: str) -> str:
    """`text` with each long base64-looking run (a payload pasted into a message) as <…>; a file
    path stays as it is, however long: a refusal names the caller's own path."""
    return _B64_RUN.sub(lambda m: m[0] if _PATH_LIKE.fullmatch(m[0]) else "<…>", text)


def _short(value: object, limit: int = 80) -> str:
    text = _without_blobs(repr(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_result(exc: BaseException, secrets: Sequence[str] = ()) -> dict[str, object]:
    """Map any exception to the RunPod failure payload (the one place that does this)."""
    if isinstance(exc, WorkerError):
        error = str(exc)
        details = list(exc.details)
    else:
        error = f"internal worker error: {type(exc).__name__}: {exc}"
        details = []
    own = isinstance(exc, InputError)  # quotes the caller's own values: paths stay as given

    def said(text: str) -> str:  # secrets out first: shortening a path could cut one apart
        return scrub(one_line(scrub(text, secrets), own), secrets)

    out: dict[str, object] = {"error": said(error)}
    if details:
        out["details"] = [said(d) for d in details]
    return out
