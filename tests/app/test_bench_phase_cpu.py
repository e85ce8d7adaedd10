"""bench/protocol_clients.py's `PhaseCPU` (the concurrency bench's CPU lines): its sampling
process reads the CPU of the bench's processes from /proc from `begin()` to `stop()` and then
ends, and the timeline shows a busy process's CPU in the windows it ran in, with the jobs that
COMPLETED in each."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.protocol_clients import PhaseCPU, short_group

# a child of this process that, once told to, spends 1 s of CPU (whatever the machine's load),
# says so, and stays until its input closes: the sampler's last sample still finds it (the CPU
# of a process that ended counts only up to the sample before its end). The test asks for 0.4 s
# of it between the first and the last sample: a first sample taken late on a busy machine
# still leaves that.
BUSY = ("import sys, time\nsys.stdin.readline()\nwhile time.process_time() < 1.0: pass\n"
        "print('spent', flush=True)\nsys.stdin.read()")  # fmt: skip
OTHER = "other (bench, playwright)"  # the group of a process no GROUPS marker names


def test_the_sampler_sees_a_busy_process_and_ends_when_stopped():
    busy = subprocess.Popen(
        [sys.executable, "-c", BUSY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    phase = PhaseCPU()  # finds the busy child among this process's descendants
    t0 = time.time()
    phase.begin()
    busy.stdin.write("go\n")
    busy.stdin.flush()
    assert busy.stdout.readline() == "spent\n"  # its 1 s is spent
    phase.stop()  # the last sample: the busy child is still there
    busy.communicate(timeout=60)
    assert phase._proc.returncode == 0  # the sampling process ended with its input
    first, last = phase.samples[0][1], phase.samples[-1][1]
    assert last[OTHER] - first.get(OTHER, 0.0) >= 0.4  # /proc counts in 10 ms ticks
    sampled = (phase.samples[0][0] + phase.samples[-1][0]) / 2  # within the sampled span
    lines = phase.timeline(t0, ends=[sampled, t0 + 600])  # the second after every window
    head, rows = lines[0], lines[1:]  # other groups too where this runs beside the suite's
    assert short_group(OTHER) in head.split() and "COMPLETED" in head
    assert rows and sum(int(row.split()[-1]) for row in rows) == 1
    column = head.split().index(short_group(OTHER)) - 1  # "from s" is one column, two words
    assert max(float(row.split()[column]) for row in rows) > 0.3  # cores while it ran


def test_every_group_has_a_one_word_label():
    """The timeline's columns are read by their labels (here too): one word each, all apart."""
    from bench.studio_concurrency import GROUPS

    labels = [short_group(group) for _, group in GROUPS] + [short_group(OTHER)]
    assert all(label and len(label.split()) == 1 for label in labels), labels
    assert len(set(labels)) == len(labels), labels
    assert short_group("stack: ComfyUI emulators") == "emulators"
    assert short_group("studio (python -m app)") == "studio"
