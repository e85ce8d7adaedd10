"""The studio's own exception tree (the endpoint client's lives in app/errors.py).

StudioError
├── ConfigError      a setting in the environment is wrong (names the variable)
├── InputError       a form value is refused (names the field, the value and what is allowed)
│   └── ImageError   an uploaded image cannot be used
└── SubmitError      the endpoint refused or could not take the job

`user_message(exc)` is the ONE place that turns any exception into the line a browser sees; it
never includes secrets (the endpoint client's messages are already free of them, and anything
unexpected becomes a generic line).
"""

from __future__ import annotations


class StudioError(Exception):
    """Base of every studio error; str() is a readable, secret-free message."""


class ConfigError(StudioError):
    pass


class InputError(StudioError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class ImageError(InputError):
    pass


class SubmitError(StudioError):
    pass


def user_message(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """The line shown to the operator for `exc`, with any secret value scrubbed."""
    known: tuple[type[BaseException], ...] = (StudioError,)
    try:  # the endpoint client's tree and the workflows' ParamError are user-facing too
        from app.errors import EndpointError  # type: ignore[attr-defined]

        known = (*known, EndpointError)
    except ImportError:  # pragma: no cover - while the endpoint client is not there
        pass
    try:
        from workflows.errors import ParamError

        known = (*known, ParamError)
    except ImportError:  # pragma: no cover
        pass
    text = str(exc) if isinstance(exc, known) else f"internal error ({type(exc).__name__})"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
