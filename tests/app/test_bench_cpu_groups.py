"""bench/cpu_groups.py (the concurrency bench's `--isolate`): a process moved into a CPU group of
its own is in it while the block runs (Linux says so in /proc/<pid>/cgroup), and back in the
group it was in, with the new group gone, after it. The group weighs as much as ~256 processes.
Needs root and cgroup v1's cpu hierarchy: elsewhere the bench refuses `--isolate` with the
reason, and so does this test."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cpu_groups import SHARES, available, cpu_group, isolated


def test_a_process_runs_in_its_own_cpu_group_and_comes_back_after():
    why = available()
    if why:
        pytest.skip(f"--isolate cannot run here: {why}")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        before = cpu_group(child.pid)
        with isolated({"one": [child.pid]}) as groups:
            (group,) = groups
            assert cpu_group(child.pid) == "/" + group.name
            assert str(child.pid) in (group / "cgroup.procs").read_text().split()
            # weighed as ~256 processes: one of 1024 would get no more than one process does
            assert int((group / "cpu.shares").read_text()) == SHARES
        assert cpu_group(child.pid) == before
        assert not group.exists()
    finally:
        child.kill()
        child.wait()


def test_without_a_cpu_hierarchy_it_says_why(tmp_path):
    assert "no cgroup v1 cpu hierarchy" in available(tmp_path)
    refused = pytest.raises(RuntimeError, match="--isolate: no cgroup v1 cpu hierarchy")
    with refused, isolated({"one": [1]}, root=tmp_path):
        pass
