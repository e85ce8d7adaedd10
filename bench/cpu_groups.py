"""`--isolate` of bench/studio_concurrency.py: each studio, and the stand-in for RunPod's API, in a
CPU group of its own, as if each ran on its own machine.

On one small machine the 64 workers and ComfyUI emulators (the stand-ins for 64 GPU machines) and
the control plane (the stand-in for RunPod's API) share the CPU with the studio as equals, one
process among ~130. Linux shares CPU time between runnable threads, so while the workers start
their jobs and while the emulators encode their videos (1-1.5 cores each time), the studio gets
~0.2 of a core and the control plane answers /run and /status late (0.1-0.7 s), wherever the
studio's own path could go faster. With `--isolate`, each studio and the control plane is in a
group of cgroup v1's `cpu` controller weighted SHARES (`cpu.shares`): the stand-ins stay in the
root group, where Linux weighs each of their processes like a group (1024 at nice 0), so a group
of the default weight would get no more than one of them (as without the group: the first
`--isolate`, before this weight, changed nothing). At SHARES, ~256 such processes' worth, a studio
or the control plane gets the CPU it asks for (about one core: Python's lock runs one of its
threads at a time), and the stand-ins for the GPU machines keep everything the others leave.
They get less than without `--isolate` while the studio works, so their executionTimes (the
ratio's yardstick) may be longer: read the studio's own steps (ledger row, seen, stored) too.
What the studio's path still takes then is the studio's own (and this machine's two cores).

Needs cgroup v1's `cpu` hierarchy mounted and writable (root): `available()` says why not.
The default (no `--isolate`) stays as it was, so figures stay comparable with earlier runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller
SHARES = 262144  # each group's weight (cgroup v1's largest): see the module's text


def available(root: Path = ROOT) -> str:
    """Why groups cannot be made under `root` ("" when they can)."""
    if not (root / "cgroup.procs").is_file():
        return f"no cgroup v1 cpu hierarchy at {root}"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable (run as root)"
    return ""


def cpu_group(pid: int) -> str:
    """The CPU group process `pid` is in, as /proc/<pid>/cgroup names it ("/" for the root)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return path
    raise RuntimeError(f"process {pid} is in no cpu group")


@contextlib.contextmanager
def isolated(groups: Mapping[str, list[int]], root: Path = ROOT) -> Iterator[list[Path]]:
    """Each named group of process ids (all their threads) in a CPU group of its own under
    `root` while the block runs; after it, the processes still alive go back to the group each
    was in, and the groups are removed. Processes they start meanwhile stay in their parent's."""
    why = available(root)
    if why:
        raise RuntimeError(f"--isolate: {why}")
    made: list[Path] = []
    was: dict[int, str] = {}
    try:
        for name, pids in groups.items():
            group = root / f"wanpod-bench-{os.getpid()}-{name}"
            group.mkdir()
            made.append(group)
            (group / "cpu.shares").write_text(str(SHARES))
            for pid in pids:
                was[pid] = cpu_group(pid)
                (group / "cgroup.procs").write_text(str(pid))
        yield made
    finally:
        for pid, path in was.items():
            with contextlib.suppress(OSError):  # gone meanwhile
                (root / path.lstrip("/") / "cgroup.procs").write_text(str(pid))
        for group in made:
            with contextlib.suppress(OSError):
                group.rmdir()
