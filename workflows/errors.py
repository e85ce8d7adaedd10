"""The workflows part's exception tree, with readable one-line messages.

- `WorkflowError`: base of everything raised here.
- `ParamError(param, value, allowed)`: a named parameter has a value that is not allowed; str() says
  which parameter, what it was and what is allowed. Also a ValueError.
- `TemplateError`: an unknown template id or a broken catalog/template file (a bug, not user input).
- `WorkflowFormatError`: a workflow file that is not an API-format workflow (e.g. the UI "save"
  format); str() says how to export the API format.
"""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class of the workflows part's errors."""


class ParamError(WorkflowError, ValueError):
    def __init__(self, param: str, value: object, allowed: str) -> None:
        self.param = param
        self.value = value
        self.allowed = allowed
        super().__init__(f"{param}: {as_sent(value)} is not allowed; allowed: {allowed}")


class TemplateError(WorkflowError):
    """Unknown template or inconsistent catalog/template data."""


class WorkflowFormatError(WorkflowError, ValueError):
    """The uploaded file is not an API-format ComfyUI workflow."""


def as_sent(value: object) -> str:
    """A refused value as a refusal shows it: its repr, shortened to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
