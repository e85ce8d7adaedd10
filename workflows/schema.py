"""Check an API-format workflow against a ComfyUI `/object_info` schema, before a GPU is paid for.

`check(workflow, schema, model_files=None) -> list[Problem]`; an empty list means no problem found.
Checks: every node is {class_type, inputs}; the class exists; required inputs are present; links
`["<id>", slot]` point at existing nodes and outputs whose type matches the input's; numbers are
numbers within min/max and on the step grid (INT from min, e.g. length 1, 5, ..., 81); list options
(legacy `[[...]]` COMBOs and V3 `["COMBO", {"options"}]`) hold a listed value; at least one output
node. Loader inputs (UNETLoader.unet_name, VAELoader.vae_name, LoraLoaderModelOnly.lora_name, ...)
whose file is not available are reported as missing model files with the folder they belong in;
the available files are the loaders' option lists in the schema, or `model_files` ({folder: names})
when given. Stricter than ComfyUI's own /prompt validation on purpose (it skips step and V3 COMBO
checks, and nodes that feed no output). Each Problem prints as one line.

Also caught, because ComfyUI 0.3.64's /prompt accepts them and the job fails later: a SaveVideo
whose codec cannot go in its container (h264 in webm: "not a valid VideoContainer" at run time),
an h264 video with an odd width or height (libx264's `avcodec_open2` fails; the size is read from
the nearest upstream node with literal `width`/`height`), and, when `uploads` (the image names the
job uploads) is given, a LoadImage of a file that is neither uploaded nor already in ComfyUI's
input folder (the schema's option list), or one that points outside the input folder. A FLOAT
with a numeric `round` (cfg: step 0.1, round 0.01) is on the `round` grid, as ComfyUI's widget
rounds it; `round: false` means no grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workflows.catalog import LOADER_FOLDERS

UPLOAD_NODES = {"LoadImage": "image", "LoadImageMask": "image", "LoadVideo": "file"}


@dataclass(frozen=True)
class Problem:
    node: str | None
    class_type: str | None
    input: str | None
    message: str
    kind: str = "invalid"  # invalid | missing_input | link | unknown_node | missing_model | output

    def __str__(self) -> str:
        where = []
        if self.node is not None:
            where.append(f"node {self.node}" + (f" ({self.class_type})" if self.class_type else ""))
        if self.input:
            where.append(self.input)
        return ": ".join([*where, self.message])


def check(
    workflow: Mapping[str, Any],
    schema: Mapping[str, Any],
    model_files: Mapping[str, Iterable[str]] | None = None,
    uploads: Iterable[str] | None = None,
) -> list[Problem]:
    """All problems found in `workflow` (API format) against `schema` (/object_info);
    `uploads`: the image names the job uploads (None: not known, input files are not checked)."""
    if not isinstance(workflow, Mapping) or not workflow:
        return [Problem(None, None, None, "the workflow is empty or not a JSON object", "invalid")]
    files = {k: set(v) for k, v in (model_files or {}).items()}
    problems: list[Problem] = []
    has_output = False
    for node_id, node in workflow.items():
        node_id = str(node_id)
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            problems.append(Problem(node_id, None, None, "has no class_type", "invalid"))
            continue
        cls = node["class_type"]
        info = schema.get(cls)
        if info is None:
            problems.append(
                Problem(
                    node_id,
                    cls,
                    None,
                    f"unknown node class {cls!r} (not installed?)",
                    "unknown_node",
                )
            )
            continue
        has_output = has_output or bool(info.get("output_node"))
        inputs = node.get("inputs", {})
        if not isinstance(inputs, Mapping):
            problems.append(Problem(node_id, cls, None, "inputs is not an object", "invalid"))
            continue
        spec_in = info.get("input", {})
        required = spec_in.get("required", {}) or {}
        optional = spec_in.get("optional", {}) or {}
        for name in required:
            if name not in inputs:
                problems.append(
                    Problem(node_id, cls, name, "required input missing", "missing_input")
                )
        for name, value in inputs.items():
            spec = required.get(name, optional.get(name))
            if spec is None:
                continue  # ComfyUI ignores unknown inputs
            problems.extend(_check_input(workflow, schema, node_id, cls, name, value, spec, files))
    problems.extend(_cycles(workflow))
    problems.extend(_wan_vae_pairing(workflow))
    problems.extend(_video_encoding(workflow))
    if uploads is not None:
        problems.extend(_input_files(workflow, schema, set(uploads)))
    if not has_output:
        problems.append(
            Problem(
                None, None, None, "no output node (e.g. SaveVideo): nothing would run", "output"
            )
        )
    return problems


def _cycles(workflow: Mapping[str, Any]) -> list[Problem]:
    """Nodes on a dependency cycle (ComfyUI refuses those at run time)."""
    deps = {}
    for node_id, node in workflow.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        links = (inputs or {}).values() if isinstance(inputs, Mapping) else ()
        deps[str(node_id)] = {str(v[0]) for v in links if _is_link(v) and str(v[0]) in workflow}
    # Peel nodes with no remaining dependencies (Kahn), then nodes nothing remaining depends on:
    # what is left lies on a cycle. Linear time, no recursion.
    users: dict[str, set[str]] = {n: set() for n in deps}
    for n, ds in deps.items():
        for d in ds:
            users[d].add(n)
    left = set(deps)
    for edges, back in ((deps, users), (users, deps)):
        count = {n: len(edges[n] & left) for n in left}
        ready = [n for n in left if count[n] == 0]
        while ready:
            n = ready.pop()
            left.discard(n)
            for m in back[n]:
                if m in left:
                    count[m] -= 1
                    if count[m] == 0:
                        ready.append(m)
    on_cycle = [n for n in deps if n in left]
    return [
        Problem(n, workflow[n].get("class_type"), None, "is part of a dependency cycle", "link")
        for n in on_cycle
    ]


# SaveVideo: the codecs each container can hold ("auto" is mp4 / h264 in ComfyUI 0.3.64).
CONTAINER_CODECS = {
    "auto": {"auto", "h264"},
    "mp4": {"auto", "h264"},
    "webm": {"auto", "vp8", "vp9", "av1"},
}
EVEN_SIZE_CODECS = {"auto", "h264"}  # libx264 needs even width and height (4:2:0)


def _video_encoding(workflow: Mapping[str, Any]) -> list[Problem]:
    out = []
    for node_id, node in workflow.items():
        if not isinstance(node, Mapping) or node.get("class_type") != "SaveVideo":
            continue
        inputs = node.get("inputs") or {}
        fmt, codec = str(inputs.get("format", "auto")), str(inputs.get("codec", "auto"))
        fits = CONTAINER_CODECS.get(fmt)
        if fits is not None and codec not in fits:
            out.append(
                Problem(
                    str(node_id),
                    "SaveVideo",
                    "codec",
                    f"{codec!r} cannot be stored in a {fmt} file (the job would fail when "
                    f"saving); use {', '.join(sorted(fits))}"
                    + (" or format 'mp4'" if codec == "h264" else ""),
                )
            )
            continue
        if codec in EVEN_SIZE_CODECS and fmt in ("auto", "mp4"):
            for src, w, h in _upstream_sizes(workflow, str(node_id)):
                if w % 2 or h % 2:
                    out.append(
                        Problem(
                            str(node_id),
                            "SaveVideo",
                            "codec",
                            f"the video would be {w}x{h} (node {src}): h264 needs an even width "
                            "and height (the encoder would fail); make both even",
                        )
                    )
    return out


def _upstream_sizes(workflow: Mapping[str, Any], start: str) -> list[tuple[str, int, int]]:
    """(node, width, height) of the nearest upstream nodes with literal width and height."""
    found, seen, todo = [], {start}, [start]
    while todo:
        node = workflow.get(todo.pop())
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        for v in (inputs or {}).values() if isinstance(inputs, Mapping) else ():
            src = str(v[0]) if _is_link(v) else None
            if src is None or src in seen or not isinstance(workflow.get(src), Mapping):
                continue
            seen.add(src)
            si = workflow[src].get("inputs") or {}
            w, h = si.get("width"), si.get("height")
            if _whole(w) and _whole(h) and w > 0 and h > 0:
                found.append((src, int(w), int(h)))
            else:
                todo.append(src)
    return found


def _whole(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _input_files(
    workflow: Mapping[str, Any], schema: Mapping[str, Any], uploads: set[str]
) -> list[Problem]:
    out = []
    for node_id, node in workflow.items():
        cls = node.get("class_type") if isinstance(node, Mapping) else None
        name = UPLOAD_NODES.get(cls) if cls in ("LoadImage", "LoadImageMask") else None
        value = (node.get("inputs") or {}).get(name) if name else None
        if not isinstance(value, str) or not value:
            continue
        bare = value.removesuffix(" [input]")
        parts = bare.replace("\\", "/").split("/")
        if bare.startswith(("/", "\\")) or ".." in parts or bare.endswith((" [output]", " [temp]")):
            out.append(
                Problem(str(node_id), cls, name, f"{value!r} points outside ComfyUI's input folder")
            )
            continue
        spec = ((schema.get(cls) or {}).get("input") or {}).get("required", {}).get(name)
        present = spec[0] if isinstance(spec, list) and spec and isinstance(spec[0], list) else []
        if bare not in uploads and bare not in present:
            shown = ", ".join(sorted(uploads)) or "none"
            out.append(
                Problem(
                    str(node_id),
                    cls,
                    name,
                    f"{bare!r} is not uploaded by this job (uploads: {shown}) nor in ComfyUI's "
                    "input folder",
                    "missing_input",
                )
            )
    return out


WAN_VAE = {"14B": "wan_2.1_vae.safetensors", "5B": "wan2.2_vae.safetensors"}


def _wan_vae_pairing(workflow: Mapping[str, Any]) -> list[Problem]:
    """Wan 2.2 14B models decode with wan_2.1_vae, the 5B with wan2.2_vae (else it fails late)."""
    sizes = set()
    for node in workflow.values():
        if isinstance(node, Mapping) and node.get("class_type") == "UNETLoader":
            name = str((node.get("inputs") or {}).get("unet_name", "")).lower()
            if name.startswith("wan2.2_"):
                sizes |= {s for s in WAN_VAE if f"_{s.lower()}_" in name}
    if len(sizes) != 1:
        return []
    size = sizes.pop()
    want = WAN_VAE[size]
    out = []
    for node_id, node in workflow.items():
        if isinstance(node, Mapping) and node.get("class_type") == "VAELoader":
            have = (node.get("inputs") or {}).get("vae_name")
            if have in WAN_VAE.values() and have != want:
                out.append(
                    Problem(
                        str(node_id),
                        "VAELoader",
                        "vae_name",
                        f"{have!r} does not fit the Wan 2.2 {size} model: use {want!r}",
                        "vae_pairing",
                    )
                )
    return out


def _check_input(wf, schema, node_id, cls, name, value, spec, files) -> list[Problem]:
    def p(msg: str, kind: str = "invalid") -> list[Problem]:
        return [Problem(node_id, cls, name, msg, kind)]

    kind = spec[0] if isinstance(spec, list | tuple) and spec else spec
    opts = spec[1] if isinstance(spec, list | tuple) and len(spec) > 1 else {}
    opts = opts if isinstance(opts, Mapping) else {}
    if _is_link(value):
        return _check_link(wf, schema, node_id, cls, name, value, kind)
    if isinstance(kind, list) or kind == "COMBO":
        options = kind if isinstance(kind, list) else list(opts.get("options", []))
        folder = LOADER_FOLDERS.get(cls, {}).get(name)
        if folder is not None:
            available = files.get(folder, options) if files else options
            if value not in available:
                return p(
                    f"missing model file {value!r}: put it in models/{folder}/", "missing_model"
                )
            return []
        if cls in UPLOAD_NODES and UPLOAD_NODES[cls] == name:
            return [] if isinstance(value, str) and value else p("needs a file name")
        if value not in options:
            return p(f"{value!r} is not one of the options: {_short(options)}")
        return []
    if kind == "INT":
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:
            return p(f"{value!r} is not a whole number")
        return _range(p, value, opts, integer=True)
    if kind == "FLOAT":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return p(f"{value!r} is not a number")
        return _range(p, value, opts, integer=False)
    if kind == "STRING":
        return [] if isinstance(value, str) else p(f"{value!r} is not text")
    if kind == "BOOLEAN":
        return [] if isinstance(value, bool) else p(f"{value!r} is not true/false")
    if isinstance(kind, str) and kind.isupper() and kind not in ("*",):
        return p(f"needs a link from a {kind} output, got the value {value!r}", "link")
    return []


def _range(p, value, opts, integer: bool) -> list[Problem]:
    lo, hi, step = opts.get("min"), opts.get("max"), opts.get("step")
    rnd = opts.get("round")
    if not integer and "round" in opts:  # ComfyUI's widget rounds FLOATs to `round`
        step = rnd if isinstance(rnd, int | float) and not isinstance(rnd, bool) else None
    if lo is not None and value < lo:
        return p(f"{value} is below the minimum {lo}")
    if hi is not None and value > hi:
        return p(f"{value} is above the maximum {hi}")
    if step:
        base = lo if lo is not None else 0
        k = (value - base) / step
        if abs(k - round(k)) > (0 if integer else 1e-6):
            lower = base + math.floor(k) * step
            upper = lower + step
            return p(f"{value} is not on the step grid ({base} + n*{step}: {lower:g} or {upper:g})")
    return []


def _is_link(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def _check_link(wf, schema, node_id, cls, name, value, want) -> list[Problem]:
    src_id, slot = str(value[0]), value[1]

    def p(msg: str) -> list[Problem]:
        return [Problem(node_id, cls, name, msg, "link")]

    src = wf.get(src_id)
    if src is None and value[0] in wf:
        src = wf[value[0]]
    if not isinstance(src, Mapping):
        return p(f"links to node {src_id}, which does not exist")
    src_info = schema.get(src.get("class_type"))
    if src_info is None:
        return []  # reported as an unknown node already
    outputs = src_info.get("output", [])
    if not 0 <= slot < len(outputs):
        return p(
            f"links to output {slot} of node {src_id} ({src['class_type']}), which has "
            f"{len(outputs)} output(s)"
        )
    have = outputs[slot]
    if not _types_match(want, have):
        return p(
            f"needs {_type_name(want)} but node {src_id} ({src['class_type']}) output "
            f"{slot} is {_type_name(have)}"
        )
    return []


def _types_match(want: object, have: object) -> bool:
    if isinstance(want, list) or want == "COMBO":
        return isinstance(have, list) or have in ("COMBO", "*")
    if not isinstance(want, str) or not isinstance(have, str):
        return True
    if "*" in (want, have):
        return True
    return bool(set(want.split(",")) & set(have.split(",")))


def _type_name(t: object) -> str:
    return "a list option" if isinstance(t, list) else str(t)


def _short(options: list) -> str:
    shown = ", ".join(map(str, options[:10]))
    return shown + (f", ... ({len(options)} in all)" if len(options) > 10 else "")
