"""The studio's one error tree (app/errors.py): every class has a readable, secret-free message
that `user_message` shows as it is; anything else becomes "internal error (TypeName)"."""

from __future__ import annotations

import importlib
import inspect

import pytest

from app import errors
from app.errors import ALL_ERRORS, ConfigError, StudioError, user_message
from app.settings import Settings
from tests.helpers import REPO
from workflows.errors import ParamError

SECRET = "sk-live-1234567890"


class _Missing:
    def message(self) -> str:
        return f"the endpoint lacks diffusion_models/wan.safetensors (key {SECRET})"


def example(cls: type[StudioError]) -> StudioError:
    """One instance of `cls`, built the way the studio builds it, with a secret in its text."""
    if issubclass(cls, errors.InputError):
        return cls("prompt", f"is empty ({SECRET})")
    if cls is errors.GuardrailError:
        return cls([f"width: 4096 ({SECRET}); allowed: up to 1280"])
    if cls is errors.PreflightError:
        return cls(_Missing())
    return cls(f"something specific went wrong ({SECRET})")


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_class_is_shown_as_itself_without_secrets(cls):
    assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__name__} says nothing about itself"
    exc = example(cls)
    shown = user_message(exc, (SECRET,))
    assert shown == str(exc).replace(SECRET, "***")
    assert SECRET not in shown and "internal error" not in shown


def test_the_tree_has_one_root_and_lists_every_class_defined_in_app():
    assert all(issubclass(c, StudioError) for c in ALL_ERRORS)
    found = set()
    for path in sorted((REPO / "app").rglob("*.py")):
        if path.name == "__main__.py":
            continue
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        found |= {
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, BaseException) and obj.__module__.startswith("app")
        }
    assert found == set(ALL_ERRORS), sorted(c.__name__ for c in found ^ set(ALL_ERRORS))


def test_the_endpoint_messages_come_from_one_place():
    assert "RUNPOD_API_KEY" in str(errors.auth_error(401))
    assert "RUNPOD_ENDPOINT_ID" in str(errors.unknown_endpoint("https://api.runpod.ai/v2/x"))
    assert "30 minutes" in str(errors.job_not_found("j-1"))
    assert "10 MB" in str(errors.payload_too_large(11 * errors.MB, 10 * errors.MB, "run", 413))
    assert isinstance(errors.job_not_found("j-1"), StudioError)


def test_other_exceptions_become_a_generic_line():
    assert user_message(KeyError(SECRET), (SECRET,)) == "internal error (KeyError)"
    assert user_message(ParamError("steps", 99, "1..40")).startswith("steps: 99 is not allowed")


def test_an_unknown_gpu_type_is_refused_at_start_with_the_allowed_ones():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"WANPOD_GPU_TYPE": "H100 PROO"})
    text = str(info.value)
    assert "WANPOD_GPU_TYPE='H100 PROO'" in text and "allowed:" in text and "H100 PRO" in text
    assert Settings.from_env({"WANPOD_GPU_TYPE": "4090 PRO"}).gpu_type == "4090 PRO"
