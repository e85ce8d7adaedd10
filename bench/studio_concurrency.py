"""Studio concurrency bench: N simultaneous browser users, each running one ~5 s emulated job.

    .venvs/app/bin/python bench/studio_concurrency.py [--users 32] [--job-s 5] [--poll-s 1.0]
                                                      [--browser-nice 19] [--settle-s 10]
    .venvs/app/bin/python bench/studio_concurrency.py --mode protocol --users 64
                                                      [--replicas 2 --database postgresql]
                                                      [--history-on-screen] [--webhooks]
                                                      [--profile DIR] [--api-latency-ms 150]
                                                      [--isolate]

`--mode protocol` (bench/protocol_clients.py): clients that follow the same events a page follows,
without rendering; its figures are the studio's own path and CPU, see that module. As the
browsers below, the clients would run on the users' machines: they run niced (--clients-nice, 0
to share the studios' priority); the stack stands in for RunPod's machines (--stack-nice, default
0: its /run answers and job times are part of the studio's path). Other tenants of the machine
are not niced: note the load average with every figure. `--isolate` puts each studio and the
control plane in a CPU group of its own, as on machines of their own (bench/cpu_groups.py): what
the studio's path takes then is its own, not the share of ~130 stand-in processes it gets.

Starts the local stack (one ComfyUI emulator per worker, N real worker processes behind the local
RunPod control plane), a studio (`python -m app`) pointed at it, and one headless Chromium with
N pages. Every page fills the form and all press Generate together. Prints:
- wall time from the first click to the last video being playable, as a ratio to the job length
  (target <= 1.2);
- the CPU one page's browser used while it followed its job, as a share of a core
  (target <= 0.05; meaningful with --users 1);
- per job, the delay from the endpoint's COMPLETED (submit time + delayTime + executionTime, from
  the studio's ledger) to the video being playable in the page (target <= 1 s plus download);
- with --users 1, that CPU by phase: the idle page before the click (ms per second), the
  click's first second, following the job (to COMPLETED) and the end (to the video playable):
  where a page's share goes (`page_phases`).
It also prints where the CPU went (the bench's own process tree: Chromium, studio, stack) and
where each job's time went (ledger timestamps and the pages' video events).
The pages are measured as served; only their CPU priority differs: the users' browsers would
run on their own machines, so here they run niced (--browser-nice, 0 to share the studio's
priority). Needs /usr/bin/chromium (scripts/ensure-chromium.sh).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.cpu_groups import available, isolated  # noqa: E402
from bench.protocol_clients import fields_cpu, stat_fields  # noqa: E402
from emulators.stack import LocalStack, StackConfig  # noqa: E402

# Each page records the moment its result video can play ("loadeddata" / "canplay" do not
# bubble: listen in the capture phase) and reports it with one console message: the bench
# polls no page (32 pages polled twice a second cost a tenth of this 2-core machine).
RECORD_READY_JS = """
window.__wpReady = 0;
document.addEventListener('loadstart', (e) => {
  if (e.target && e.target.tagName === 'VIDEO' && e.target.closest('#wp-video')
      && String(e.target.currentSrc || e.target.src || '').length > 0) {
    console.info('wp-src ' + Date.now());
  }
}, true);
const mark = (e) => {
  const v = e.target;
  if (v && v.tagName === 'VIDEO' && v.closest('#wp-video') && v.readyState >= 2 && v.duration > 0
      && !window.__wpReady) {
    window.__wpReady = Date.now();
    console.info('wp-ready ' + window.__wpReady);
  }
};
document.addEventListener('loadeddata', mark, true);
document.addEventListener('canplay', mark, true);
"""


STUDIO = "studio (python -m app)"  # a studio's group
GROUPS = (  # cmdline marker -> group, first match wins
    ("chromium --type=renderer", "browser: page renderers"),
    ("chromium --type=gpu-process", "browser: GPU process (compositing)"),
    ("chromium", "browser: main + utility processes"),
    ("-m app", STUDIO),
    ("emulators.runpod", "stack: RunPod control plane"),
    ("emulators.comfyui", "stack: ComfyUI emulators"),
    ("worker.handler", "stack: workers"),
)


def cpu_snapshot() -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by this bench's processes (itself and all its descendants: the
    stack, the studio, Playwright's driver and Chromium), each with its group (see GROUPS)."""
    stats: dict[int, tuple[int, float, str]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = stat_fields(Path(f"/proc/{pid}/stat"))
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        stats[int(pid)] = (int(fields[1]), sum(fields_cpu(fields)), cmd)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, tuple[str, float]] = {}
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        if pid in stats:
            _, used, cmd = stats[pid]
            group = next((g for marker, g in GROUPS if marker in cmd), "other (bench, playwright)")
            out[pid] = (group, used)
    return out


def cpu_report(before: dict[int, tuple[str, float]], seconds: float) -> dict[str, float]:
    """Print the CPU each group used since `before`; returns it (cpu-s by group)."""
    after = cpu_snapshot()
    used: dict[str, float] = {}
    for pid, (group, total) in after.items():
        used[group] = used.get(group, 0.0) + total - before.get(pid, (group, 0.0))[1]
    cores = os.cpu_count() or 1
    print(f"CPU used from the clicks to the last video ({seconds:.1f} s x {cores} cores):")
    for group, value in sorted(used.items(), key=lambda kv: -kv[1]):
        print(f"  {group:32s} {value:7.1f} cpu-s  ({value / seconds / cores:5.1%} of the machine)")
    return used


def nice_all_but(keep: set[int], niceness: int) -> int:
    """Lower the CPU priority of this bench's child processes except those in `keep` and
    PostgreSQL (the studios' ledger); returns how many were changed."""
    changed = 0
    for pid in cpu_snapshot():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if pid not in keep and pid != os.getpid() and b"postgres" not in cmd:
            try:
                os.setpriority(os.PRIO_PROCESS, pid, niceness)
                changed += 1
            except OSError:  # gone meanwhile
                pass
    return changed


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, deadline_s: float, proc: subprocess.Popen) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"studio exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--job-s", type=float, default=5.0, help="emulated sampling time per job")
    ap.add_argument("--poll-s", type=float, default=1.0, help="studio tracker poll (WANPOD_POLL_S)")
    ap.add_argument(
        "--browser-nice",
        type=int,
        default=19,
        help="CPU niceness of the browsers (0: same priority as the studio and the stack)",
    )
    ap.add_argument(
        "--settle-s",
        type=float,
        default=10.0,
        help="browser mode: seconds between the pages being filled and Generate",
    )
    ap.add_argument("--mode", choices=("browser", "protocol"), default="browser")
    ap.add_argument("--replicas", type=int, default=1, help="studios (protocol mode)")
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument(
        "--clients-nice",
        type=int,
        default=19,
        help="protocol mode: CPU niceness of the clients, the stand-ins for the users' machines "
        "(0: the same priority as the studios)",
    )
    ap.add_argument(
        "--stack-nice",
        type=int,
        default=0,
        help="protocol mode: CPU niceness of the stack, the stand-in for RunPod's machines "
        "(its /run answers and job times are in the studio's path)",
    )
    ap.add_argument(
        "--webhooks",
        action="store_true",
        help="protocol mode: each studio sets WANPOD_PUBLIC_URL to its own address, so /run "
        "carries a webhook and the control plane posts each job's end (polling stays too)",
    )
    ap.add_argument(
        "--history-on-screen",
        action="store_true",
        help="protocol mode: the pages are scrolled down to History's gallery, so each job's end "
        "also refreshes it (page_final instead of page_final_only)",
    )
    ap.add_argument(
        "--api-latency-ms",
        type=float,
        default=0.0,
        help="each answer of the stand-in for RunPod's API waits this long first (RunPod's API is "
        "across the internet from a studio; 0: as fast as this machine)",
    )
    ap.add_argument(
        "--isolate",
        action="store_true",
        help="protocol mode: each studio and the control plane in a CPU group of its own, as on "
        "machines of their own (bench/cpu_groups.py; needs root and cgroup v1's cpu controller)",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="protocol mode: py-spy each studio over the users' window into this folder",
    )
    args = ap.parse_args()
    if args.replicas > 1 and args.database != "postgresql":
        ap.error("--replicas > 1 needs --database postgresql (one shared ledger)")
    if args.isolate and (why := available()):
        ap.error(f"--isolate: {why}")
    steps = 4  # T2V 14B turbo: 2 + 2 KSamplerAdvanced steps
    work = Path(tempfile.mkdtemp(prefix="wanpod-bench-"))
    cfg = StackConfig(
        workers=args.users,
        step_delay=args.job_s / steps,
        comfy_args=("--video-max-side", "96"),
        plane_args=("--api-latency", str(args.api_latency_ms / 1000)),
        work_dir=work / "stack",
        ready_timeout_s=600,
    )
    rc = 1
    try:
        rc = run(args, cfg, work)
        return rc
    finally:
        if rc == 0:  # ~5 MB a run (the stack's and studios' videos, ledgers and logs)
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"this run's logs and data are kept in {work}")


def reference_cpu_ms(rounds: int = 3, n: int = 2_000_000) -> float:
    """CPU milliseconds one thread of this host takes for a fixed pure-Python loop (the best of
    `rounds`): how fast this host runs the studio's kind of work. Compare runs only where this
    figure is about the same (docs/studio.md says how far the figures moved between hosts)."""
    best = float("inf")
    for _ in range(rounds):
        t, total = time.process_time(), 0
        for i in range(n):
            total += i & 7
        best = min(best, time.process_time() - t)
    return best * 1000


def run(args: argparse.Namespace, cfg: StackConfig, work: Path) -> int:
    print(
        f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; a reference "
        f"Python loop takes {reference_cpu_ms():.0f} ms of CPU here (lower is faster; compare "
        "runs only where it is about the same)"
    )
    t0 = time.monotonic()
    if args.mode == "protocol":
        return protocol_mode(args, cfg, work)
    with LocalStack(cfg) as stack:
        print(f"stack: {args.users} workers + emulators ready in {time.monotonic() - t0:.1f} s")
        port = free_port()
        data = work / "studio"
        env = {
            **os.environ,
            **stack.env(),
            "WANPOD_DATA_DIR": str(data),
            "GRADIO_SERVER_PORT": str(port),
            "WANPOD_POLL_S": str(args.poll_s),
            "WANPOD_CONCURRENCY": str(max(64, args.users * 2)),
        }
        log = (work / "studio.log").open("wb")
        studio = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/gradio_api/info", 120, studio)
            return run_browsers(url, args, data)
        finally:
            studio.terminate()
            studio.wait(20)


def protocol_mode(args: argparse.Namespace, cfg: StackConfig, work: Path) -> int:
    from contextlib import ExitStack

    from bench.protocol_clients import AnswerProbe, PhaseCPU, run_protocol
    from tests.app.test_api import args as api_args

    with ExitStack() as stack_ctx:
        ledger_url = ""
        if args.database == "postgresql":
            from tests.postgres import PostgresCluster, bindir

            found = bindir()
            if found is None:
                print("PostgreSQL is not installed: scripts/ensure-postgresql.sh")
                return 1
            ledger_url = stack_ctx.enter_context(PostgresCluster(found)).new_database()
        t0 = time.monotonic()
        stack = stack_ctx.enter_context(LocalStack(cfg))
        print(f"stack: {args.users} workers + emulators ready in {time.monotonic() - t0:.1f} s")
        urls, procs, dirs = [], [], []
        for i in range(args.replicas):
            port, data = free_port(), work / f"studio{i}"
            env = {
                **os.environ,
                **stack.env(),
                "WANPOD_DATA_DIR": str(data),
                "GRADIO_SERVER_PORT": str(port),
                "WANPOD_POLL_S": str(args.poll_s),
                "WANPOD_CONCURRENCY": str(max(64, args.users * 2)),
                "WANPOD_DATABASE_URL": ledger_url,
            }
            if args.webhooks:
                env["WANPOD_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
            log = (work / f"studio{i}.log").open("wb")
            procs.append(subprocess.Popen([sys.executable, "-m", "app"], cwd=REPO, env=env,
                                          stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
            stack_ctx.callback(procs[-1].wait, 20)
            stack_ctx.callback(procs[-1].terminate)
            urls.append(f"http://127.0.0.1:{port}")
            dirs.append(data)
        for url, proc in zip(urls, procs, strict=True):
            wait_http(url + "/gradio_api/info", 120, proc)
        if args.stack_nice:
            n = nice_all_but({p.pid for p in procs}, args.stack_nice)
            print(f"the stack ({n} processes) runs at nice {args.stack_nice}")
        if args.isolate:  # each studio and the control plane in a CPU group of its own
            plane = [p.pid for p in stack.procs if "emulators.runpod" in p.args]
            groups = {f"studio{i}": [p.pid] for i, p in enumerate(procs)} | {"plane": plane}
            stack_ctx.enter_context(isolated(groups))
            print(f"CPU groups of their own (bench/cpu_groups.py): {', '.join(groups)}")
        probe = AnswerProbe(f"{stack.base_url}/health", {"Authorization": stack.api_key})
        stack_ctx.callback(probe.stop)
        phase = PhaseCPU()  # like the probe: started before the clients are niced
        if args.clients_nice:
            os.nice(args.clients_nice)  # this thread: the clients' threads start from it
        print(f"the clients run at nice {args.clients_nice}, the stack at {args.stack_nice}, "
              "the studios and PostgreSQL at 0")  # fmt: skip
        ledger_url = ledger_url or f"sqlite:///{dirs[0] / 'ledger.sqlite3'}"
        return run_protocol(
            urls, procs, args.users, ledger_url, dirs, args.job_s,
            lambda i: api_args(prompt=f"bench user {i}: a kite over the sea", seconds=5.0),
            stack.job_times,
            profile_dir=args.profile, history_on_screen=args.history_on_screen, probe=probe,
            phase=phase,
        )  # fmt: skip


def run_browsers(url: str, args: argparse.Namespace, data: Path) -> int:
    from playwright.sync_api import sync_playwright

    from tests.app.test_browser import QUOTED_JS  # when the quote line prices the typed form

    if args.browser_nice:
        # The users' browsers run on their own machines, not on the studio's: started from
        # here on, Playwright and Chromium inherit a lower CPU priority than the studio and the
        # stack (started above), so 32 co-located renderers take only the CPU those leave.
        os.nice(args.browser_nice)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        pages = []
        ready: dict[int, int] = {}  # page number -> ms when its video became playable

        src: dict[int, int] = {}  # page number -> ms when its video element got the file's URL

        def on_console(i: int, msg) -> None:
            if msg.text.startswith("wp-ready "):
                ready.setdefault(i, int(msg.text.split()[1]))
            elif msg.text.startswith("wp-src "):
                src[i] = int(msg.text.split()[1])

        t_load = time.monotonic()
        for i in range(args.users):
            ctx = browser.new_context()
            ctx.add_init_script(RECORD_READY_JS)
            page = ctx.new_page()
            page.on("console", lambda msg, i=i: on_console(i, msg))
            page.set_default_timeout(300_000)
            page.goto(url)
            page.locator("#wp-prompt textarea").fill(f"bench user {i}: a kite over the sea")
            page.locator("#wp-generate").scroll_into_view_if_needed()  # as a user would
            pages.append(page)
        for page in pages:
            # the typed prompt's quote (a form without one is priced too, beside its refusal)
            page.wait_for_function(QUOTED_JS)
        print(f"{args.users} pages loaded and filled in {time.monotonic() - t_load:.1f} s")
        # A user fills the form before pressing Generate: the browser's own work after it
        # started (Chromium runs deferred start-up tasks seconds after launch) and the pages'
        # after loading are not what following a job costs.
        time.sleep(max(args.settle_s - IDLE_S, 0.0))
        idle_from, idle_t0 = cpu_snapshot(), time.monotonic()
        time.sleep(IDLE_S)
        idle = (idle_from, cpu_snapshot(), time.monotonic() - idle_t0)
        # every page presses Generate at the same wall-clock moment (a timer set in each page),
        # focused as a click focuses it (the prompt's caret, blinking, would draw frames)
        start_ms = int(time.time() * 1000) + 1000 + 60 * len(pages)
        for page in pages:
            page.evaluate(
                "setTimeout(() => { window.__wpClick = Date.now();"
                " const b = document.querySelector('#wp-generate');"
                " b.focus({preventScroll: true}); b.click(); },"
                f" {start_ms} - Date.now())"
            )
        t_start = start_ms / 1000
        time.sleep(max(t_start - time.time(), 0))
        cpu_before = cpu_snapshot()
        # one page's CPU by phase: (wall time, CPU so far) every ~0.1 s (not with many pages:
        # reading /proc for ~130 processes ten times a second would load the machine measured)
        samples = [(time.time(), cpu_before)]
        deadline = time.monotonic() + 300
        while len(ready) < len(pages) and time.monotonic() < deadline:
            pages[0].wait_for_timeout(100)  # lets Playwright deliver the pages' console events
            if len(pages) == 1:
                samples.append((time.time(), cpu_snapshot()))
        if len(ready) < len(pages):
            print(f"only {len(ready)} of {len(pages)} videos became playable within 300 s")
            return 1
        t_end = max(ready.values()) / 1000
        window = time.time() - t_start
        used = cpu_report(cpu_before, window)
        page_cpu = sum(v for g, v in used.items() if g.startswith("browser"))
        fired = sorted(int(p.evaluate("window.__wpClick || 0")) for p in pages)
        browser.close()
    wall = t_end - t_start
    jobs = completed_jobs(data)
    delays = [ready[u] / 1000 - job.completed for u, job in jobs.items() if u in ready]
    execs = [job.exec_ms / 1000 for job in jobs.values()]
    print(
        f"users: {args.users}, job: {args.job_s:.1f} s emulated sampling, "
        f"tracker poll {args.poll_s:.2f} s, pages as served, browsers at nice {args.browser_nice}"
    )
    print(
        f"clicks fired {fired[0] - start_ms} ms to {fired[-1] - start_ms} ms after the agreed"
        " moment (t0)"
    )
    print(f"executionTime per job: median {statistics.median(execs):.2f} s, max {max(execs):.2f} s")
    print(f"wall time, first click -> last video playable: {wall:.2f} s")
    print(f"ratio to {args.job_s:.1f} s: {wall / args.job_s:.2f} (target <= 1.2)")
    print(
        f"one page following its job: {page_cpu / len(pages):.2f} cpu-s of the browser in "
        f"{window:.1f} s = {page_cpu / len(pages) / window:.3f} of a core (target <= 0.05)"
    )
    if delays:
        delays.sort()
        p90 = delays[max(int(len(delays) * 0.9) - 1, 0)]
        print(
            f"COMPLETED -> playable in page: median {statistics.median(delays):.2f} s, "
            f"p90 {p90:.2f} s, max {max(delays):.2f} s (target <= 1 s plus download)"
        )
    breakdown(jobs, t_start, src, ready)
    if jobs and len(pages) == 1:
        page_phases(idle, samples, t_start, min(j.completed for j in jobs.values()))
    return 0


IDLE_S = 5.0  # the last seconds of --settle-s, measured: the page's CPU with nothing to follow


def browser_cpu(snapshot: dict[int, tuple[str, float]]) -> float:
    """The browsers' CPU seconds in a `cpu_snapshot`."""
    return sum(used for group, used in snapshot.values() if group.startswith("browser"))


def page_phases(
    idle: tuple[dict, dict, float],
    samples: list[tuple[float, dict]],
    t_start: float,
    completed: float,
) -> None:
    """Print one page's browser CPU by phase: idle before the click (`idle`: snapshots and
    seconds), then, from `samples` taken while the page followed its job, the click's first
    second, following up to the job's COMPLETED, and from there to the end of the samples."""
    before, after, idle_s = idle
    rate = (browser_cpu(after) - browser_cpu(before)) / idle_s
    marks = [t_start, t_start + 1.0, max(completed, t_start + 1.0), samples[-1][0]]

    def cpu_at(t: float) -> float:  # the last sample at or before t (the first if none)
        return browser_cpu(([snap for at, snap in samples if at <= t] or [samples[0][1]])[-1])

    used = [cpu_at(b) - cpu_at(a) for a, b in itertools.pairwise(marks)]
    follow_s = max(marks[2] - marks[1], 1e-9)
    print(
        f"one page's browser CPU by phase: idle before the click {rate * 1000:.1f} ms/s; "
        f"the click's first second {used[0]:.3f} cpu-s; following ({follow_s:.1f} s, to "
        f"COMPLETED) {used[1]:.3f} cpu-s = {used[1] / follow_s * 1000:.1f} ms/s; the end "
        f"(COMPLETED -> playable, {marks[3] - marks[2]:.1f} s) {used[2]:.3f} cpu-s"
    )


@dataclass(frozen=True)
class Job:
    """One COMPLETED ledger row's timestamps (seconds, epoch) and RunPod's timings (ms)."""

    created: float
    submitted: float
    delay_ms: int
    exec_ms: int
    seen: float
    stored: float

    @property
    def completed(self) -> float:
        """When the endpoint's job ended: submit time + delayTime + executionTime."""
        return self.submitted + (self.delay_ms + self.exec_ms) / 1000


def completed_jobs(data: Path) -> dict[int, Job]:
    """The studio ledger's COMPLETED rows by page number (their prompt says "bench user i")."""
    con = sqlite3.connect(data / "ledger.sqlite3")
    rows = con.execute(
        "SELECT created_at, submitted_at, delay_ms, execution_ms, completed_seen_at, stored_at,"
        " params FROM jobs WHERE state='COMPLETED'"
    ).fetchall()
    con.close()
    jobs = {}
    for created, submitted, delay_ms, exec_ms, seen, stored, params in rows:
        user = int(json.loads(params)["prompt"].split(":")[0].split()[-1])
        jobs[user] = Job(created, submitted, delay_ms or 0, exec_ms or 0, seen, stored)
    return jobs


def breakdown(
    jobs: dict[int, Job], t_start: float, src: dict[int, int], ready: dict[int, int]
) -> None:
    """Where each job's time went, from the ledger's timestamps and the pages' events."""
    parts: dict[str, list[float]] = {}
    for user, job in jobs.items():
        steps = [
            ("first click -> ledger row", job.created - t_start),
            ("ledger row -> /run answered", job.submitted - job.created),
            ("delayTime (queue + pick-up)", job.delay_ms / 1000),
            ("executionTime", job.exec_ms / 1000),
            ("COMPLETED -> tracker saw it", job.seen - job.completed),
            ("tracker saw it -> stored", job.stored - job.seen),
        ]
        if user in src and user in ready:
            steps.append(("stored -> page has the video", src[user] / 1000 - job.stored))
            steps.append(("page has it -> playable", (ready[user] - src[user]) / 1000))
        for name, value in steps:
            parts.setdefault(name, []).append(value)
    for name, values in parts.items():
        print(f"  {name:30s} median {statistics.median(values):6.2f} s  max {max(values):6.2f} s")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
