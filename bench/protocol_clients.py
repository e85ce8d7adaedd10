"""The protocol-level client mode of bench/studio_concurrency.py: N users that follow the same
events a page follows (the page's Generate and end-of-job events, each as the page makes it,
direct or over Gradio's queue, and the job's live stream, app/ui/live_route.py), without
rendering (`PageProtocol`). Optionally two studio
replicas on one PostgreSQL ledger, the users split across them. Prints the issue's figures:
- the studio's own path, first request -> last video stored (from the ledger), as a ratio to the
  median executionTime (target <= 1.15);
- the studios' CPU per job (target <= 0.05 cpu-s), and an idle studio's CPU with no page open
  (target <= 1 % of a core), measured before the users arrive;
- with two replicas, that no job was followed (stored) by both;
- where the machine's CPU went over the same window (the studios, the stack, these clients), so
  a figure missed on a small shared machine can be told from one the studio misses itself;
- who had the CPU while the studio submitted the burst (`PhaseCPU`: the studio, the stand-in
  workers, emulators and control plane, these clients), from the first request to the last /run
  answered;
- how fast the stand-in for RunPod's API answered meanwhile (`AnswerProbe`): when it is slow, a
  job's end is seen late, and the studio's path is longer, for a reason that is not the studio's;
- how many /status calls that stand-in answered per job (the trackers' polls).
`profile_dir`: also record each studio with py-spy (`pip install py-spy`, a dev tool, not in the
requirements) over the users' window only, `--gil` (the samples that hold Python's lock: what
one studio process can do at a time), as collapsed stacks `studio<i>.raw`, and this process's
clients as `clients.raw`.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HZ = os.sysconf("SC_CLK_TCK")
IDLE_S = 20.0  # how long the idle studios are measured


def stat_fields(stat: Path) -> list[str]:
    """The fields of a /proc `stat` file after the command's name: [1] is the parent's pid."""
    return stat.read_text().rsplit(")", 1)[1].split()


def fields_cpu(fields: list[str]) -> tuple[float, float]:
    """(user CPU s, system CPU s) from a /proc `stat` file's `stat_fields`."""
    return int(fields[11]) / HZ, int(fields[12]) / HZ


def stat_cpu(stat: Path) -> tuple[float, float]:
    """(user CPU s, system CPU s) from a /proc `stat` file (a process's or one thread's)."""
    return fields_cpu(stat_fields(stat))


def proc_split(pid: int) -> tuple[float, float, int]:
    """(user CPU s, system CPU s, context switches) of process `pid` so far, all its threads."""
    user, system = stat_cpu(Path(f"/proc/{pid}/stat"))
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    switches += int(line.split()[-1])
        except OSError:
            continue
    return user, system, switches


def proc_cpu(pid: int) -> float:
    """CPU seconds used so far by process `pid` and its threads."""
    user, system, _ = proc_split(pid)
    return user + system


class PageProtocol:
    """One studio's Generate as a page follows it: the page's own event (`page_generate`, one
    direct POST to /gradio_api/run/predict as the page makes it, with the event's inputs; a
    State input is sent as null: it lives in the studio; over the queue, `event`, when the page
    config says it takes one), answering the job's first view (its id), then the job's live
    stream (`GET /wanpod/live/<job id>`, app/ui/live_route.py) to the final panel, then the
    page's end-of-job event as the panel's script clicks it (`page_final_only`: the final view,
    the session's strip, one direct POST; `history_on_screen`: `page_final` over the queue, the
    History gallery too, as for a page scrolled down to that gallery), then GET the result
    video's URL, as the page's <video> does. All users share one asyncio loop
    and one HTTP connection pool: the clients stand in for the users' own machines, so they are
    kept light (gradio_client spends a thread per call and polls its message queue every 50
    ms; at 64 users it took more CPU than the studio itself)."""

    def __init__(self, url: str, config: dict[str, Any], history_on_screen: bool = False) -> None:
        self.url = url.rstrip("/")
        deps = config["dependencies"]
        self.comps = {c["id"]: c for c in config["components"]}
        self.generate_dep = next(d for d in deps if d.get("api_name") == "page_generate")
        end = "page_final" if history_on_screen else "page_final_only"
        self.final_dep = next(d for d in deps if d.get("api_name") == end)
        video = next(i for i, c in self.comps.items()
                     if c.get("props", {}).get("elem_id") == "wp-video")  # fmt: skip
        self.video_at = self.final_dep["outputs"].index(video)
        self.updates: list[int] = []  # per finished job: the live panels it was sent
        self.first_request: float | None = None  # when this page's first Generate was sent

    def payload(self, dep: dict[str, Any], session_hash: str, data: list[Any]) -> dict[str, Any]:
        trigger = dep["targets"][0][0] if dep.get("targets") else None
        return {"data": data, "fn_index": dep["id"], "trigger_id": trigger, "event_data": None,
                "session_hash": session_hash}  # fmt: skip

    def generate_data(self, args: list[Any]) -> list[Any]:
        """The Generate event's inputs: `args` in order, null for each State."""
        values = iter(args)
        return [None if self.comps[i].get("type") == "state" else next(values)
                for i in self.generate_dep["inputs"]]  # fmt: skip

    def final_data(self, rid: str) -> list[Any]:
        """The end event's inputs as the page has them: the job id, the rest as served."""
        data = []
        for i in self.final_dep["inputs"]:
            comp = self.comps[i]
            props = comp.get("props", {})
            if comp.get("type") == "state":
                data.append(None)
            else:
                data.append(rid if props.get("elem_id") == "wp-job" else props.get("value"))
        return data

    async def event(self, http: Any, dep: dict[str, Any], data: list[Any]) -> list[Any]:
        """One of the page's events over Gradio's queue: its final outputs (raises on an
        error message)."""
        import json
        import uuid

        session = uuid.uuid4().hex[:11]
        if dep.get("queue") is False:  # a direct call, as Gradio's client makes it: one POST
            answer = await http.post(f"{self.url}/gradio_api/run/predict",
                                     json=self.payload(dep, session, data))  # fmt: skip
            if answer.status_code != 200:
                raise RuntimeError(f"{dep.get('api_name')} failed: {answer.text[:300]}")
            return answer.json()["data"]
        join = await http.post(f"{self.url}/gradio_api/queue/join",
                               json=self.payload(dep, session, data))  # fmt: skip
        join.raise_for_status()
        event_id = join.json()["event_id"]
        params = {"session_hash": session}
        async with http.stream("GET", f"{self.url}/gradio_api/queue/data", params=params) as r:
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") != event_id:
                    continue
                if msg["msg"] != "process_completed":
                    continue
                if not msg.get("success"):
                    raise RuntimeError(f"{dep.get('api_name')} failed: {msg.get('output')}")
                return msg["output"]["data"]
        raise RuntimeError(f"{dep.get('api_name')}: the event stream ended without a result")

    async def live(self, http: Any, rid: str) -> int:
        """Follow the job's live stream to its final panel; how many panels came."""
        import json

        panels = 0
        async with http.stream("GET", f"{self.url}/wanpod/live/{rid}") as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    panels += 1
                    if json.loads(line[5:])["final"]:
                        break
        return panels

    async def generate(self, http: Any, args: list[Any]) -> list[Any]:
        """The end event's outputs of one Generate; the video fetched."""
        if self.first_request is None:  # one loop: the first user here is the earliest
            self.first_request = time.time()
        first = await self.event(http, self.generate_dep, self.generate_data(args))
        rid = first[3]
        if not rid:
            raise RuntimeError(f"Generate: no job ({first[0]})")
        self.updates.append(await self.live(http, rid))
        output = await self.event(http, self.final_dep, self.final_data(rid))
        video = output[self.video_at] or {}
        if video.get("url"):
            async with http.stream("GET", video["url"]) as r:
                r.raise_for_status()
                async for _ in r.aiter_bytes():
                    pass
        return output


class AnswerProbe:
    """How fast the stand-in for RunPod's API answers while the users run: GET `url` (its
    /health, answered by the same event loop as /run and /status) every PROBE_EVERY_S from a
    thread of its own. Started before the clients are niced, it runs at the studios' priority,
    so its times are the control plane's, not this process's. On RunPod that API is RunPod's
    own service; here it shares the 2 cores with the 128 processes that stand in for the
    machines, and a slow answer to the tracker's /status delays when a job's end is seen."""

    PROBE_EVERY_S = 0.25

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        import threading

        self.url, self.headers = url, headers
        self.times: list[tuple[float, float]] = []  # (when asked, seconds to the answer)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="answer-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import urllib.request

        while not self._stop.wait(self.PROBE_EVERY_S):
            asked = time.time()
            try:
                req = urllib.request.Request(self.url, headers=self.headers)
                with urllib.request.urlopen(req, timeout=30) as answer:
                    answer.read()
            except OSError:
                continue
            self.times.append((asked, time.time() - asked))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(35)

    def summary(self, t0: float, t1: float) -> str:
        took = sorted(s for t, s in self.times if t0 <= t <= t1)
        if not took:
            return "RunPod stand-in's answers: none probed"
        slow = [s for s in took if s > 0.5]
        return (
            f"RunPod stand-in's answers (/health every {self.PROBE_EVERY_S} s): median "
            f"{statistics.median(took) * 1000:.0f} ms, max {took[-1] * 1000:.0f} ms; "
            f"{len(slow)} of {len(took)} over 0.5 s ({sum(slow):.1f} s in all)"
        )


SHORT = {  # column labels of the groups whose short name has spaces
    "ComfyUI emulators": "emulators",
    "RunPod control plane": "plane",
    "page renderers": "renderers",
    "GPU process": "gpu",
    "main + utility processes": "chromium",
}


def short_group(group: str) -> str:
    """A one-word column label for one of bench/studio_concurrency.py's GROUPS: `stack:
    workers` -> `workers`, `studio (python -m app)` -> `studio`."""
    name = group.removeprefix("stack: ").removeprefix("browser: ").split(" (")[0]
    return SHORT.get(name, name).replace(" ", "-")


class PhaseCPU:
    """Who had the CPU while the studio submitted the burst (first request -> last /run
    answered): the bench's process groups (bench/studio_concurrency.py's GROUPS) sampled every
    EVERY_S for the first FOR_S after `begin()`, then every LATER_EVERY_S until `stop()`, by a
    sampling process of its own (`sample_groups`), started before the clients are niced. A
    process, not a thread of this one: here a thread waits for Python's lock, which the niced
    clients' thread holds while the machine runs everything else first, and its samples came up
    to a second late in the busiest stretches. Each sample reads only the /proc stat files of
    the processes found at the start (~200 files: ~2 ms), so the sampler takes little of what it
    measures. The studio's share in the submit phase is what its submits got: 0.35 of a core on
    this 2-core machine in a default run, the stand-in workers 0.88 and their emulators 0.24
    (starting the first jobs; on RunPod they run on machines of their own). With `--isolate`
    the sampler, left in the machine's root group, can be late: the sampled span is printed
    beside the phase's.

    It also sums how long the studios' threads waited on the run queue (runnable, no CPU given:
    /proc's per-thread schedstat), which tells a studio short of CPU from one waiting on
    something else: in default runs its threads waited 1.4 s each second of the phase (about one
    of them always runnable and waiting) while it got a third of a core; sampled every 50 ms, it
    got 0.1-0.25 of a core in the middle of the phase, and 0.4-0.5 with `--isolate`.

    `timeline()`: the cores of each group window by window over the whole users' window, and
    how many jobs COMPLETED in each. It shows what sets the path's end: in default runs the
    emulators encode the 64 videos together at the end (~1.5 cores for ~1 s, the studio's
    threads waiting for a CPU 2-4 s a second meanwhile), the last jobs COMPLETE as that ends,
    and the studio sees and stores them after it."""

    EVERY_S = 0.05
    FOR_S = 3.0
    LATER_EVERY_S = 0.1  # after FOR_S, for the timeline
    LONGEST_S = 600.0  # a sampler never stopped ends by itself
    WAITED = "studio threads waiting for a CPU"

    def __init__(self) -> None:
        from bench.studio_concurrency import REPO, STUDIO, cpu_snapshot

        groups = {pid: group for pid, (group, _) in cpu_snapshot().items()}
        self.samples: list[tuple[float, dict[str, float]]] = []
        code = "from bench.protocol_clients import sample_groups; sample_groups()"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self._proc.stdin is not None
        # STUDIO: the group whose threads' run-queue wait is summed
        self._proc.stdin.write(json.dumps([STUDIO, self.WAITED, groups]) + "\n")
        self._proc.stdin.flush()

    def begin(self) -> None:
        """Start sampling (the users' first request is about to be sent)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps([self.EVERY_S, self.FOR_S, self.LATER_EVERY_S,
                                           self.LONGEST_S]) + "\n")  # fmt: skip
        self._proc.stdin.flush()

    def stop(self) -> None:
        """The users are done: the sampler takes one last sample and ends."""
        out, _ = self._proc.communicate(timeout=30)  # closing its input stops it
        self.samples = [tuple(json.loads(line)) for line in out.splitlines() if line.strip()]

    def timeline(self, t0: float, ends: list[float], window_s: float = 0.5) -> list[str]:
        """Cores of each group per `window_s` from `t0` (the first request), as a table, with
        how many jobs COMPLETED (`ends`, wall times) in each window."""
        points = [(t, used) for t, used in self.samples if t >= t0 - self.EVERY_S]
        if len(points) < 2:
            return ["not sampled"]
        groups = sorted({g for _, used in points for g in used if g != self.WAITED})
        head = f"{'from s':>7} " + " ".join(f"{short_group(g):>9}" for g in groups)
        lines = [head + f" {'studio waits':>12} {'COMPLETED':>9}"]
        i = 0
        while i < len(points) - 1:
            j = i + 1
            while j < len(points) - 1 and points[j][0] - points[i][0] < window_s:
                j += 1
            (a_t, _), (b_t, _) = points[i], points[j]
            cores, waits = self._between(points[i], points[j])
            done = sum(a_t <= e < b_t for e in ends)
            lines.append(f"{a_t - t0:7.2f} " + " ".join(f"{cores.get(g, 0.0):9.2f}" for g in groups)
                         + f" {waits:12.2f} {done:9d}")  # fmt: skip
            i = j
        return lines

    def _between(
        self, first: tuple[float, dict[str, float]], last: tuple[float, dict[str, float]]
    ) -> tuple[dict[str, float], float]:
        """Between two samples: the cores each group used, and the studio threads' run-queue
        wait per second."""
        (a_t, a), (b_t, b) = first, last
        rate = {g: (b[g] - a.get(g, 0.0)) / (b_t - a_t) for g in b}
        return {g: c for g, c in rate.items() if g != self.WAITED}, rate.get(self.WAITED, 0.0)

    def summary(self, t0: float, t1: float) -> str:
        """Cores each group used between the samples around `t0` and `t1`."""
        before = [s for s in self.samples if s[0] <= t0] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= t1] or self.samples[-1:]
        if not before or not after or after[0][0] <= before[-1][0]:
            return "submit phase: not sampled"
        (a_t, _), (b_t, _) = before[-1], after[0]
        cores, waited = self._between(before[-1], after[0])
        shares = sorted((c, g) for g, c in cores.items())
        return (
            f"  CPU in the submit phase (first request -> last /run answered, {t1 - t0:.2f} s; "
            f"sampled over {b_t - a_t:.2f} s), in cores: "
            + ", ".join(f"{g} {c:.2f}" for c, g in reversed(shares) if c >= 0.005)
            + f"; the studio's threads meanwhile waited for a CPU {waited:.2f} s a second"
        )


def run_queue_wait(pid: int) -> float:
    """Seconds the threads of process `pid` (those alive now) have waited on a run queue:
    runnable, but no CPU given them (the second field of each thread's /proc schedstat)."""
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            waited += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return waited / 1e9


def sample_groups() -> None:
    """`PhaseCPU`'s sampling process: reads `[studio group, waited key, {pid: group}]` and then
    `[every_s, for_s, later_every_s, longest_s]` from its input (the second line when the users
    start), then prints one JSON line `[time, {group: cpu-s, waited key: s}]` per sample until
    its input closes (one last sample then)."""
    import select

    studio, waited, groups = json.loads(sys.stdin.readline())
    line = sys.stdin.readline()
    if not line:
        return
    every_s, for_s, later_s, longest_s = json.loads(line)

    seen: dict[str, float] = {}  # each process's CPU when last read: one that ended keeps it

    def sample() -> None:
        used: dict[str, float] = {}
        for pid, group in groups.items():
            try:
                seen[pid] = sum(stat_cpu(Path(f"/proc/{pid}/stat")))
                if group == studio:
                    used[waited] = used.get(waited, 0.0) + run_queue_wait(int(pid))
            except OSError:
                pass
            used[group] = used.get(group, 0.0) + seen.get(pid, 0.0)
        print(json.dumps([time.time(), used]), flush=True)

    start = time.time()
    while time.time() - start < longest_s:
        sample()
        pause = every_s if time.time() - start < for_s else later_s
        if select.select([sys.stdin], [], [], pause)[0] and not sys.stdin.readline():
            break  # input closed: the users are done
    sample()


def run_protocol(
    urls: list[str],
    studios: list[subprocess.Popen],
    users: int,
    ledger_url: str,
    data_dirs: list[Path],
    job_s: float,
    args_for: Callable[[int], list[Any]],
    job_times: Callable[[str], dict[str, Any]],
    profile_dir: Path | None = None,
    history_on_screen: bool = False,
    probe: AnswerProbe | None = None,
    phase: PhaseCPU | None = None,
) -> int:
    """`job_times`: what the stand-in for RunPod recorded of a job (by RunPod job id,
    `/emulator/jobs/<id>`): its final state's wall time (each job's COMPLETED in the figures)
    and the /status calls it answered for it."""
    import asyncio

    import httpx

    from app.studio.ledger import Ledger
    from bench.studio_concurrency import cpu_report, cpu_snapshot

    pages = [PageProtocol(u, httpx.get(u + "/config", timeout=60).json(), history_on_screen)
             for u in urls]  # fmt: skip
    print(
        "the pages' History gallery is "
        + (
            "on screen: each job's end refreshes its gallery"
            if history_on_screen
            else "off screen (the page at its form and result): refreshed once it shows"
        )
    )
    idle0 = [proc_cpu(p.pid) for p in studios]
    time.sleep(IDLE_S)  # measuring idleness: nothing to wait for but the clock
    idle = [(proc_cpu(p.pid) - c) / IDLE_S for p, c in zip(studios, idle0, strict=True)]
    results: dict[int, Any] = {}
    errors: list[str] = []

    async def everyone() -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=users * 2)
        timeout = httpx.Timeout(300.0)  # a busy machine answers late; a page would wait too
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:

            async def user(i: int) -> None:
                try:
                    results[i] = await pages[i % len(pages)].generate(http, args_for(i))
                except Exception as exc:
                    errors.append(f"user {i}: {type(exc).__name__}: {exc}")

            await asyncio.gather(*(user(i) for i in range(users)))

    spies = [profile(p.pid, profile_dir / f"studio{i}.raw")
             for i, p in enumerate(studios)] if profile_dir else []  # fmt: skip
    if profile_dir:  # and these clients
        spies.append(profile(os.getpid(), profile_dir / "clients.raw"))
    threads0 = [thread_cpu(p.pid) for p in studios]
    cpu0 = [proc_cpu(p.pid) for p in studios]
    split0 = [proc_split(p.pid) for p in studios]
    machine0 = cpu_snapshot()
    t_start = time.time()
    if phase is not None:
        phase.begin()
    asyncio.run(everyone())
    t_end = time.time()
    if phase is not None:
        phase.stop()
    # the studio's path starts at the first request, not before the clients' own start-up (the
    # HTTP client, its TLS context: tens of ms, more at the clients' low priority)
    t_first = min(p.first_request for p in pages if p.first_request is not None)
    cpu = [proc_cpu(p.pid) - c for p, c in zip(studios, cpu0, strict=True)]
    split = [tuple(b - a for a, b in zip(s0, proc_split(p.pid), strict=True))
             for p, s0 in zip(studios, split0, strict=True)]  # fmt: skip
    if profile_dir:
        by_thread = [(p.pid, t0, thread_cpu(p.pid), c)
                     for p, t0, c in zip(studios, threads0, cpu, strict=True)]  # fmt: skip
    cpu_report(machine0, t_end - t_start)
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(60)
    rows = [r for r in Ledger(ledger_url).since(t_start - 5) if r.state == "COMPLETED"]
    print(f"protocol clients: {users} users on {len(urls)} studio replica(s), ledger "
          f"{ledger_url.split('://')[0]}, job {job_s:.1f} s emulated sampling")  # fmt: skip
    if errors:
        print(f"client errors ({len(errors)}): {errors[:5]}")
    if len(rows) < users:
        ended = [r for r in Ledger(ledger_url).since(t_start - 5) if r.state != "COMPLETED"]
        print(f"{len(rows)} of {users} jobs COMPLETED; the others: "
              f"{[(r.id, r.state, r.error) for r in ended]}")  # fmt: skip
        return 1
    execs = [r.execution_ms / 1000 for r in rows]
    last_stored = max(r.stored_at for r in rows)
    path = last_stored - t_first
    median = statistics.median(execs)
    print(f"executionTime per job: median {median:.2f} s, max {max(execs):.2f} s")
    updates = sorted(n for page in pages for n in page.updates)
    print(f"live panels per job: median {statistics.median(updates):.0f}, "
          f"max {max(updates)} (the final one included)")  # fmt: skip
    print(f"studio path, first request -> last video stored: {path:.2f} s")
    print(f"ratio to the median executionTime: {path / median:.2f} (target <= 1.15)")
    print(
        f"clients' wall time (first request -> last client got its video): {t_end - t_first:.2f} s "
        f"(their start-up before it: {(t_first - t_start) * 1000:.0f} ms)"
    )
    for i, (c, idle_c) in enumerate(zip(cpu, idle, strict=True)):
        share = users / len(urls)
        print(f"studio {i}: {c:.2f} cpu-s for ~{share:.0f} jobs = {c / share:.3f} cpu-s per job "
              f"(target <= 0.05); idle with no page open: {idle_c:.2%} of a core "
              "(target <= 1 %)")  # fmt: skip
        user, system, switches = split[i]
        print(f"  of which user {user:.2f} s, system {system:.2f} s; {switches / share:.0f} "
              "thread switches per job (threads alive at the end)")  # fmt: skip
        if profile_dir:
            print_thread_cpu(*by_thread[i], share)
    both = [r.id for r in rows if sum((d / "results" / r.id).is_dir() for d in data_dirs) > 1]
    if len(urls) > 1:
        print(f"jobs stored by more than one replica: {len(both)} (target 0)")
    times = {r.id: job_times(r.job_id) for r in rows}
    done = {rid: float(t["finished_wall"]) for rid, t in times.items()}  # each job's COMPLETED
    polls = sorted(int(t["status_calls"]) for t in times.values())
    print(f"  /status calls per job (the trackers' polls): median {statistics.median(polls):.0f},"
          f" max {max(polls)}, {sum(polls)} in all")  # fmt: skip
    delays = sorted(r.completed_seen_at - done[r.id] for r in rows)
    stores = sorted(r.stored_at - r.completed_seen_at for r in rows)
    created = sorted(r.created_at - t_first for r in rows)
    answered = sorted(r.submitted_at - r.created_at for r in rows)
    queue = sorted((r.delay_ms or 0) / 1000 for r in rows)
    for name, vals in (
        ("first request -> ledger row", created),
        ("ledger row -> /run answered", answered),
        ("delayTime (queue + pick-up)", queue),
        ("COMPLETED -> tracker saw it", delays),
        ("tracker saw it -> stored", stores),
    ):
        print(f"  {name:30s} median {statistics.median(vals):6.2f} s  max {max(vals):6.2f} s")
    print(last_job(rows, t_first, done, median))
    if phase is not None:
        print(phase.summary(t_first, max(r.submitted_at for r in rows)))
        print("  CPU over the users' window, in cores, by half second from the first request:")
        for line in phase.timeline(t_first, list(done.values())):
            print("    " + line)
    if probe is not None:
        print(probe.summary(t_start, t_end))
    return 0 if not both and not errors else 1


def last_job(rows: list[Any], t_start: float, done: dict[str, float], median: float) -> str:
    """Where the studio path's own end came from: the last job stored, each step of it from the
    first request (`done`: when each job COMPLETED, by row id), then the ratio split at that
    job's /run answer and COMPLETED (`median`: the median executionTime, the ratio's yardstick).
    The middle part is RunPod's side (the stand-ins' queue and run of that job), at least that
    job's executionTime over the median; the other two are the studio's submit and its end."""
    last = max(rows, key=lambda r: r.stored_at)
    steps = (
        ("ledger row", last.created_at),
        ("/run answered", last.submitted_at),
        ("COMPLETED", done[last.id]),
        ("seen", last.completed_seen_at),
        ("stored", last.stored_at),
    )
    parts = (
        ("first request -> /run answered", last.submitted_at - t_start),
        ("RunPod's queue and run", done[last.id] - last.submitted_at),
        ("COMPLETED -> stored", last.stored_at - done[last.id]),
    )
    slowest = max(r.execution_ms for r in rows) / 1000
    return (
        f"  the last job stored (executionTime {last.execution_ms / 1000:.2f} s), from the first "
        "request: " + ", ".join(f"{name} {at - t_start:.2f} s" for name, at in steps) + "\n"
        "  the ratio, split at that job's /run answer and COMPLETED: "
        + " + ".join(f"{s / median:.2f} ({name})" for name, s in parts)
        + f"; the slowest job's executionTime alone is {slowest / median:.2f} of the median"
    )


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds used so far by each live thread of process `pid`, by its OS thread id: the
    scheduler's own count (`schedstat`, ns), where the kernel has it. A thread's `stat` times
    are ticks scaled per thread, and under-read threads that run in short bursts: over the
    64-user window the studio's threads summed to ~70 % of the process's own figure, and the
    rest showed as "threads that ended" though none had."""
    cpu: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpu[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            try:
                cpu[int(task.name)] = sum(stat_cpu(task / "stat"))
            except OSError:
                continue
    return cpu


def thread_names(pid: int) -> dict[int, str]:
    """Python's name of each thread of process `pid` (py-spy dump), by its OS thread id, a pool's
    number dropped (`wanpod-live_3` -> `wanpod-live`): the threads grouped by what they do."""
    import json
    import re

    spy = Path(sys.executable).with_name("py-spy")
    argv = [str(spy), "dump", "--pid", str(pid), "--json", "--nonblocking"]
    dump = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    return {t["os_thread_id"]: re.sub(r"[_-]\d+$|-\d+ \(.*\)$", "", t.get("thread_name") or "?")
            for t in dump}  # fmt: skip


def print_thread_cpu(
    pid: int, before: dict[int, float], after: dict[int, float], total: float, jobs: float
) -> None:
    """Where a studio's CPU (`total` over the users' window, `before` and `after` it by thread)
    went, by thread group, per job (threads that ended within the window counted together)."""
    names = thread_names(pid)
    groups: dict[str, float] = {}
    for tid, cpu in after.items():
        name = names.get(tid, "?")
        groups[name] = groups.get(name, 0.0) + cpu - before.get(tid, 0.0)
    groups["threads that ended"] = total - sum(groups.values())
    for name, cpu in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(
            f"    {name:28s} {cpu:6.2f} cpu-s = {1000 * cpu / jobs:5.1f} ms per job"
            f" ({cpu / total:4.0%})"
        )


def profile(pid: int, out: Path) -> subprocess.Popen:
    """py-spy recording process `pid` (the samples holding the GIL) into `out` until SIGINT."""
    spy = Path(sys.executable).with_name("py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(spy), "record", "--pid", str(pid), "--gil", "--threads", "--rate", "200",
            "--format", "raw", "--nonblocking", "-o", str(out)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit("run bench/studio_concurrency.py --mode protocol")
