"""Put the Wan 2.2 model files the chosen pipelines need onto the volume, from the Hugging Face Hub.

    python -m worker.provision [--pipelines t2v_14b,i2v_14b] [--modes turbo] [--volume PATH]
                               [--dry-run]

Which files, from which Hub repository and path, into which ComfyUI folder: the catalog
(workflows/catalog.yaml `model_sources`, the official templates' list). Files land in
`<volume>/models/<folder>/<name>`, where worker/extra_model_paths.yaml points ComfyUI. The volume
defaults to the first of /runpod-volume (serverless) and /workspace (pods) that exists
(WANPOD_VOLUME_PATHS changes the list, as for start.sh and the job).

For each file the Hub is asked (`huggingface_hub.get_hf_file_metadata`: HEAD on
`/resolve/main/<path>`) for its published size and sha256 (X-Linked-Size, X-Linked-Etag), then:
- present, and recorded as verified with the same sha256, size and mtime: skipped;
- present with the right size but not recorded (copied by hand): hashed, recorded when it matches;
- partly downloaded (`.<name>.<sha256[:16]>.partial` beside it): resumed with a Range request;
- otherwise fetched (`huggingface_hub.file_download.http_get`, which follows the Hub's CDN
  redirect without the token and resumes by itself when the connection drops).
Every fetched file is hashed and must match the published sha256 before it is renamed into place;
a mismatch deletes the partial file and fails naming the file. Nothing is fetched when the free
space on the volume is smaller than what is left to fetch. HF_TOKEN is sent to the Hub when set;
HF_ENDPOINT (read by huggingface_hub) points it at another Hub, e.g. the local emulators/hfhub.py.

The same as a job: `{"input": {"provision": {"pipelines": [...], "modes": [...],
"dry_run": false}}}` (worker/handler.py) answers `{"provision": <report>}` and posts progress
`{"stage": "provisioning", "file", "files_done", "files_total", "bytes_done", "bytes_total",
"percent"}` while it downloads.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows.catalog import ModelFile, load_catalog
from workflows.errors import ParamError

from .errors import InputError, ProvisionError
from .progress import OrderedSender, settle
from .settings import Settings
from .volume import DEFAULT_ROOTS

log = logging.getLogger("worker.provision")

MANIFEST = ".wanpod-provision.json"  # in <volume>/models: what was verified (sha256, size, mtime)
HASH_CHUNK = 8 << 20
Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class ProvisionRequest:
    pipelines: tuple[str, ...]
    modes: tuple[str, ...]
    dry_run: bool = False
    files: tuple[str, ...] = ()  # only these of the pipelines' files (all when empty)


@dataclass
class Item:
    """One model file: where it goes, what the Hub publishes, and what is to be done."""

    file: ModelFile
    target: Path
    size: int
    sha256: str
    url: str  # where the bytes are (the Hub's redirect target)
    action: str  # present | verify | resume | fetch
    have: int = 0  # bytes already on disk for it (a partial file, or the whole file)

    @property
    def partial(self) -> Path:
        return self.target.with_name(f".{self.target.name}.{self.sha256[:16]}.partial")

    @property
    def left(self) -> int:
        return 0 if self.action in ("present", "verify") else self.size - self.have


@dataclass
class Plan:
    volume: Path
    request: ProvisionRequest
    items: list[Item] = field(default_factory=list)
    free: int = 0
    endpoint: str | None = None  # the Hub (None: HF_ENDPOINT, else huggingface.co)

    @property
    def to_fetch(self) -> int:
        return sum(i.left for i in self.items)


def parse_request(raw: object) -> ProvisionRequest:
    """`{"pipelines": [...], "modes": [...], "files": [...], "dry_run": bool}` (all optional)
    -> request. `files`: only these file names of the pipelines' (a RunPod cached model holds
    the rest: its text encoder lives in another repository)."""
    if raw is True:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InputError("provision", "must be an object", '{"pipelines": [...], "modes": [...]}')
    unknown = sorted(set(raw) - {"pipelines", "modes", "files", "dry_run"})
    if unknown:
        raise InputError("provision", f"unknown key(s) {', '.join(unknown)}",
                         "pipelines, modes, files, dry_run")  # fmt: skip
    catalog = load_catalog()
    pipelines = _names(raw.get("pipelines"), "provision.pipelines", catalog.ids())
    all_modes = tuple(dict.fromkeys(m for t in catalog for m in t.modes))
    modes = _names(raw.get("modes"), "provision.modes", all_modes)
    dry_run = raw.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InputError("provision.dry_run", "must be true or false", "true, false", dry_run)
    try:
        needed = tuple(dict.fromkeys(f.name for f in catalog.files_for(pipelines, modes)))
    except ParamError as e:  # its text names the field and what the pipeline offers already
        raise InputError("provision.modes", str(e).removeprefix("modes: ")) from None
    files = _names(raw.get("files"), "provision.files", needed) if raw.get("files") else ()
    return ProvisionRequest(pipelines, modes, dry_run, files)


def _names(raw: object, field_name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None or raw == [] or raw == "":
        return allowed
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        raise InputError(field_name, "must be a list of names", ", ".join(allowed), raw)
    names = tuple(x.strip() for x in items if x.strip())
    bad = [n for n in names if n not in allowed]
    if bad:
        raise InputError(field_name, f"unknown {', '.join(map(repr, bad))}", ", ".join(allowed))
    return tuple(dict.fromkeys(names))


def wants_provision(raw: object) -> ProvisionRequest | None:
    """The request of a `{"provision": {...}}` job input, None for any other job; InputError
    when it is malformed or comes with other keys."""
    if not isinstance(raw, Mapping) or "provision" not in raw:
        return None
    others = sorted(set(raw) - {"provision"})
    if others:
        raise InputError("provision", f"comes with {', '.join(map(repr, others))}",
                         '{"provision": {...}} alone (it runs no workflow)')  # fmt: skip
    return parse_request(raw["provision"])


def choose_volume(explicit: str | None = None, roots: Sequence[str] = DEFAULT_ROOTS) -> Path:
    """The volume to fill: `explicit` (must exist), else the first of `roots` that exists."""
    if explicit:
        p = Path(explicit)
        if not p.is_dir():
            raise ProvisionError(f"--volume {explicit}: no such folder (is the volume mounted?)")
        return p
    for r in roots:
        if Path(r).is_dir():
            return Path(r)
    raise ProvisionError(
        f"no volume is mounted (looked for {' and '.join(roots)}): attach a network volume to "
        "the endpoint or pod (from the command line: or give --volume PATH)"
    )


# -- the manifest of verified files ------------------------------------------------------------
def _manifest(volume: Path) -> dict[str, dict[str, Any]]:
    p = volume / "models" / MANIFEST
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(volume: Path, item: Item) -> None:
    data = _manifest(volume)
    st = item.target.stat()
    data[f"{item.file.folder}/{item.file.name}"] = {
        "sha256": item.sha256,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "repo": item.file.repo,
        "path": item.file.path,
    }
    p = volume / "models" / MANIFEST
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, p)


def _sha256(path: Path, stop: threading.Event | None = None) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            if stop is not None and stop.is_set():
                raise ProvisionError("stopped")
            h.update(chunk)
    return h.hexdigest()


# -- planning ------------------------------------------------------------------------------------
def make_plan(request: ProvisionRequest, volume: Path, token: str | None = None,
              endpoint: str | None = None) -> Plan:  # fmt: skip
    """Ask the Hub what each needed file is and compare with the volume (no bytes move)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    plan = Plan(volume, request, free=shutil.disk_usage(volume).free, endpoint=endpoint)
    recorded = _manifest(volume)
    for f in load_catalog().files_for(request.pipelines, request.modes):
        if request.files and f.name not in request.files:
            continue
        try:
            url = hf_hub_url(f.repo, f.path, endpoint=endpoint)
            meta = get_hf_file_metadata(url, token=token or None, endpoint=endpoint)
        except Exception as e:  # HTTP errors (HfHubHTTPError), no network (httpx errors)
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status in (401, 403):  # it answered: the token is what it refused
                raise ProvisionError(
                    f"the Hub refused {f.repo}/{f.path} (HTTP {status}): set HF_TOKEN to a "
                    "token that may read it (and accept the model's licence on its page)"
                ) from None
            raise ProvisionError(
                f"the Hub did not answer for {f.repo}/{f.path}: {_reason(e)}"
            ) from None
        if not meta.size or not meta.etag or len(meta.etag) != 64:
            raise ProvisionError(f"the Hub publishes no size and sha256 for {f.repo}/{f.path}")
        target = volume / "models" / f.folder / f.name
        item = Item(f, target, meta.size, meta.etag, meta.location, "fetch")
        if target.is_file():
            st = target.stat()
            rec = recorded.get(f"{f.folder}/{f.name}", {})
            same = (rec.get("sha256"), rec.get("size"), rec.get("mtime_ns")) == (
                meta.etag, st.st_size, st.st_mtime_ns
            )  # fmt: skip
            if same and st.st_size == meta.size:
                item.action, item.have = "present", meta.size
            elif st.st_size == meta.size:
                item.action, item.have = "verify", meta.size
        if item.action == "fetch" and item.partial.is_file():
            have = item.partial.stat().st_size
            if 0 < have <= meta.size:
                item.action, item.have = "resume", have
        plan.items.append(item)
    return plan


def _reason(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:200]


# -- fetching ------------------------------------------------------------------------------------
class _Counting:
    """The open partial file, counting bytes for progress and honouring a stop request."""

    def __init__(self, f, on_bytes: Callable[[int], None], stop: threading.Event) -> None:
        self._f, self._on_bytes, self._stop = f, on_bytes, stop

    def write(self, data: bytes) -> int:
        if self._stop.is_set():
            raise ProvisionError("stopped (the job was cancelled or ran out of time)")
        n = self._f.write(data)
        self._on_bytes(len(data))
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _fetch(item: Item, token: str | None, endpoint: str | None,
           on_bytes: Callable[[int], None], stop: threading.Event) -> None:  # fmt: skip
    from huggingface_hub import constants
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers, disable_progress_bars

    disable_progress_bars()  # progress is ours (lines / job updates), not tqdm's

    item.target.parent.mkdir(parents=True, exist_ok=True)
    have = item.partial.stat().st_size if item.partial.is_file() else 0
    headers = build_hf_headers(token=token or None)
    if _origin(item.url) != _origin(endpoint or constants.ENDPOINT):
        headers.pop("authorization", None)  # the CDN gets no token (as hf_hub_download does)
    try:
        with item.partial.open("ab") as f:
            http_get(item.url, _Counting(f, on_bytes, stop), resume_size=have, headers=headers,
                     expected_size=item.size, displayed_filename=item.file.name)  # fmt: skip
    except ProvisionError:
        raise
    except Exception as e:  # network / HTTP errors: the partial file stays for the next run
        raise ProvisionError(
            f"download of {item.file.folder}/{item.file.name} stopped: {_reason(e)}; "
            "run provision again to resume"
        ) from None
    got = _sha256(item.partial, stop)
    if got != item.sha256:
        item.partial.unlink(missing_ok=True)
        raise ProvisionError(
            f"{item.file.folder}/{item.file.name} is corrupt: its sha256 {got[:12]}… is not the "
            f"published {item.sha256[:12]}…; the download was deleted, run provision again"
        )
    os.replace(item.partial, item.target)


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def run_plan(plan: Plan, token: str | None = None, progress: Progress | None = None,
             stop: threading.Event | None = None) -> dict[str, Any]:  # fmt: skip
    """Carry out the plan; returns the report. ProvisionError when there is no room or a file
    cannot be fetched or verified (files done before stay done)."""
    stop = stop or threading.Event()
    if plan.to_fetch > plan.free:
        raise ProvisionError(
            f"not enough free space on {plan.volume}: {human(plan.to_fetch)} to fetch "
            f"({plan.to_fetch} bytes), {human(plan.free)} free ({plan.free} bytes); use a larger "
            "volume or fewer pipelines/modes"
        )
    total = plan.to_fetch
    done = 0
    files_total = sum(1 for i in plan.items if i.action != "present")
    files_done = 0
    current = ""

    def report(force: bool = False) -> None:
        if progress is not None:
            progress({
                "stage": "provisioning", "file": current, "files_done": files_done,
                "files_total": files_total, "bytes_done": done, "bytes_total": total,
                "percent": round(100.0 * done / total, 1) if total else 100.0,
                "force": force,
            })  # fmt: skip

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        report()

    for item in plan.items:
        if item.action == "present":
            continue
        current = f"{item.file.folder}/{item.file.name}"
        report(force=True)
        if item.action == "verify" and _sha256(item.target, stop) != item.sha256:
            item.action = "fetch"  # a wrong file of the right size: replace it
            total += item.size
        if item.action in ("fetch", "resume"):
            _fetch(item, token, plan.endpoint, on_bytes, stop)
        _record(plan.volume, item)
        files_done += 1
        report(force=True)
    return report_of(plan, fetched=True)


def report_of(plan: Plan, fetched: bool) -> dict[str, Any]:
    return {
        "volume": str(plan.volume),
        "pipelines": list(plan.request.pipelines),
        "modes": list(plan.request.modes),
        "dry_run": not fetched,
        "free_bytes": plan.free,
        "to_fetch_bytes": 0 if fetched else plan.to_fetch,
        "files": [
            {
                "file": f"{i.file.folder}/{i.file.name}",
                "repo": i.file.repo,
                "path": i.file.path,
                "size": i.size,
                "sha256": i.sha256,
                "action": "present" if fetched else i.action,
                "have": i.size if fetched else i.have,
            }
            for i in plan.items
        ],
    }


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def render(plan: Plan) -> str:
    """The dry-run table: one line per file with what would happen."""
    words = {"present": "present", "verify": "check", "resume": "resume", "fetch": "fetch"}
    lines = [
        f"volume {plan.volume}: {human(plan.free)} free",
        f"pipelines {', '.join(plan.request.pipelines)}; modes {', '.join(plan.request.modes)}"
        + (f"; files {', '.join(plan.request.files)}" if plan.request.files else ""),
    ]
    for i in plan.items:
        extra = f" ({human(i.have)} there)" if i.action == "resume" else ""
        lines.append(
            f"  {words[i.action]:<8} {i.file.folder + '/' + i.file.name:<76} {human(i.size):>9}"
            f"{extra}  {i.file.repo}"
        )
    n = sum(1 for i in plan.items if i.left)
    room = "fits" if plan.to_fetch <= plan.free else "DOES NOT FIT"
    lines.append(f"to fetch: {n} file(s), {human(plan.to_fetch)}; {room} in {human(plan.free)}")
    return "\n".join(lines)


class _Throttle:
    """Progress lines/posts at most every `interval_s` (forced ones always)."""

    def __init__(self, out: Callable[[dict[str, Any]], None], interval_s: float) -> None:
        self.out, self.interval_s, self.last = out, interval_s, 0.0

    def __call__(self, p: dict[str, Any]) -> None:
        now = time.monotonic()
        if p.pop("force", False) or now - self.last >= self.interval_s:
            self.last = now
            self.out(p)


def provision(request: ProvisionRequest, volume: Path, token: str | None = None,
              progress: Progress | None = None, interval_s: float = 1.0,
              stop: threading.Event | None = None,
              endpoint: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Plan, then (unless dry_run) fetch; the report of what is (or would be) on the volume."""
    plan = make_plan(request, volume, token, endpoint)
    if request.dry_run:
        return report_of(plan, fetched=False)
    return run_plan(plan, token, _Throttle(progress or (lambda p: None), interval_s), stop)


async def run_job(request: ProvisionRequest, job: dict, settings: Settings) -> dict[str, Any]:
    """The provision job: fill the endpoint's own volume (progress posted while it downloads).
    Cancelling the job stops the download at the next chunk; the partial file stays for the
    next run."""
    volume = choose_volume(None, settings.volume_paths)
    stop = threading.Event()
    # posted one at a time, in order, and delivered before the result (the SDK's own
    # progress_update posts from a thread of its own each time: the last could land after it)
    sender = OrderedSender(job) if settings.progress_enabled else None
    last_post: list[float] = []

    def post(p: dict[str, Any]) -> None:
        if sender is not None:
            sender.submit(job, p)
            last_post[:] = [time.monotonic()]
        log.info("provision: %s %s/%s bytes", p["file"], p["bytes_done"], p["bytes_total"])

    work = asyncio.to_thread(provision, request, volume, settings.hf_token.value or None, post,
                             settings.progress_interval_s, stop)  # fmt: skip
    try:
        report = await work
    except asyncio.CancelledError:
        stop.set()
        if sender is not None:
            sender.abandon()
        raise
    finally:
        if sender is not None and not sender.abandoned:
            await settle(sender, last_post[-1] if last_post else None, settings.progress_quiet_s)
    log.info("provision: %d file(s) present and verified on %s", len(report["files"]), volume)
    return {"provision": report}


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m worker.provision", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--pipelines", default="", help="comma-separated template ids (default: all)")
    ap.add_argument("--modes", default="", help="comma-separated modes (default: all)")
    ap.add_argument(
        "--files", default="", help="comma-separated file names of those (default: all of them)"
    )
    ap.add_argument("--volume", default=None, help="default: first of WANPOD_VOLUME_PATHS")
    ap.add_argument(
        "--dry-run", action="store_true", help="show what would be fetched; no download"
    )
    args = ap.parse_args(argv)
    token = env.get("HF_TOKEN") or None
    try:
        request = parse_request(
            {
                "pipelines": args.pipelines,
                "modes": args.modes,
                "files": args.files,
                "dry_run": args.dry_run,
            }
        )
        roots = [r for r in (env.get("WANPOD_VOLUME_PATHS") or "").split(":") if r]
        volume = choose_volume(args.volume, roots or DEFAULT_ROOTS)
        plan = make_plan(request, volume, token)
        print(render(plan), flush=True)
        if request.dry_run:
            return 0

        def show(p: dict[str, Any]) -> None:
            done, total = human(p["bytes_done"]), human(p["bytes_total"])
            files = f"{p['files_done']}/{p['files_total']} files"
            print(
                f"provision: {p['file']}: {done} of {total} ({p['percent']}%), {files}", flush=True
            )

        run_plan(plan, token, _Throttle(show, 2.0))
    except (InputError, ProvisionError) as e:
        print(str(e), file=sys.stderr)
        return 1
    print(f"provision: done; {len(plan.items)} file(s) present and verified on {volume}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
