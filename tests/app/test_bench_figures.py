"""Three of the concurrency bench's lines: how fast the host is (`reference_cpu_ms`, so runs on
different hosts are not compared as if alike), the ratio split at the last job's /run answer
and COMPLETED (`last_job`): the three parts add up to the ratio, and the middle one is RunPod's
side, not the studio's; and one page's browser CPU by phase (`page_phases`)."""

from __future__ import annotations

from types import SimpleNamespace

from bench.protocol_clients import last_job
from bench.studio_concurrency import page_phases, reference_cpu_ms


def row(rid: str, created: float, sent: float, seen: float, stored: float, exec_s: float):
    return SimpleNamespace(
        id=rid,
        created_at=created,
        submitted_at=sent,
        completed_seen_at=seen,
        stored_at=stored,
        execution_ms=exec_s * 1000,
    )


def test_the_reference_loop_counts_cpu_in_proportion_to_its_work():
    small, large = reference_cpu_ms(rounds=1, n=200_000), reference_cpu_ms(rounds=1, n=2_000_000)
    assert 0 < small < large
    assert large > 4 * small  # ten times the loop: far more CPU whatever the load (CPU, not wall)


def test_the_ratio_splits_into_the_studios_submit_runpods_side_and_the_studios_end():
    rows = [
        row("a", 100.2, 100.3, 106.0, 106.1, 5.0),  # stored first
        row("b", 100.9, 101.0, 107.6, 107.8, 6.0),  # the last stored, and the slowest
    ]
    done = {"a": 105.9, "b": 107.5}  # COMPLETED on RunPod
    text = last_job(rows, t_start=100.0, done=done, median=5.0)
    first, split = text.splitlines()
    assert "the last job stored (executionTime 6.00 s)" in first
    assert "ledger row 0.90 s, /run answered 1.00 s, COMPLETED 7.50 s" in first
    assert "seen 7.60 s, stored 7.80 s" in first
    # 1.0 s to /run answered, 6.5 s on RunPod's side, 0.3 s to stored; over the median 5 s
    assert "0.20 (first request -> /run answered) + 1.30 (RunPod's queue and run)" in split
    assert "+ 0.06 (COMPLETED -> stored)" in split
    assert split.endswith("the slowest job's executionTime alone is 1.20 of the median")
    parts = [float(p.split()[0]) for p in split.split(": ", 1)[1].split(";")[0].split(" + ")]
    assert round(sum(parts), 2) == round((107.8 - 100.0) / 5.0, 2)  # they add up to the ratio


def snap(renderer: float, gpu: float, studio: float = 0.0) -> dict:
    """A cpu_snapshot: pid -> (group, CPU seconds so far)."""
    return {
        1: ("browser: page renderers", renderer),
        2: ("browser: GPU process (compositing)", gpu),
        3: ("studio (python -m app)", studio),  # not the browser's: left out
    }


def test_a_pages_cpu_by_phase_counts_the_browser_between_the_marks(capsys):
    idle = (snap(1.0, 0.5), snap(1.04, 0.51, studio=9.0), 5.0)  # 50 ms in 5 s: 10 ms/s
    samples = [  # (wall time, CPU so far), the click at t=100
        (100.0, snap(2.0, 1.0)),
        (100.5, snap(2.08, 1.01)),
        (101.05, snap(2.11, 1.02, studio=3.0)),  # past the first second: not its figure
        (103.0, snap(2.13, 1.03)),
        (105.1, snap(2.16, 1.04)),  # COMPLETED at 105.2: the last sample before it
        (105.3, snap(2.25, 1.06)),
        (105.6, snap(2.27, 1.07)),  # the video playable
    ]
    page_phases(idle, samples, t_start=100.0, completed=105.2)
    line = capsys.readouterr().out.strip()
    assert line.startswith("one page's browser CPU by phase: idle before the click 10.0 ms/s;")
    assert "the click's first second 0.090 cpu-s" in line  # 100.5: 0.08 + 0.01
    # from the first second's last sample (100.5) to COMPLETED's (105.1): 0.08 + 0.03 in 4.2 s
    assert "following (4.2 s, to COMPLETED) 0.110 cpu-s = 26.2 ms/s" in line
    assert line.endswith("the end (COMPLETED -> playable, 0.4 s) 0.140 cpu-s")  # 0.11 + 0.03
