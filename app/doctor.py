"""`python -m app.cli doctor`: can the configured endpoint make videos, and if not, what to do.

Against RUNPOD_API_KEY / RUNPOD_ENDPOINT_ID (RUNPOD_API_BASE may point at the local stack), with
the studio's own endpoint client and pre-flight code:
1. the key and the endpoint id (GET /health answers, or says which one was refused);
2. /health: workers (idle, running, ...) and jobs (in queue, in progress);
3. the inventory job (`{"inventory": true}`, app/preflight.py): ComfyUI version, node classes,
   model files per folder;
4. per pipeline (catalog template) and mode: ready, or exactly which files (with the folder each
   belongs in) and node classes are missing, and the `provision` command / job that adds the
   files (custom nodes: the CUSTOM_NODES build argument).
Exit 0 when at least one pipeline mode is ready, 1 when none is, 2 when the endpoint cannot be
checked (no credentials, key or id refused, unreachable, inventory job failed).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.endpoint import EndpointClient
from app.errors import EndpointError, InventoryPending, StudioError
from app.studio.checks.preflight import Inventory, MissingFile, fetch_inventory, template_gaps
from workflows.catalog import load_catalog


@dataclass(frozen=True)
class Verdict:
    """One pipeline in one mode on this endpoint."""

    template: str
    mode: str
    files: tuple[MissingFile, ...]
    nodes: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.files and not self.nodes

    def provision_command(self) -> str:
        return f"python -m worker.provision --pipelines {self.template} --modes {self.mode}"

    def provision_job(self) -> str:
        body = {"provision": {"pipelines": [self.template], "modes": [self.mode]}}
        return json.dumps({"input": body})


def verdicts(inventory: Inventory) -> list[Verdict]:
    """Every catalog template in every mode it offers, against the inventory."""
    out = []
    for t in load_catalog():
        for mode, m in t.modes.items():
            classes = {n["class_type"] for k, n in t.workflow.items() if k not in m.bypass}
            out.append(
                Verdict(
                    t.id,
                    mode,
                    template_gaps(t, mode, inventory),
                    tuple(sorted(classes - inventory.nodes)),
                )
            )
    return out


def render(v: Verdict) -> list[str]:
    if v.ready:
        return [f"  ready    {v.template} {v.mode}"]
    lines = [f"  MISSING  {v.template} {v.mode}:"]
    lines += [f"             file {f.folder}/{f.name}" for f in v.files]
    lines += [f"             node class {n}" for n in v.nodes]
    if v.files:
        lines.append(f"           add the files: {v.provision_command()}")
        lines.append(f"           (or send the job {v.provision_job()})")
    if v.nodes:
        lines.append('           add the node packs: build with --build-arg CUSTOM_NODES="<packs>"')
    return lines


def run(client: EndpointClient, out: Callable[[str], None] = print,
        timeout_s: float = 300.0, poll_s: float = 1.0) -> int:  # fmt: skip
    """The checks above, printed through `out`; returns the exit code."""
    out(f"doctor: endpoint {client.base_url}")
    try:
        health = client.health()
    except EndpointError as e:
        out(f"  FAIL   key and endpoint id: {e}")
        return 2
    out("  ok     key and endpoint id accepted")
    workers = ", ".join(f"{n} {k}" for k, n in sorted(health.workers.items())) or "none"
    jobs = ", ".join(f"{n} {k}" for k, n in sorted(health.jobs.items())) or "none"
    out(f"  ok     health: workers {workers}; jobs {jobs}")
    if health.idle + health.running == 0:
        out("         no worker is up: the inventory job waits for a cold start")
    sent: list[str] = []
    try:
        inv = fetch_inventory(client, timeout_s=timeout_s, poll_s=poll_s, on_sent=sent.append)
    except InventoryPending:  # no worker took it in time: each run sends its own, so cancel it
        with contextlib.suppress(EndpointError):
            client.cancel(sent[0])
        out(f"  FAIL   inventory job {sent[0]}: not answered within {timeout_s:g} s (the "
            "endpoint is still starting? a worker's first start pulls the image, which can take "
            "longer); cancelled. Run doctor again, or with a longer --timeout")  # fmt: skip
        return 2
    except (EndpointError, StudioError) as e:
        out(f"  FAIL   inventory job: {e}")
        return 2
    files = sum(len(v) for v in inv.models.values())
    per_folder = ", ".join(f"{k} {len(v)}" for k, v in sorted(inv.models.items()) if v)
    out(f"  ok     inventory: ComfyUI {inv.comfyui_version or 'version unknown'}, "
        f"{len(inv.nodes)} node classes, {files} model files ({per_folder or 'none'})")  # fmt: skip
    out("pipelines:")
    results = verdicts(inv)
    for v in results:
        for line in render(v):
            out(line)
    ready = sum(v.ready for v in results)
    out(f"doctor: {ready} of {len(results)} pipeline modes ready")
    return 0 if ready else 1


def main(env: Mapping[str, str], timeout_s: float = 300.0, poll_s: float = 1.0) -> int:
    """The command: the configured endpoint, or exit 2 saying what to set."""
    try:
        client = EndpointClient.from_env(env)
    except EndpointError as e:
        print(f"doctor: {e}")
        return 2
    return run(client, timeout_s=timeout_s, poll_s=poll_s)


if __name__ == "__main__":  # `python -m app.doctor [--timeout S]` is `python -m app.cli doctor`
    import sys

    from app.cli import main as cli

    sys.exit(cli(["doctor", *sys.argv[1:]]))
