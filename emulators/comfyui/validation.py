"""`POST /prompt` validation with ComfyUI 0.3.64's rules, shapes and gaps.

`validate_prompt(prompt, schema, partial_targets)` returns `Validation(ok, error, outputs,
node_errors)`; `ok` False means HTTP 400 `{"error": error, "node_errors": node_errors}`.
Behaviour reproduced from the recordings (`invalid_prompts`):
- every node needs a known `class_type` (else `invalid_prompt`, no node_errors);
- only output nodes and what they link to are validated: a broken node that feeds no output is
  neither checked nor run (gap 1);
- widget values are converted in place (INT/FLOAT/STRING/BOOLEAN), then min/max and legacy list
  COMBOs are checked; V3 `["COMBO", {...}]` inputs are not (gap 2);
- LoadImage/LoadImageMask only check that the file exists under the input folder (gap 3);
- a node whose only problem is an invalid upstream node is not listed; one output failing while
  another is valid gives ok=True with non-empty node_errors (`partially_valid`).
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .schema import INPUT_FILE_COMBOS, InputSpec, Schema


@dataclass
class Validation:
    ok: bool
    error: dict[str, Any] | None
    outputs: list[str]
    node_errors: dict[str, Any] = field(default_factory=dict)


def _err(typ: str, message: str, details: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": typ, "message": message, "details": details, "extra_info": extra}


def _type_name(exc: BaseException) -> str:
    t = type(exc)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def types_match(received: Any, wanted: Any) -> bool:
    if received == wanted or received == "*" or wanted == "*":
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        # a list COMBO input fed by a COMBO-typed output (e.g. a primitive) is accepted
        return isinstance(wanted, list) and received == "COMBO"
    a = {t.strip() for t in received.split(",")}
    b = {t.strip() for t in wanted.split(",")}
    return bool(a & b)


def annotated_path(
    name: str,
    input_directory: Path,
    output_directory: Path | None = None,
    temp_directory: Path | None = None,
) -> Path:
    """ComfyUI's `folder_paths.get_annotated_filepath`: a name ending in "[output]" / "[temp]"
    / "[input]" picks the folder, the tag and the one character before it cut (" [output]" as
    written, or any other character), the rest joined to it without a containment check (so
    `../x` and absolute names reach outside the folder, as in ComfyUI)."""
    base = Path(input_directory)
    for suffix, d in (
        ("[output]", output_directory),
        ("[input]", input_directory),
        ("[temp]", temp_directory),
    ):
        if name.endswith(suffix):
            name = name[: -len(suffix) - 1]
            base = Path(d) if d is not None else base
            break
    return base / name


def annotated_exists(
    name: str,
    input_directory: Path,
    output_directory: Path | None = None,
    temp_directory: Path | None = None,
) -> bool:
    """ComfyUI's `folder_paths.exists_annotated_filepath` for an input file name."""
    return annotated_path(name, input_directory, output_directory, temp_directory).exists()


class _Validator:
    def __init__(self, prompt: dict[str, Any], schema: Schema, dirs: tuple[Path, ...]) -> None:
        self.prompt = prompt
        self.schema = schema
        self.dirs = dirs
        self.validated: dict[str, tuple[bool, list[dict[str, Any]], str]] = {}

    def custom_validate(self, class_type: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
        name = INPUT_FILE_COMBOS.get(class_type)
        if name is None or name not in inputs or isinstance(inputs[name], list):
            return []
        if annotated_exists(str(inputs[name]), *self.dirs):
            return []
        return [
            _err(
                "custom_validation_failed",
                "Custom validation failed for node",
                f"{name} - Invalid {name} file: {inputs[name]}",
                {"input_name": name},
            )
        ]

    def validate(self, unique_id: str) -> tuple[bool, list[dict[str, Any]], str]:
        if unique_id in self.validated:
            return self.validated[unique_id]
        node = self.prompt[unique_id]
        inputs = node["inputs"]  # KeyError when missing, reported like ComfyUI does
        class_type = node["class_type"]
        specs = self.schema.inputs(class_type)
        custom = INPUT_FILE_COMBOS.get(class_type)
        errors: list[dict[str, Any]] = []
        valid = True
        for x, spec in specs.items():
            if x not in inputs:
                if spec.category == "required":
                    errors.append(
                        _err(
                            "required_input_missing",
                            "Required input is missing",
                            x,
                            {"input_name": x},
                        )
                    )
                continue
            val = inputs[x]
            if isinstance(val, list):
                ok = self._check_link(x, spec, val, errors)
                if ok is False:
                    valid = False
                continue
            self._check_value(x, spec, val, inputs, errors, skip_ranges=(x == custom))
        errors.extend(self.custom_validate(class_type, inputs))
        ret = (not errors and valid, errors, unique_id)
        if errors or not valid:
            ret = (False, errors, unique_id)
        self.validated[unique_id] = ret
        return ret

    def _check_link(
        self, x: str, spec: InputSpec, val: list[Any], errors: list[dict[str, Any]]
    ) -> bool | None:
        if len(val) != 2:
            errors.append(
                _err(
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    x,
                    {"input_name": x, "input_config": spec.info, "received_value": val},
                )
            )
            return None
        o_id = val[0]
        o_class = self.prompt[o_id]["class_type"]  # KeyError for a missing node, like ComfyUI
        received = tuple(self.schema.outputs(o_class))[val[1]]  # RETURN_TYPES is a tuple
        if not types_match(received, spec.type):
            errors.append(
                _err(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    f"{x}, received_type({received}) mismatch input_type({spec.type})",
                    {
                        "input_name": x,
                        "input_config": spec.info,
                        "received_type": received,
                        "linked_node": val,
                    },
                )
            )
            return None
        try:
            r = self.validate(o_id)
            if r[0] is False:
                return False
        except Exception as ex:
            _, _, tb = sys.exc_info()
            self.validated[o_id] = (
                False,
                [
                    _err(
                        "exception_during_inner_validation",
                        "Exception when validating inner node",
                        str(ex),
                        {
                            "input_name": x,
                            "input_config": spec.info,
                            "exception_message": str(ex),
                            "exception_type": _type_name(ex),
                            "traceback": traceback.format_tb(tb),
                            "linked_node": val,
                        },
                    )
                ],
                o_id,
            )
            return False
        return True

    def _check_value(
        self,
        x: str,
        spec: InputSpec,
        val: Any,
        inputs: dict[str, Any],
        errors: list[dict[str, Any]],
        skip_ranges: bool,
    ) -> None:
        try:
            if isinstance(val, dict) and "__value__" in val:
                val = val["__value__"]
                inputs[x] = val
            conv = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(
                spec.type if isinstance(spec.type, str) else ""
            )
            if conv is not None:
                val = conv(val)
                inputs[x] = val
        except Exception as ex:
            errors.append(
                _err(
                    "invalid_input_type",
                    f"Failed to convert an input value to a {spec.type} value",
                    f"{x}, {val}, {ex}",
                    {
                        "input_name": x,
                        "input_config": spec.info,
                        "received_value": val,
                        "exception_message": str(ex),
                    },
                )
            )
            return
        if skip_ranges:
            return
        try:
            if "min" in spec.options and val < spec.options["min"]:
                errors.append(
                    _err(
                        "value_smaller_than_min",
                        "Value {} smaller than min of {}".format(val, spec.options["min"]),
                        x,
                        {"input_name": x, "input_config": spec.info, "received_value": val},
                    )
                )
                return
            if "max" in spec.options and val > spec.options["max"]:
                errors.append(
                    _err(
                        "value_bigger_than_max",
                        "Value {} bigger than max of {}".format(val, spec.options["max"]),
                        x,
                        {"input_name": x, "input_config": spec.info, "received_value": val},
                    )
                )
                return
        except TypeError:
            pass
        if isinstance(spec.type, list) and val not in spec.type:
            options = spec.type
            if len(options) > 20:
                list_info, config = f"(list of length {len(options)})", None
            else:
                list_info, config = str(options), spec.info
            errors.append(
                _err(
                    "value_not_in_list",
                    "Value not in list",
                    f"{x}: '{val}' not in {list_info}",
                    {"input_name": x, "input_config": config, "received_value": val},
                )
            )


def validate_prompt(
    prompt: Any,
    schema: Schema,
    partial_targets: list[str] | None = None,
    dirs: tuple[Path, ...] = (),
) -> Validation:
    """Validate (and normalise in place) an API-format prompt."""
    if not isinstance(prompt, dict):
        # ComfyUI indexes the value like a dict and crashes: the caller answers 500.
        raise TypeError(f"prompt must be an object of nodes, not {type(prompt).__name__}")
    outputs: list[str] = []
    for x, node in prompt.items():
        if not isinstance(node, dict | str | list):
            raise TypeError(f"argument of type '{type(node).__name__}' is not iterable")
        if "class_type" not in node:
            return Validation(
                False,
                _err(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{x}'",
                    {},
                ),
                [],
            )
        if not isinstance(node, dict):
            raise TypeError("string indices must be integers")
        class_type = node["class_type"]
        hash(class_type)  # an unhashable class_type crashes ComfyUI's lookup (500)
        if not isinstance(class_type, str) or not schema.has(class_type):
            return Validation(
                False,
                _err(
                    "invalid_prompt",
                    f"Cannot execute because node {class_type} does not exist.",
                    f"Node ID '#{x}'",
                    {},
                ),
                [],
            )
        if schema.is_output(class_type) and (partial_targets is None or x in partial_targets):
            outputs.append(x)
    if not outputs:
        return Validation(False, _err("prompt_no_outputs", "Prompt has no outputs", "", {}), [])

    v = _Validator(prompt, schema, dirs or (schema.input_directory,))
    good: list[str] = []
    failed: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, Any] = {}
    for o in outputs:
        try:
            valid, reasons, _ = v.validate(o)
        except Exception as ex:
            _, _, tb = sys.exc_info()
            valid = False
            reasons = [
                _err(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(ex),
                    {"exception_type": _type_name(ex), "traceback": traceback.format_tb(tb)},
                )
            ]
            v.validated[o] = (False, reasons, o)
        if valid:
            good.append(o)
            continue
        failed.append((o, reasons))
        for node_id, (ok, node_reasons, _) in v.validated.items():
            if ok is not True and node_reasons:
                entry = node_errors.setdefault(
                    node_id,
                    {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    },
                )
                entry["dependent_outputs"].append(o)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, errs in failed for e in errs)
        return Validation(
            False,
            _err(
                "prompt_outputs_failed_validation", "Prompt outputs failed validation", details, {}
            ),
            [],
            node_errors,
        )
    return Validation(True, None, good, node_errors)
